"""The paper's metrics: parameter errors of inferred presets, and audio distances of their
renders to the original sound.

Parameter metrics use one grouping for every model, so that rows of a table compare: the
categorical parameters of NumCat (algorithm, osc key sync, LFO key sync, LFO wave, operator
mode, curves) count as right or wrong; every other learnable parameter is numerical, its error
measured on its real steps as a fraction of its range.
"""

from __future__ import annotations

import librosa
import numpy as np

from companion.data.pitch import cents, estimate_pitch
from companion.dx7.params import PARAMS

_CAT = np.array([p.index for p in PARAMS if p.is_categorical("numcat")])
_NUM = np.array([p.index for p in PARAMS if not p.is_categorical("numcat")])
_NUM_MAX = np.array([p.cardinality - 1 for p in PARAMS if not p.is_categorical("numcat")])
_KV = {p.index for p in PARAMS if p.key_dependent or p.velocity_dependent}
_NUM_KV = np.array([i in _KV for i in _NUM])
_CAT_KV = np.array([i in _KV for i in _CAT])


def parameter_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-voice parameter errors.

    Args:
        true, pred: (N, 145) integer voices.

    Returns:
        num_mae, cat_acc, kv_num_mae, kv_cat_acc: each (N,) (key/velocity-dependent
        parameters only for the kv_ ones).
    """
    true, pred = np.asarray(true, np.int64), np.asarray(pred, np.int64)
    err = np.abs(true[:, _NUM] - pred[:, _NUM]) / _NUM_MAX
    right = true[:, _CAT] == pred[:, _CAT]
    return {
        "num_mae": err.mean(1),
        "cat_acc": right.mean(1),
        "kv_num_mae": err[:, _NUM_KV].mean(1),
        "kv_cat_acc": right[:, _CAT_KV].mean(1),
    }


def stft(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    return np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop))


SILENT_NORM = 1e-3  # ||S||_F of a target below this: silent, its convergence undefined (NaN)


def spectral_convergence(target: np.ndarray, estimate: np.ndarray) -> float:
    """||S - S_hat||_F / ||S||_F of |STFT| (1024 / 256), as the paper; NaN for a silent target."""
    return convergence_of(stft(target), stft(estimate))


def convergence_of(s: np.ndarray, s_hat: np.ndarray) -> float:
    """Spectral convergence of two magnitude spectrograms (freq, frames); NaN if s is silent."""
    norm = np.linalg.norm(s)
    return float(np.linalg.norm(s - s_hat) / norm) if norm > SILENT_NORM else float("nan")


def log_stft_mae(target: np.ndarray, estimate: np.ndarray) -> float:
    """Mean |log10 |S| - log10 |S_hat||, magnitudes floored at 1e-4, as the paper."""
    return log_mae_of(stft(target), stft(estimate))


def log_mae_of(s: np.ndarray, s_hat: np.ndarray) -> float:
    """Mean |log10 s - log10 s_hat| of two magnitude spectrograms, floored at 1e-4."""
    return float(np.mean(np.abs(np.log10(np.maximum(s, 1e-4)) - np.log10(np.maximum(s_hat, 1e-4)))))


def mfcc_mae(target: np.ndarray, estimate: np.ndarray, sr: int = 22050) -> float:
    """Mean absolute difference of 13 MFCCs (librosa defaults, 2048 / 512)."""
    a = librosa.feature.mfcc(y=target, sr=sr, n_mfcc=13)
    b = librosa.feature.mfcc(y=estimate, sr=sr, n_mfcc=13)
    return float(np.mean(np.abs(a - b)))


def multiscale_spectral(target: np.ndarray, estimate: np.ndarray) -> float:
    """Multi-scale spectral distance: mean over STFT sizes 256..2048 (hop 1/4) of the L1
    distance of log magnitudes (floor 1e-5) plus the spectral convergence."""
    total = 0.0
    sizes = (256, 512, 1024, 2048)
    for n in sizes:
        s, s_hat = stft(target, n, n // 4), stft(estimate, n, n // 4)
        if np.linalg.norm(s) <= SILENT_NORM:
            return float("nan")
        log = np.mean(np.abs(np.log(np.maximum(s, 1e-5)) - np.log(np.maximum(s_hat, 1e-5))))
        total += log + np.linalg.norm(s - s_hat) / np.linalg.norm(s)
    return float(total / len(sizes))


def audio_metrics(target: np.ndarray, estimate: np.ndarray, sr: int = 22050) -> dict[str, float]:
    """All audio distances of one render (T,) to its target (T,)."""

    return {
        "sc": spectral_convergence(target, estimate),
        "log_stft_mae": log_stft_mae(target, estimate),
        "mfcc_mae": mfcc_mae(target, estimate, sr),
        "mss": multiscale_spectral(target, estimate),
        "pitch_cents": abs(cents(estimate_pitch(estimate, sr), estimate_pitch(target, sr))),
    }
