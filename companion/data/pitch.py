"""Pitch of a note: the fundamental frequency of its held part, and distances in cents."""

from __future__ import annotations

import librosa
import numpy as np

HELD = (0.25, 2.75)  # s: where the pitch is measured (the key is held 0..3 s)


def estimate_pitch(audio: np.ndarray, sr: int) -> float:
    """Fundamental frequency (Hz) of the held part of a note, by YIN (librosa); NaN if the
    sound has no stable pitch. (pYIN took 0.45 s per note here, YIN 0.006 s; CREPE needs
    torchaudio, which does not load beside torch 2.13.)"""
    seg = audio[int(HELD[0] * sr) : int(HELD[1] * sr)]
    if len(seg) < 4096 or np.sqrt(np.mean(seg**2)) < 1e-4:
        return float("nan")
    f0 = librosa.yin(seg, fmin=30.0, fmax=4000.0, sr=sr, frame_length=4096, hop_length=1024)
    rms = librosa.feature.rms(y=seg, frame_length=4096, hop_length=1024, center=True)[0]
    f0 = f0[: len(rms)][rms[: len(f0)] > 0.1 * rms.max()]
    if len(f0) == 0:
        return float("nan")
    cents = 1200 * np.log2(f0 / np.median(f0))
    if np.median(np.abs(cents)) > 50:  # the estimate wanders: no stable pitch
        return float("nan")
    return float(np.median(f0))


def cents(f: float, ref: float) -> float:
    return float(1200 * np.log2(f / ref)) if f > 0 and ref > 0 else float("nan")
