"""The loss that ranks candidate voices against a target sound and drives the refinement.

It tracks what the project is judged on (companion.evaluation.metrics): the linear spectrum
(spectral convergence) and the perceptual one (log magnitudes and a log-mel spectrogram close
to what the MFCCs see), each at several resolutions, since a search on spectral convergence
alone was measured to leave the MFCC distance where it was.

For one candidate ``x`` against the target ``y``::

    loss = mean over STFT sizes n of [ SC_n + LOG_WEIGHT * logL1_n ] + MEL_WEIGHT * melL1 / 20
           + MFCC_WEIGHT * mfccL1 / 20 + QUIET_WEIGHT * quiet

- SC_n = ||S_n(y) - S_n(x)||_F / ||S_n(y)||_F (magnitudes, Hann window n, hop n / 2);
- logL1_n = mean |log10 max(S_n(y), 1e-4) - log10 max(S_n(x), 1e-4)|, the paper's floor;
- melL1 = mean |dB(y) - dB(x)| of 128-band power mel spectrograms (2048 window, as librosa's
  MFCCs), each floored 80 dB below the target's peak, divided by 20 dB to be of order one;
- mfccL1 = mean |MFCC(y) - MFCC(x)| of the first 13 coefficients of those (orthonormal DCT-II
  of the mel dB, as librosa's), over 20: the paper's perceptual metric, which the mel term
  alone was measured to improve less (numbers at MFCC_WEIGHT).

The comparison ignores level: each candidate is first scaled to the target's RMS (a
recording's gain is arbitrary, and a voice's loudness is not what is matched; the recordings
bench, bench/recordings.py, compares the same way); ``match_level=False`` compares as is.

Plus a guard against silence, ``QUIET_WEIGHT * quiet``: over the frames where the target is
within QUIET_RANGE_DB of its loudest, ``quiet`` is the mean of how far the candidate falls more
than QUIET_MARGIN_DB below the target (frame energy, dB), divided by 20 dB. It is zero for any
candidate that follows the target's level within 20 dB, and large for a candidate that is
silent, or a short blip where the target sounds on: the spectral terms alone were measured to
score an all-zero render below real answers for plucks and notes far from C4 (their log terms
are floored, and a silent candidate's convergence is exactly 1).

Every term reads the spectrum below BAND of the Nyquist frequency only (9.9 kHz at 22 050 Hz): a
recording at 44.1 or 48 kHz is read through a resampler whose anti-aliasing filter removes
what lies above (-2 dB at 10.25 kHz, -15 dB at 10.5 kHz), where the engine's renders have
sound, so that even the voice that made a recording differed from it there (by SC > 0.05 for
13.5 % of test voices recorded as bench/recordings.py does); compared below BAND, it is itself
again.

The STFTs are written with scipy's FFT over strided frames rather than librosa.stft: one
candidate then costs about one render on one core (0.9-2x, measured under load beside a render),
where librosa.stft alone cost about ten renders; the target's spectra are computed once.
Everything is float32 and row-wise, so a candidate's loss does not depend on its batch.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

# STFT windows, samples. 512 was dropped: its convergence followed 1024's within 0.01 on test
# voices, and each size costs about a third of a render (the logs dominate).
SIZES = (1024, 2048)
LOG_FLOOR = 1e-4  # the paper's floor of |STFT| before log10
LOG_WEIGHT = 1.0
MEL_WEIGHT = 1.0
# the MFCC term: measured on 100 test voices at 1,000 evaluations (bench/search_designs.py),
# weight 1 took the MFCC MAE to 0.84x [0.80-0.88] of the search without it, for 1.09x
# [1.04-1.15] its spectral convergence; 0.5 gave 0.91x and 1.02x; the mel term at weight 3
# instead 0.95x and 1.04x. MFCCs are what the paper's perceptual metric reads.
MFCC_WEIGHT = 1.0
N_MFCC = 13
MEL_BANDS = 128
MEL_RANGE_DB = 80.0  # as librosa.power_to_db(top_db=80), which its MFCCs use
SILENT_NORM = 1e-3  # ||S||_F below this: a silent target, nothing to match
# (MEL_BANDS, N_MFCC): mel dB -> MFCCs, the orthonormal DCT-II librosa's MFCCs use
_DCT = scipy.fft.dct(np.eye(MEL_BANDS), type=2, norm="ortho", axis=0)[:, :N_MFCC].astype(
    np.float32
)
QUIET_RANGE_DB = 40.0  # target frames within this of its loudest frame are watched
QUIET_MARGIN_DB = 20.0  # a candidate may fall this far below the target there at no cost
QUIET_WEIGHT = 10.0  # silence then costs about 10 x (80 - 20) / 20 = 30, far above any match


BAND = 0.9  # the share of the Nyquist frequency the loss reads (see the module docstring)


def band_bins(n: int) -> int:
    """The rfft bins of an n-point STFT below BAND of the Nyquist frequency."""
    return int(np.floor(BAND * (n // 2))) + 1


def _spectra(audio: np.ndarray, n: int, window: np.ndarray) -> np.ndarray:
    """(B, T) audio -> (B, frames, band_bins(n)) float32 |STFT| below BAND, hop n / 2, no
    centring."""
    frames = sliding_window_view(audio, n, axis=-1)[:, :: n // 2] * window
    spec = np.abs(scipy.fft.rfft(frames, axis=-1, workers=1)).astype(np.float32)
    return spec[..., : band_bins(n)]


class Target:
    """A target sound with its features computed once; ``loss`` ranks candidate renders.

    Args:
        audio: (T,) float32 target at ``sr``; candidates must have the same length.
        sr: sample rate, Hz.
        sizes: STFT window sizes, samples.
        log_weight, mel_weight, mfcc_weight: weights of the log-magnitude, log-mel and MFCC
            terms (0 drops one; a 0 mel weight drops the MFCC term too).

        match_level: the default of ``loss``: candidates scaled to the target's RMS (a
            recording's level is arbitrary); False where the target's level is the voice's
            own (a render, as the project makes it).

    Attributes:
        rms: the target's RMS (candidates are scaled to it).

    Raises:
        ValueError: the target is silent or not a 1-D array.
    """

    def __init__(self, audio: np.ndarray, sr: int = 22050, sizes=SIZES,
                 log_weight: float = LOG_WEIGHT, mel_weight: float = MEL_WEIGHT,
                 mfcc_weight: float = MFCC_WEIGHT, match_level: bool = True):  # fmt: skip
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"a target is one channel of audio (T,), got shape {audio.shape}")
        self.sr, self.n_samples, self.sizes = sr, len(audio), tuple(sizes)
        self.rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        self.log_weight, self.mel_weight = float(log_weight), float(mel_weight)
        self.mfcc_weight, self.match_level = float(mfcc_weight), bool(match_level)
        self.windows = {n: np.hanning(n + 1)[:-1].astype(np.float32) for n in self.sizes}
        self.mel_n = max(self.sizes)
        self.mel_fb = librosa.filters.mel(sr=sr, n_fft=self.mel_n, n_mels=MEL_BANDS).astype(
            np.float32
        )[:, : band_bins(self.mel_n)]
        self.spec, self.log, self.norm = {}, {}, {}
        for n in self.sizes:
            s = _spectra(audio[None], n, self.windows[n])[0]
            self.spec[n], self.norm[n] = s, float(np.linalg.norm(s))
            self.log[n] = np.log(np.maximum(s, LOG_FLOOR))
        if self.norm[self.sizes[0]] <= SILENT_NORM:
            raise ValueError("the target sound is silent: there is nothing to match")
        self.mel_db = self._mel_db(self.spec[self.mel_n][None])[0]
        self.mel_floor = float(self.mel_db.max() - MEL_RANGE_DB)
        self.mel_db = np.maximum(self.mel_db, self.mel_floor)
        self.mfcc = self.mel_db @ _DCT
        energy = self._energy_db(self.spec[self.mel_n][None])[0]
        self.loud = energy >= energy.max() - QUIET_RANGE_DB  # (frames,) bool
        self.energy_db = energy[self.loud]
        self.energy_floor = float(energy.max() - 120.0)

    @staticmethod
    def _energy_db(spec: np.ndarray) -> np.ndarray:
        """(B, frames, bins) magnitudes -> (B, frames) frame energy, dB."""
        power = np.einsum("bfk,bfk->bf", spec, spec)
        return (10.0 / np.log(10.0)) * np.log(np.maximum(power, 1e-20))

    def _mel_db(self, spec: np.ndarray) -> np.ndarray:
        """(B, frames, bins) magnitudes -> (B, frames, MEL_BANDS) power mel, dB."""
        power = np.square(spec) @ self.mel_fb.T
        return (10.0 / np.log(10.0)) * np.log(np.maximum(power, 1e-10))

    def terms(self, audio: np.ndarray, match_level: bool | None = None
              ) -> dict[str, np.ndarray]:  # fmt: skip
        """Each term of the loss for a batch of candidates.

        Args:
            audio: (B, T) float32 renders, T = the target's length.
            match_level: scale each candidate to the target's RMS first (a silent one stays
                silent); False compares them as they are; None: the target's default.

        Returns:
            ``sc_<n>`` and ``log_<n>`` for every STFT size n, ``mel``, ``mfcc`` and ``quiet``:
            each (B,) float32.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[1] != self.n_samples:
            raise ValueError(f"candidates must be (B, {self.n_samples}), got {audio.shape}")
        # one row at a time: a batched matrix product or mean may sum in another order, and a
        # candidate's loss must not depend on its batch (the search's results would then
        # depend on how batches are split between workers); it costs no more per row
        if self.match_level if match_level is None else match_level:
            audio = np.stack([self.scaled(a) for a in audio]) if len(audio) else audio
        rows = [self._row(a[None]) for a in audio]
        return (
            {k: np.array([r[k] for r in rows], dtype=np.float32) for k in rows[0]} if rows else {}
        )

    def scaled(self, audio: np.ndarray) -> np.ndarray:
        """(T,) candidate at the target's RMS (unchanged when it is silent: below 1e-7)."""
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        return audio if rms < 1e-7 else (audio * (self.rms / rms)).astype(np.float32)

    def _row(self, audio: np.ndarray) -> dict[str, float]:
        out = {}
        for n in self.sizes:
            s = _spectra(audio, n, self.windows[n])
            diff = (s - self.spec[n]).ravel()
            out[f"sc_{n}"] = float(np.sqrt(diff @ diff)) / self.norm[n]
            # natural log, scaled once: numpy's log10 costs twice its log here
            log = np.log(np.maximum(s, LOG_FLOOR))
            out[f"log_{n}"] = float(np.abs(log - self.log[n]).mean()) / np.log(10.0)
            if n == self.mel_n and self.mel_weight:
                mel = np.maximum(self._mel_db(s), self.mel_floor)
                out["mel"] = float(np.abs(mel - self.mel_db).mean()) / 20.0
                out["mfcc"] = float(np.abs(mel[0] @ _DCT - self.mfcc).mean()) / 20.0
            if n == self.mel_n:
                energy = np.maximum(self._energy_db(s)[0, self.loud], self.energy_floor)
                below = self.energy_db - energy - QUIET_MARGIN_DB
                out["quiet"] = float(np.maximum(below, 0.0).mean()) / 20.0
        return out

    def loss(self, audio: np.ndarray, match_level: bool | None = None) -> np.ndarray:
        """(B, T) candidate renders -> (B,) float32 loss (0 for the target itself, at any
        level when ``match_level``)."""
        return self.combine(self.terms(audio, match_level))

    def combine(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted sum of ``terms``' output, (B,) float32."""
        total = sum(terms[f"sc_{n}"] + self.log_weight * terms[f"log_{n}"] for n in self.sizes)
        total = total / len(self.sizes)
        if self.mel_weight:
            total = total + self.mel_weight * terms["mel"] + self.mfcc_weight * terms["mfcc"]
        return (total + QUIET_WEIGHT * terms["quiet"]).astype(np.float32)
