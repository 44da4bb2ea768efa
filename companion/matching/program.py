"""Audio -> DX7 voice: the network's answer, candidates judged by the real engine, and tuning.

For every input: load it (any format soundfile reads) as the model hears it, let the network
propose a preset, add candidates sampled around its latent point (and, with a library, the
nearest library voices in latent space), render every candidate with the Dexed engine at the
input's note and velocity, keep the one whose spectrogram is closest to the input's, then
retune it when its pitch is off by more than 20 cents.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from companion.data.audio import AudioError, MelSpectrogram, load_audio
from companion.data.pitch import cents, estimate_pitch
from companion.data.render import Renderer
from companion.dx7.params import representation
from companion.dx7.sysex import single_voice_message
from companion.dx7.voice import Voice, param_index
from companion.io import write_atomic
from companion.models.vae import load_model

DEFAULT_CANDIDATES = 128  # 0.42 s per input on a 2-core CPU (bench/program_time.py)
LATENT_SPREAD = 0.5  # std of the candidates sampled around the network's latent point
LIBRARY_CANDIDATES = 32  # library voices nearest in latent space added to the candidates
TUNE_CENTS = 20.0


@dataclass
class Result:
    """What ``program`` made of one input."""

    input: Path
    voice: Voice | None = None
    distance_db: float = float("nan")  # log-mel MAE between input and result, dB
    network_distance_db: float = float("nan")  # the same for the network's answer alone
    pitch_error_cents: float = float("nan")
    tuned: bool = False
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    # for the .wav / .png outputs: the input (T,), the chosen voice's render (T,), and their
    # mel spectrograms (n_mels, frames) in dB
    audio: np.ndarray | None = field(default=None, repr=False)
    render: np.ndarray | None = field(default=None, repr=False)
    audio_spec: torch.Tensor | None = field(default=None, repr=False)
    render_spec: torch.Tensor | None = field(default=None, repr=False)


def voice_name(stem: str) -> str:
    """A DX7 name (10 printable ASCII characters) from a file name."""
    name = re.sub(r"[^ -~]", "_", stem)[:10]
    return name or "COMPANION"


_TRANSPOSE = param_index("transpose")


def _fine_and_detune(values: np.ndarray, rest: float) -> tuple[np.ndarray, float]:
    """Every ratio-mode operator's fine frequency and detune moved by ``rest`` cents as nearly
    as their steps allow; returns the new values and the worst error left (cents)."""
    values, worst = values.copy(), 0.0
    options = np.arange(100)
    for op in range(1, 7):
        if values[param_index("osc_mode", op)] == 1:
            continue
        fi, di = param_index("fine", op), param_index("detune", op)
        # the fine step whose ratio (1 + fine / 100) comes closest to the wanted shift
        shift = 1200 * np.log2((1 + options / 100) / (1 + values[fi] / 100))
        best = int(options[np.argmin(np.abs(shift - rest))])
        left = rest - shift[best]
        # detune: about 1.2 cents a step around middle C (measured with the engine)
        detune = int(np.clip(values[di] + np.round(left / DETUNE_CENTS), 0, 14))
        left -= (detune - values[di]) * DETUNE_CENTS
        values[fi], values[di], worst = best, detune, max(worst, abs(left))
    return values, worst


DETUNE_CENTS = 1.2


def retune(voice: Voice, shift_cents: float) -> Voice:
    """Shift a voice's pitch: transpose for whole semitones, then every ratio-mode operator's
    fine frequency and detune for the rest (fixed-frequency operators are left alone). Fine
    only raises a ratio, so a small downward shift becomes a semitone down and fine up."""
    base = voice.values.astype(np.int64)
    best, best_err = base, float("inf")
    for semis in sorted({int(np.floor(shift_cents / 100)), int(np.round(shift_cents / 100))}):
        values = base.copy()
        values[_TRANSPOSE] = int(np.clip(base[_TRANSPOSE] + semis, 0, 48))
        rest = shift_cents - 100 * (values[_TRANSPOSE] - base[_TRANSPOSE])
        values, err = _fine_and_detune(values, rest)
        if err < best_err - 1e-9:
            best, best_err = values, err
    return Voice.from_values(best, voice.name)


def library_values(library) -> np.ndarray:
    """(N, 145) int64 unique voices of a preset database, a cartridge folder or an array."""
    if isinstance(library, np.ndarray):
        return library.astype(np.int64)
    from companion.data import presets
    from companion.dx7.sysex import read_syx

    path = Path(library)
    if path.is_dir():
        seen = {}
        for f in presets.find_cartridges(path):
            for _, v in read_syx(f).voices:
                seen.setdefault(v.params, v)
        voices = list(seen.values())
    else:
        voices = [v for _, v in presets.load(path)]
    if not voices:
        raise ValueError(f"{path}: no DX7 voices in this library")
    return np.stack([v.values for v in voices]).astype(np.int64)


class Programmer:
    """A loaded model with its spectrogram and an engine, ready for many inputs."""

    def __init__(self, model_dir=None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0,
                 library=None):  # fmt: skip
        """Args:
        model_dir: a model folder (None: companion/models/default).
        candidates: the network's answer plus candidates - 1 samples around it.
        library: a preset database (.sqlite), a folder of .syx cartridges, or (N, 145) voice
            values; its LIBRARY_CANDIDATES voices nearest in latent space join the candidates.
        """
        self.model, self.meta = load_model(model_dir)
        if self.model.notes != 1:
            raise ValueError("this model expects six notes; `program` takes one recording per "
                             "voice, so use a one-note model")  # fmt: skip
        self.cfg = self.model.cfg.audio
        self.mel = MelSpectrogram(self.cfg)
        self.renderer = Renderer(self.cfg)
        self.rep = representation(self.meta["encoding"])
        self.mean, self.std = self.meta["stats"]["mean_db"], self.meta["stats"]["std_db"]
        if candidates < 1:
            raise ValueError("--candidates must be at least 1")
        self.candidates, self.seed = candidates, seed
        self.library = None if library is None else library_values(library)
        if self.library is not None:
            u = torch.from_numpy(self.rep.encode(self.library))
            self.library_z = torch.cat([self.model.preset_to_latent(u[i : i + 4096])
                                        for i in range(0, len(u), 4096)])  # fmt: skip

    def spectrogram(self, audio: np.ndarray) -> torch.Tensor:
        """(T,) audio -> (n_mels, frames) dB."""
        with torch.no_grad():
            return self.mel(torch.from_numpy(audio))

    def propose(self, spec_db: torch.Tensor, name: str) -> list[Voice]:
        """The network's answer first, then candidates sampled around it in latent space."""
        x = ((spec_db - self.mean) / self.std)[None, None]
        with torch.no_grad():
            mu, _ = self.model.encoder(x)
            zk = self.model.flow(mu)[0]
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(self.candidates - 1, zk.shape[1], generator=gen)
            z = torch.cat([zk, zk + LATENT_SPREAD * noise])
            u = self.model.latent_to_preset(z).numpy()
        values = self.rep.decode(u)
        if self.library is not None:
            near = torch.cdist(zk, self.library_z)[0]
            k = min(LIBRARY_CANDIDATES, len(near))
            values = np.concatenate([values, self.library[near.topk(k, largest=False).indices]])
        return [Voice.from_values(v, name) for v in values]

    def run(self, path: Path, note: int = 60, velocity: int = 85, tune: bool = True) -> Result:
        """Program one input; raises AudioError for a file that cannot be used."""
        return self.run_audio(load_audio(path, self.cfg), Path(path), note, velocity, tune)

    def run_audio(self, audio: np.ndarray, path: Path, note: int = 60, velocity: int = 85,
                  tune: bool = True) -> Result:  # fmt: skip
        """Program one sound: (cfg.n_samples,) float32 at cfg.sample_rate."""
        result = Result(Path(path))
        target = self.spectrogram(audio)
        voices = self.propose(target, voice_name(Path(path).stem))
        renders = np.stack([self.renderer.render(v, note, velocity) for v in voices])
        specs = torch.stack([self.spectrogram(a) for a in renders])
        dist = (specs - target).abs().mean(dim=(1, 2)).numpy()
        best = int(np.argmin(dist))
        result.voice, result.distance_db = voices[best], float(dist[best])
        result.network_distance_db = float(dist[0])
        rendered, rendered_spec = renders[best], specs[best]
        f_in = estimate_pitch(audio, self.cfg.sample_rate)
        f_out = estimate_pitch(rendered, self.cfg.sample_rate)
        result.pitch_error_cents = cents(f_out, f_in)
        if tune and abs(result.pitch_error_cents) > TUNE_CENTS:
            tuned = retune(result.voice, -result.pitch_error_cents)
            audio_t = self.renderer.render(tuned, note, velocity)
            err = cents(estimate_pitch(audio_t, self.cfg.sample_rate), f_in)
            if abs(err) < abs(result.pitch_error_cents):
                result.voice, result.pitch_error_cents, result.tuned = tuned, err, True
                rendered, rendered_spec = audio_t, self.spectrogram(audio_t)
                result.distance_db = float((rendered_spec - target).abs().mean())
        result.audio, result.render = audio, rendered
        result.audio_spec, result.render_spec = target, rendered_spec
        return result


