"""Audio in: loading a user's file, and the mel spectrograms every model sees.

The spectrogram is computed with torch so that the same code runs on the CPU (dataset build,
inference) and the GPU (training); the mel filterbank is librosa's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from companion.config import AudioConfig

SILENCE = 1e-5  # peak amplitude below which a file counts as silent (-100 dBFS)
QUIET_DB = -80.0  # dBFS: a peak below this (and above SILENCE) is warned about
CANCEL_DB = 20.0  # dB: a mono mix this far below its channels' mean RMS has cancelled


class AudioError(ValueError):
    """A user's audio file that cannot be used; the message names the file and the reason."""


class InputWarning(UserWarning):
    """A user's audio file that is used but odd; one line, starting with the file's path."""


def _rms(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=axis))


def _to_mono(data: np.ndarray, path: Path) -> np.ndarray:
    """(T, C) -> (T,): the channels' mean, or the loudest channel (with an InputWarning) when
    the mean cancels (channels in opposite phase), so that the sound is not lost."""
    mono = data.mean(axis=1)
    if data.shape[1] == 1:
        return mono
    channels = _rms(data, axis=0)
    mean, mix = float(channels.mean()), float(_rms(mono))
    if mix < mean * 10 ** (-CANCEL_DB / 20):
        loudest = int(np.argmax(channels))
        below = 20 * np.log10(mean / max(mix, 1e-12))
        warnings.warn(
            f"{path}: its {data.shape[1]} channels cancel when mixed to mono ({below:.0f} dB "
            f"below them, opposite phase?); channel {loudest + 1}, the loudest, is used instead",
            InputWarning,
            stacklevel=3,
        )
        return data[:, loudest].copy()
    return mono


def read_mono(path: str | Path, sample_rate: int, max_s: float | None = None
              ) -> tuple[np.ndarray, float]:  # fmt: skip
    """Any file soundfile reads, any rate and channel count -> mono at ``sample_rate``.

    Stereo is averaged to mono (its loudest channel when the channels cancel) and the rate
    converted (librosa, soxr); at most ``max_s`` seconds are read (None: all). Channels that
    cancel, and a peak below QUIET_DB (-80 dBFS), give an ``InputWarning``.

    Returns:
        ((T,) float32, the file's whole length in s).

    Raises:
        AudioError: unreadable, empty, silent, or holding NaN / infinite samples.
    """
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, expected an audio file")
    if not path.is_file():  # a device or a pipe would never end: only a regular file
        why = "not a regular file (a device or a pipe)" if path.exists() else "no such file"
        raise AudioError(f"{path}: {why}")
    try:
        with sf.SoundFile(path) as f:
            rate, total = f.samplerate, f.frames
            frames = -1 if max_s is None else int(max_s * rate)
            data = f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; the reason is what matters
        raise AudioError(f"{path}: cannot read audio ({str(e).splitlines()[0]})") from None
    if data.size == 0:
        raise AudioError(f"{path}: empty audio file (no samples)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    mono = _to_mono(data, path)
    peak = float(np.abs(mono).max())
    if peak < SILENCE:
        raise AudioError(f"{path}: audio is silent (peak below {SILENCE:g})")
    if peak < 10 ** (QUIET_DB / 20):  # used: the loss compares shapes at equal RMS
        warnings.warn(
            f"{path}: nearly silent (peak {20 * np.log10(peak):.0f} dBFS); it is matched by "
            "its shape, whatever its level",
            InputWarning,
            stacklevel=2,
        )
    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    # some formats (mp3) do not know their length before they are read
    length = (total if total > 0 else len(data)) / rate
    return np.ascontiguousarray(mono, np.float32), float(length)


def load_audio(path: str | Path, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """A file as the model hears it: mono at ``cfg.sample_rate`` (``read_mono``), cut or
    zero-padded to ``cfg.render_s`` from its first sample.

    Returns:
        (cfg.n_samples,) float32.

    Raises:
        AudioError: as ``read_mono``.
    """
    mono, _ = read_mono(path, cfg.sample_rate, cfg.render_s + 1.0)
    out = np.zeros(cfg.n_samples, dtype=np.float32)
    n = min(len(mono), cfg.n_samples)
    out[:n] = mono[:n]
    return out


class MelSpectrogram(torch.nn.Module):
    """Audio to log-magnitude mel spectrograms, as the paper: |STFT| (Hann, centred), mel
    filterbank, 20 log10, floored.

    Input (..., T) float32 audio at ``cfg.sample_rate``; output (..., n_mels, n_frames) dB in
    [floor_db, ~+60].
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
        self.register_buffer("filters", torch.tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.floor = 10.0 ** (cfg.floor_db / 20.0)
        self._sparse = None

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., T) -> (..., n_mels, n_frames) linear mel magnitudes."""
        shape, flat = audio.shape[:-1], audio.reshape(-1, audio.shape[-1])
        if flat.device.type == "cpu":
            # One signal at a time keeps the STFT in cache (3x faster than a batch here), and
            # the filterbank is 98 % zeros: a sparse product is 5x faster than a dense one.
            if self._sparse is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                    self._sparse = self.filters.to_sparse_csr()
            mel = torch.stack([self._sparse @ self._stft_magnitude(x) for x in flat])
        else:
            mel = self.filters @ self._stft_magnitude(flat)
        return mel.reshape(*shape, *mel.shape[-2:])

    def _stft_magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., T) -> (..., n_fft // 2 + 1, n_frames) |STFT|."""
        spec = torch.stft(
            audio,
            self.cfg.n_fft,
            self.cfg.hop,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        if spec.device.type == "cpu" and not spec.requires_grad:
            # torch's complex abs is not vectorised on the CPU: numpy's is 10x faster.
            return torch.from_numpy(np.abs(spec.numpy()))
        return spec.abs()

    def to_db(self, mel: torch.Tensor) -> torch.Tensor:
        return 20.0 * torch.log10(mel.clamp_min(self.floor))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.magnitude(audio))
