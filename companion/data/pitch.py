"""Pitch of a note: the fundamental frequency of its held part, and distances in cents."""

from __future__ import annotations

import librosa
import numpy as np

HELD = (0.25, 2.75)  # s: where the pitch of a 4 s render is measured (key held 0..3 s)


def estimate_pitch(audio: np.ndarray, sr: int, start: int | None = None,
                   end: int | None = None) -> float:  # fmt: skip
    """Fundamental frequency (Hz) of the held part of a note, by YIN (librosa); NaN if the
    sound has no stable pitch. (pYIN took 0.45 s per note here, YIN 0.006 s; CREPE needs
    torchaudio, which does not load beside torch 2.13.)

    Args:
        audio: (T,) float32 at ``sr``.
        start, end: the held part, samples (default HELD, a render's); at least 4,096
            samples are read (from ``start``) where the audio has them.
    """
    start = int(HELD[0] * sr) if start is None else max(0, int(start))
    end = int(HELD[1] * sr) if end is None else int(end)
    end = min(len(audio), max(end, start + 4096))
    seg = audio[start:end]
    if len(seg) < 2048 or np.sqrt(np.mean(seg**2)) < 1e-3 * np.abs(audio).max():
        return float("nan")
    frame = 4096 if len(seg) >= 4096 else 2048
    f0 = librosa.yin(seg, fmin=max(30.0, 2.1 * sr / frame), fmax=4000.0, sr=sr,
                     frame_length=frame, hop_length=frame // 4)  # fmt: skip
    rms = librosa.feature.rms(y=seg, frame_length=frame, hop_length=frame // 4, center=True)[0]
    f0 = f0[: len(rms)][rms[: len(f0)] > 0.1 * rms.max()]
    if len(f0) == 0:
        return float("nan")
    cents = 1200 * np.log2(f0 / np.median(f0))
    if np.median(np.abs(cents)) > 50:  # the estimate wanders: no stable pitch
        return float("nan")
    return float(np.median(f0))


def cents(f: float, ref: float) -> float:
    return float(1200 * np.log2(f / ref)) if f > 0 and ref > 0 else float("nan")
