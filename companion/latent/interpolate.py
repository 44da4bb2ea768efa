"""Paths between two voices, and new voices from the latent prior.

Latent interpolation: both voices go into the latent space through the inverse of the
regression flow (zK = g^-1(u)), the path is a straight line in zK, and every step comes back
through the flow (u = g(zK)). Naive interpolation: a straight line in the parameters, rounded to
their steps; categorical parameters (algorithm, waveforms, modes...) switch half-way.
Transpose is not learnt by the models, so both modes move it naively.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from companion.data.presets import export
from companion.dx7.params import PARAMS, TRANSPOSE
from companion.dx7.sysex import single_voice_message
from companion.dx7.voice import Voice
from companion.io import together, write_atomic, write_audio
from companion.models.vae import load_model

_CATEGORICAL = np.array([p.index for p in PARAMS if p.is_categorical("numcat")])


def _steps(n: int) -> np.ndarray:
    if n < 2:
        raise ValueError(f"--steps must be at least 2 (the two end points), got {n}")
    return np.linspace(0.0, 1.0, n)


def naive_path(a: Voice, b: Voice, steps: int = 7) -> np.ndarray:
    """(steps, 145) voice values from a to b, linear in every parameter (rounded); categorical
    parameters take a's value before half-way, b's from half-way on."""
    t = _steps(steps)[:, None]
    va, vb = a.values.astype(np.float64), b.values.astype(np.float64)
    out = np.rint((1 - t) * va + t * vb).astype(np.int64)
    half = np.where(t < 0.5, va, vb).astype(np.int64)
    out[:, _CATEGORICAL] = half[:, _CATEGORICAL]
    return out


class Latent:
    """A loaded model's way between voices and its latent space (flow regression only)."""

    def __init__(self, model_dir=None):
        self.model, self.meta = load_model(model_dir)
        if self.meta["regression"] != "flow":
            raise ValueError(f"{model_dir}: an MLP regression has no inverse; latent paths and "
                             "new voices need a flow regression model")  # fmt: skip
        self.rep = self.model.rep

    def encode(self, values: np.ndarray) -> torch.Tensor:
        """(N, 145) voice values -> zK (N, D)."""
        u = torch.from_numpy(self.rep.encode(np.asarray(values, np.int64)))
        return self.model.preset_to_latent(u)

    def decode(self, z: torch.Tensor, transpose=24) -> np.ndarray:
        """zK (N, D) -> (N, 145) voice values (transpose given: the models do not learn it)."""
        return self.rep.decode(self.model.latent_to_preset(z).numpy(), transpose=transpose)

    def path(self, a: Voice, b: Voice, steps: int = 7) -> np.ndarray:
        """(steps, 145) voice values from a to b along a straight line in zK."""
        t = torch.from_numpy(_steps(steps)).float()[:, None]
        z = self.encode(np.stack([a.values, b.values]))
        transpose = naive_path(a, b, steps)[:, TRANSPOSE]
        return self.decode((1 - t) * z[:1] + t * z[1:], transpose=transpose)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, 145) new voices: zK drawn from the prior N(0, I), decoded."""
        gen = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn(n, self.model.dim_z, generator=gen))


def step_names(a: Voice, b: Voice, steps: int) -> list[str]:
    """DX7 names of the steps: the start of a's name, '>', the start of b's, the step."""
    return [f"{a.display_name[:3].strip()}>{b.display_name[:3].strip()} {i + 1}"[:10]
            for i in range(steps)]  # fmt: skip


def path_files(out_dir: str | Path, steps: int, wav: bool = False) -> list[Path]:
    """What ``write_path`` writes, in order (known before any work, to check it first)."""
    out = Path(out_dir)
    files = [out / f"step{i + 1}.syx" for i in range(steps)] + [out / "path.syx"]
    return files + ([out / f"step{i + 1}.wav" for i in range(steps)] if wav else [])


def write_path(values: np.ndarray, names: list[str], out_dir: str | Path, wav: bool = False,
               audio_cfg=None) -> list[Path]:  # fmt: skip
    """DIR/step1.syx ... (single-voice dumps), DIR/path.syx (a bank of all the steps, filled up
    with INIT VOICE), and with ``wav`` DIR/step1.wav ... rendered at note 60, velocity 85: all
    of them, or none."""
    if len(values) > 32:
        raise ValueError(f"{len(values)} steps do not fit one 32-voice bank; use 32 at most")
    files = path_files(out_dir, len(values), wav)
    steps = len(values)
    voices = [Voice.from_values(v, n) for v, n in zip(values, names)]
    renderer = None
    if wav:
        from companion.data.render import Renderer

        renderer = Renderer(audio_cfg) if audio_cfg is not None else Renderer()
    with together():
        for f, v in zip(files[:steps], voices):
            write_atomic(f, single_voice_message(v))
        export(voices, files[steps])
        for f, v in zip(files[steps + 1 :], voices if wav else []):
            write_audio(f, renderer.render(v), renderer.cfg.sample_rate)
    return files


def generate_bank(n: int = 32, model_dir=None, seed: int = 0) -> list[Voice]:
    """n new voices named "GEN 001"... from the latent prior."""
    if not 1 <= n <= 32:
        raise ValueError(f"--n must be 1..32 (one bank), got {n}")
    values = Latent(model_dir).sample(n, seed)
    return [Voice.from_values(v, f"GEN {i + 1:03d}") for i, v in enumerate(values)]
