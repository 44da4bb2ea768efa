"""Automatic sound labels, as the paper: harmonic / percussive / sfx (a voice may have several).

Computed on the render at (MIDI 60, velocity 85), from a fixed 64-band mel spectrogram (hop
1024, 46 ms) whatever the dataset's config, so that every dataset labels a voice the same way:
- harmonic-percussive separation by median filtering (Fitzgerald 2010, as librosa's hpss,
  on the small mel grid so that it costs about as much as one render, not 60 renders);
- the share of the energy in the first 250 ms.
Thresholds were set on the first 3000 voices of the shared library so that the proportions come
close to the paper's (27.5k / 1.6k / 1.6k of 30.3k: 91 % harmonic, 5 % percussive, 5 % sfx);
there they give 91.7 % harmonic, 5.5 % percussive, 6.2 % sfx. The raw features are kept in the
dataset, so other thresholds can be tried without rendering again.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import median_filter

from companion.config import AudioConfig
from companion.data.audio import MelSpectrogram

LABELS = ("harmonic", "percussive", "sfx")
LABEL_AUDIO = AudioConfig(n_fft=1024, hop=1024, n_mels=64)
KERNEL = 9  # median filter length: 9 frames (0.42 s) for harmonic, 9 bands for percussive
EARLY_S = 0.25
FEATURES = ("harmonic_ratio", "early_energy", "rms")

HARMONIC_MIN = 0.7  # harmonic share of the HPSS energy
PERCUSSIVE_MIN = 0.7  # share of the energy in the first 250 ms
SILENT_RMS = 1e-4  # below this (-80 dBFS) a render has no label


class Labeler:
    """Label features of renders; one per worker process."""

    def __init__(self):
        self.mel = MelSpectrogram(LABEL_AUDIO)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(T,) float32 audio at 22 050 Hz -> (3,) float32: harmonic_ratio, early_energy, rms."""
        with torch.no_grad():
            spec = self.mel.magnitude(torch.from_numpy(np.ascontiguousarray(audio))).numpy()
        h = median_filter(spec, size=(1, KERNEL))
        p = median_filter(spec, size=(KERNEL, 1))
        h2, p2 = h**2, p**2
        total = h2 + p2 + 1e-20
        harmonic = float((spec**2 * (h2 / total) ** 2).sum())
        percussive = float((spec**2 * (p2 / total) ** 2).sum())
        energy = (spec**2).sum(axis=0)
        early = int(round(EARLY_S * LABEL_AUDIO.sample_rate / LABEL_AUDIO.hop))
        all_energy = float(energy.sum())
        return np.array(
            [
                harmonic / (harmonic + percussive) if harmonic + percussive > 0 else 0.0,
                float(energy[:early].sum()) / all_energy if all_energy > 0 else 0.0,
                float(np.sqrt(np.dot(audio, audio) / max(len(audio), 1))),
            ],
            dtype=np.float32,
        )


def labels_from_features(features: np.ndarray) -> np.ndarray:
    """(N, 3) features -> (N, 3) bool: harmonic, percussive, sfx.

    sfx: neither harmonic nor percussive (noisy, inharmonic or evolving sounds).
    """
    features = np.atleast_2d(features)
    audible = features[:, 2] >= SILENT_RMS
    harmonic = audible & (features[:, 0] >= HARMONIC_MIN)
    percussive = audible & (features[:, 1] >= PERCUSSIVE_MIN)
    sfx = audible & ~harmonic & ~percussive
    return np.stack([harmonic, percussive, sfx], axis=1)
