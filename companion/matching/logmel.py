"""Log-mel spectrograms as retrieval compares them, and the frequency warp of a spectrogram.

``LogMel`` is the definition of the distance between two sounds that retrieval uses: |STFT|^2
(Hann 1024, hop 512, centred, zero-padded) -> 64 mel bands (librosa, Slaney) -> log10, every
frame kept. The exhaustive lookup the matcher is measured against (bench/program_quality.py)
is the nearest library voice by L2 on ``EMBEDDING`` (the voices' own levels). ``normalise``
makes it level-free (each sound divided by its loudest frame), which is how a recording at an
arbitrary gain is compared (companion.matching.retrieval).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import torch


@dataclass(frozen=True)
class LogMel:
    """A log-mel spectrogram, flattened frame-major.

    Attributes:
        n_mels: mel bands (0 Hz to half the sample rate).
        n_fft, hop: STFT window and hop, samples at ``sample_rate``.
        floor: mel power below this counts as this (1e-8: 80 dB below a unit sine, or below
            the loudest frame with ``normalise``).
        n_samples: the length every input is cut or zero-padded to (4 s, as renders are).
        normalise: divide by the loudest frame's mel power first (level-free).
        band: the share of the Nyquist frequency kept (above: silent; a recording read
            through a resampler has nothing there, companion.matching.loss.BAND).
    """

    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 512
    floor: float = 1e-8
    sample_rate: int = 22050
    n_samples: int = 88200
    normalise: bool = False
    band: float = 1.0

    @property
    def name(self) -> str:
        peak = "-peak" if self.normalise else ""
        return f"logmel{self.n_mels}-stft{self.n_fft}-hop{self.hop}{peak}"

    @property
    def frames(self) -> int:
        return 1 + self.n_samples // self.hop

    @property
    def dim(self) -> int:
        return self.n_mels * self.frames

    def power(self, audio: np.ndarray) -> np.ndarray:
        """(..., T) float32 audio -> (..., n_fft // 2 + 1, frames) |STFT|^2, T cut or
        zero-padded to ``n_samples`` first."""
        audio = np.asarray(audio, np.float32)
        if audio.shape[-1] != self.n_samples:
            fixed = np.zeros((*audio.shape[:-1], self.n_samples), np.float32)
            m = min(self.n_samples, audio.shape[-1])
            fixed[..., :m] = audio[..., :m]
            audio = fixed
        # torch's CPU STFT is 5x faster than librosa's here; its complex abs is not
        # vectorised, numpy's is (see companion/data/audio.py).
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(audio)), self.n_fft, self.hop,
                          window=_hann(self.n_fft), center=True, pad_mode="constant",
                          return_complex=True).numpy()  # fmt: skip
        power = np.square(np.abs(spec))
        if self.band < 1.0:
            power[..., int(np.floor(self.band * (self.n_fft // 2))) + 1 :, :] = 0.0
        return power

    def from_power(self, power: np.ndarray) -> np.ndarray:
        """(..., bins, frames) power -> (..., frames * n_mels) float32 log-mel."""
        mel = mel_filters(self.sample_rate, self.n_fft, self.n_mels) @ power
        if self.normalise:
            mel = peak_normalised(mel)
        out = np.log10(np.maximum(mel, self.floor)).astype(np.float32)
        return np.swapaxes(out, -1, -2).reshape(*power.shape[:-2], -1)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(T,) or (B, T) float32 audio at ``sample_rate`` -> (dim,) or (B, dim) float32;
        audio of another length is cut or zero-padded to ``n_samples`` first."""
        return self.from_power(self.power(audio))


def peak_normalised(mel: np.ndarray) -> np.ndarray:
    """(..., mels, frames) mel power divided by its loudest frame's total (a silent sound
    stays as it is)."""
    top = mel.sum(-2).max(-1)[..., None, None]
    return mel / np.where(top > 0, top, 1.0)


def warped(power: np.ndarray, factor: float) -> np.ndarray:
    """(bins, frames) power spectrogram with every frequency multiplied by ``factor``
    (linear interpolation between bins; power divided by the factor, so that a partial keeps
    its power). Frequencies the sound did not reach (above its top / factor, for a factor
    below 1) are silent."""
    if factor == 1.0:
        return power
    n = power.shape[0]
    src = np.arange(n, dtype=np.float64) / factor  # output bin b reads the input at b / factor
    lo = np.clip(np.floor(src).astype(int), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    w = (src - lo)[:, None]
    out = ((1 - w) * power[lo] + w * power[hi]) / factor
    out[src > n - 1] = 0.0
    return out.astype(np.float32)


_CACHE: dict = {}


def _hann(n: int) -> torch.Tensor:
    if ("hann", n) not in _CACHE:
        _CACHE[("hann", n)] = torch.hann_window(n)
    return _CACHE[("hann", n)]


def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 mel filterbank (librosa's, Slaney), built once."""
    key = ("mel", sr, n_fft, n_mels)
    if key not in _CACHE:
        _CACHE[key] = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    return _CACHE[key]


EMBEDDING = LogMel()  # the exhaustive lookup's distance: 4 s renders at the voices' own levels

__all__ = ["EMBEDDING", "LogMel", "mel_filters", "peak_normalised", "warped"]
