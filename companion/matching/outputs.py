"""What ``program`` writes for an input: DIR/<name>.syx, and .wav / .png and the bank of
alternatives <name>-variants.syx (``--variants``) when asked.

Names are chosen for all inputs at once, before anything is computed: inputs that share a stem
(``a.flac`` and ``a.ogg``) get distinct names (``a-flac``, ``a-ogg``), and a name whose output
would land on one of the inputs (``--wav`` into the inputs' own folder) gets ``-dx7`` added, so
an input is never overwritten. Every file goes through companion.io.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from companion.dx7.sysex import bank_message, single_voice_message
from companion.dx7.voice import INIT_VOICE, Voice
from companion.io import save_figure, write_atomic, write_audio

EXTENSIONS = (".syx", ".wav", ".png", "-variants.syx")


def output_names(inputs: list[Path], out_dir: Path) -> list[str]:
    """One distinct output name (no extension) per input, in order; see the module docstring."""
    inputs = [Path(p) for p in inputs]
    stems = Counter(p.stem for p in inputs)
    names = [f"{p.stem}-{p.suffix.lstrip('.') or 'noext'}" if stems[p.stem] > 1 else p.stem
             for p in inputs]  # fmt: skip
    seen: Counter = Counter()
    for i, name in enumerate(names):  # still equal (the same name in two folders): number them
        seen[name] += 1
        if seen[name] > 1:
            names[i] = f"{name}-{seen[name]}"
    taken = {os.path.realpath(p) for p in inputs}
    out = []
    for name in names:
        while any(os.path.realpath(out_dir / f"{name}{ext}") in taken for ext in EXTENSIONS):
            name += "-dx7"
        out.append(name)
    return out


def write_outputs(result, out_dir: Path, name: str, sample_rate: int, wav: bool,
                  png: bool) -> list[Path]:  # fmt: skip
    """Write a Result's voice (and render / spectrograms) as DIR/<name>.*; returns the paths."""
    out_dir = Path(out_dir)
    paths = [write_atomic(out_dir / f"{name}.syx", single_voice_message(result.voice))]
    if result.variants:
        paths.append(write_atomic(out_dir / f"{name}-variants.syx",
                                  bank_message(bank(result.variants))))  # fmt: skip
    if wav:
        paths.append(write_audio(out_dir / f"{name}.wav", result.render, sample_rate))
    if png:
        paths.append(_png(result, out_dir / f"{name}.png", sample_rate))
    return paths


def bank(voices: list[Voice]) -> list[Voice]:
    """32 voices: these (at most 32), then INIT VOICE."""
    voices = list(voices)[:32]
    return voices + [INIT_VOICE] * (32 - len(voices))


def _png(result, path: Path, sample_rate: int) -> Path:
    """Input and result spectrograms side by side (log-mel, dB), titled with the metrics."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from companion.evaluation.metrics import spectral_convergence

    sc = spectral_convergence(result.audio, result.render)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, audio, title in zip(axes, (result.audio, result.render),
                                ("input", f"DX7 voice '{result.voice.display_name}'")):  # fmt: skip
        mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_fft=1024, hop_length=256)
        ax.imshow(librosa.power_to_db(np.maximum(mel, 1e-12), top_db=100), origin="lower",
                  aspect="auto", cmap="magma")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("frame (11.6 ms)")
    axes[0].set_ylabel("mel band")
    fig.suptitle(f"{result.input.name}: spectral convergence {sc:.3f}")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)
    return path
