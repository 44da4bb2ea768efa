"""What ``program`` writes for an input: DIR/<name>.syx, and .wav / .png and the bank of
alternatives <name>-variants.syx (``--variants``) when asked.

Names are chosen for all inputs at once, before anything is computed: inputs that share a stem
(``a.flac`` and ``a.ogg``) get distinct names (``a-flac``, ``a-ogg``), and a name whose files
would land on an input (``--wav`` into the inputs' own folder), on a file already in the folder
(unless ``overwrite``) or on another input's files gets the first free number (``a-2``), so
that nothing is written twice and nothing a user owns is replaced. Every file goes through
companion.io; the files of one input appear together or not at all.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from companion.dx7.sysex import bank_message, single_voice_message
from companion.dx7.voice import INIT_VOICE, Voice
from companion.io import save_figure, together, write_atomic, write_audio


def extensions(wav: bool = False, png: bool = False, variants: bool = False) -> tuple[str, ...]:
    """The endings of the files ``write_outputs`` writes for an input (after its name)."""
    return (".syx", *(("-variants.syx",) if variants else ()), *((".wav",) if wav else ()),
            *((".png",) if png else ()))  # fmt: skip


def output_names(inputs: list[Path], out_dir: Path, ends: tuple[str, ...] = (".syx",),
                 overwrite: bool = False) -> list[str]:  # fmt: skip
    """One name (no extension) per input, in order, whose files (``name + end`` for ``ends``)
    are distinct from each other's, from the inputs and (unless ``overwrite``) from the files
    already in ``out_dir``; see the module docstring. Case is ignored in the comparisons, as a
    macOS or Windows disk does."""
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    stems = Counter(p.stem.casefold() for p in inputs)
    wanted = [f"{p.stem}-{p.suffix.lstrip('.') or 'noext'}" if stems[p.stem.casefold()] > 1
              else p.stem for p in inputs]  # fmt: skip
    key = lambda p: os.path.realpath(p).casefold()  # noqa: E731
    taken = {key(p) for p in inputs}
    if not overwrite and out_dir.is_dir():
        taken |= {key(p) for p in out_dir.iterdir()}
    names = []
    for base in wanted:
        name, n = base, 1
        while any(key(out_dir / f"{name}{end}") in taken for end in ends):
            n += 1
            name = f"{base}-{n}"
        taken |= {key(out_dir / f"{name}{end}") for end in ends}
        names.append(name)
    return names


def write_outputs(result, out_dir: Path, name: str, sample_rate: int, wav: bool,
                  png: bool) -> list[Path]:  # fmt: skip
    """Write a Result's voice (and render / spectrograms) as DIR/<name>.*, all or none;
    returns the paths."""
    out_dir = Path(out_dir)
    with together():  # the .syx, the bank, the .wav and the .png of an input: all or none
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