def write_outputs(result: Result, out_dir: Path, cfg, wav: bool, png: bool) -> None:
    """DIR/<stem>.syx, and .wav / .png when asked; each written through a temporary file."""
    stem = result.input.stem
    syx = write_atomic(out_dir / f"{stem}.syx", single_voice_message(result.voice))
    result.outputs.append(syx)
    if wav:
        import soundfile as sf

        tmp = out_dir / f".{stem}.wav.tmp"
        sf.write(tmp, result.render, cfg.sample_rate, format="WAV", subtype="PCM_16")
        os.replace(tmp, out_dir / f"{stem}.wav")
        result.outputs.append(out_dir / f"{stem}.wav")
    if png:
        result.outputs.append(_png(result, out_dir / f"{stem}.png", cfg))


def _png(result: Result, path: Path, cfg) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from companion.evaluation.metrics import spectral_convergence

    sc = spectral_convergence(result.audio, result.render)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, spec, title in zip(axes, (result.audio_spec.numpy(), result.render_spec.numpy()),
                               ("input", f"DX7 voice '{result.voice.display_name}'")):  # fmt: skip
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=cfg.floor_db)
        ax.set_title(title)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("mel band")
    fig.suptitle(f"{result.input.name}: spectral convergence {sc:.3f}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def program(inputs, out_dir, model=None, note: int = 60, velocity: int = 85,
            candidates: int = DEFAULT_CANDIDATES, tune: bool = True, wav: bool = False,
            png: bool = False, progress: bool = True, library=None) -> list[Result]:  # fmt: skip
    """Program every input; a bad input is reported in its Result, the others go on."""
    if not 0 <= note <= 127 or not 1 <= velocity <= 127:
        raise ValueError(f"note must be 0..127 and velocity 1..127, got {note} and {velocity}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prog = Programmer(model, candidates, library=library)
    results = []
    from tqdm import tqdm

    for path in tqdm([Path(p) for p in inputs], desc="programming", unit="input",
                     disable=not progress or len(inputs) < 2):  # fmt: skip
        try:
            result = prog.run(path, note, velocity, tune)
            write_outputs(result, out_dir, prog.cfg, wav, png)
        except AudioError as e:
            result = Result(path, error=str(e))
        results.append(result)
    return results
