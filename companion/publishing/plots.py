"""Small image helpers shared by the notebooks and the demo site."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from companion.config import AudioConfig
from companion.data.audio import MelSpectrogram
from companion.io import atomic_path


def spectrogram_png(audio: np.ndarray, path: str | Path, cfg: AudioConfig = AudioConfig()) -> Path:
    """Write the mel spectrogram (dB, low notes at the bottom) of a (T,) sound as a PNG, one
    pixel per band and frame, colours from -100 to +40 dB for every image; returns the path."""
    with torch.no_grad():
        spec = MelSpectrogram(cfg)(torch.from_numpy(np.asarray(audio, np.float32))).numpy()
    path = Path(path)
    save_spectrogram(spec, path)
    return path


def save_spectrogram(spec_db: np.ndarray, target) -> None:
    """A (n_mels, frames) dB spectrogram as PNG into a path (written atomically) or a binary
    file object, low bands at the bottom, colours from -100 to +40 dB."""
    import matplotlib.pyplot as plt

    def write(to) -> None:
        plt.imsave(to, np.asarray(spec_db), origin="lower", cmap="magma", vmin=-100.0,
                   vmax=40.0, format="png")  # fmt: skip

    if isinstance(target, (str, Path)):
        with atomic_path(target) as tmp:
            write(tmp)
    else:
        write(target)
