"""Audio -> DX7 voice: candidates from the network and the library, the engine in the loop.

For every input (any format soundfile reads, heard as 4 s of mono 22 050 Hz):

1. the note it plays: given, or estimated from its pitch (``note="auto"``; 60 without one);
2. candidates: the network's answer, voices decoded from points sampled around its latent
   point, and, with a library, the library voices whose renders are nearest to the input by
   full-resolution log-mel distance (companion.matching.index: the train split only when
   evaluating on the test split);
3. every candidate rendered with the Dexed engine at the input's note and velocity over a pool
   of worker processes and ranked by companion.matching.loss (spectral convergence and
   log-magnitude at two STFT sizes, log-mel, and a guard that ranks silence last);
4. refinement: the DX7-structured search from the best candidates with the engine in the loop
   (companion.matching.search), under the quality's budget of evaluations and seconds;
5. tuning of the result: when its pitch is more than 20 cents off the input's, it is retuned,
   and the retuned voice is kept only if its pitch is closer and the loss no higher.

An answer is never silent where the input is audible: the loss ranks silence last, and a
silent result would give way to the best audible candidate.

The quality levels trade time for match (seconds per sound on a 2-core machine, measured by
bench/program_quality.py): ``fast`` about 1 s, ``good`` (the default) about 2.5 s, ``best``
about 5 s.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from companion.data.audio import AudioError, MelSpectrogram, load_audio
from companion.data.pitch import cents, estimate_pitch
from companion.data.render import Renderer
from companion.dx7.params import representation
from companion.dx7.voice import Voice, param_index
from companion.matching.evaluator import Evaluator
from companion.matching.loss import Target
from companion.matching.outputs import output_names, write_outputs
from companion.matching.search import refine
from companion.matching.tuning import TUNE_CENTS, note_of, retune
from companion.models.vae import load_model

LATENT_SPREAD = 0.5  # std of the candidates sampled around the network's latent point
AUDIBLE = 1e-3  # peak amplitude below which an answer counts as silent (-60 dBFS)


@dataclass(frozen=True)
class Quality:
    """One level of ``program``.

    Attributes:
        latent: candidates sampled around the network's latent point (besides its answer).
        retrieval: library voices nearest to the input joined to the candidates.
        evals: most engine evaluations in all (candidates included).
        seconds: time budget of one input, s (the search stops between batches).
    """

    latent: int
    retrieval: int
    evals: int
    seconds: float


QUALITIES = {
    "fast": Quality(latent=7, retrieval=16, evals=350, seconds=0.9),
    "good": Quality(latent=7, retrieval=16, evals=900, seconds=2.3),
    "best": Quality(latent=7, retrieval=16, evals=3000, seconds=4.7),
}
DEFAULT_QUALITY = "good"


@dataclass
class Result:
    """What ``program`` made of one input. Losses are companion.matching.loss's (0: equal)."""

    input: Path
    voice: Voice | None = None
    note: int = 60
    velocity: int = 85
    loss: float = float("nan")  # the result's
    network_loss: float = float("nan")  # the network's answer alone
    candidate_loss: float = float("nan")  # the best candidate, before refinement
    evals: int = 0  # engine renders spent on this input
    seconds: float = 0.0
    pitch_error_cents: float = float("nan")  # NaN: no stable pitch (in the input or result)
    tuned: bool = False
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    # for the .wav / .png outputs: the input (T,) and the chosen voice's render (T,), float32
    audio: np.ndarray | None = field(default=None, repr=False)
    render: np.ndarray | None = field(default=None, repr=False)

    def drop_audio(self) -> None:
        """Forget the arrays, so that many results stay small in memory."""
        self.audio = self.render = None

    def summary(self) -> str:
        """One line: the losses of the network's answer, the best candidate and the result."""
        if self.error:
            return f"{self.input}: {self.error}"
        pitch = ("no stable pitch" if not np.isfinite(self.pitch_error_cents)
                 else f"pitch {self.pitch_error_cents:+.0f} cents"
                 + (" (retuned)" if self.tuned else ""))  # fmt: skip
        return (
            f"{self.input} -> {', '.join(map(str, self.outputs)) or '-'}: "
            f"'{self.voice.display_name}', note {self.note}; loss network {self.network_loss:.3f}, "
            f"best candidate {self.candidate_loss:.3f}, result {self.loss:.3f}; "
            f"{self.evals} evaluations, {self.seconds:.1f} s; {pitch}"
        )


def voice_name(stem: str) -> str:
    """A DX7 name (10 printable ASCII characters) from a file name."""
    name = re.sub(r"[^ -~]", "_", stem)[:10]
    return name or "COMPANION"


def open_library(library, note: int = 60, velocity: int = 85):
    """A retrieval index (companion.matching.index.Index) of a preset database or cartridge
    folder, built on first use; an Index is returned as it is; None gives None."""
    if library is None:
        return None
    from companion.matching.index import Index

    if isinstance(library, Index):
        return library
    if not Path(library).exists():
        raise ValueError(f"{library}: no such preset database or cartridge folder")
    return Index.open(library, note=note, velocity=velocity)


class Programmer:
    """A loaded model, a retrieval index and a pool of engines, ready for many inputs.

    Args:
        model_dir: a model folder (None: the shipped default, companion/models/default).
        candidates: if given, the network's answer plus ``candidates - 1`` latent samples,
            overriding the quality's; 1 is the network's answer alone (no retrieval, no
            search, no pool of processes).
        seed: seeds the latent samples; with the same seed and no time limit the result is
            the same whatever the number of processes.
        library: a preset database, a cartridge folder or an Index (None: $COMPANION_LIBRARY
            if set, else no retrieval).
        quality: fast, good or best (see QUALITIES).
        jobs: engine processes (None: one per core).
        budget: seconds per input (None: the quality's; inf: no time limit, evaluations only).
        split: retrieve only voices of this split (evaluation on the test split: "train").
    """

    def __init__(self, model_dir=None, candidates: int | None = None, seed: int = 0,
                 library=None, quality: str = DEFAULT_QUALITY, jobs: int | None = None,
                 budget: float | None = None, split: str | None = None):  # fmt: skip
        if quality not in QUALITIES:
            raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
        if candidates is not None and candidates < 1:
            raise ValueError("--candidates must be at least 1")
        if budget is not None and not budget > 0:
            raise ValueError(f"--budget must be a positive number of seconds, got {budget}")
        if jobs is not None and jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        self.model, self.meta = load_model(model_dir)
        if self.model.notes != 1:
            raise ValueError("this model expects six notes; `program` takes one recording per "
                             "voice, so use a one-note model")  # fmt: skip
        self.cfg = self.model.cfg.audio
        self.mel = MelSpectrogram(self.cfg)
        self.renderer = Renderer(self.cfg)
        self.rep = representation(self.meta["encoding"])
        self.mean, self.std = self.meta["stats"]["mean_db"], self.meta["stats"]["std_db"]
        q = QUALITIES[quality]
        self.quality_name, self.quality = quality, q
        self.latent = q.latent if candidates is None else candidates - 1
        self.network_only = candidates == 1
        self.seed, self.jobs, self.split = seed, jobs, split
        self.budget = q.seconds if budget is None else float(budget)
        if library is None and os.environ.get("COMPANION_LIBRARY"):
            library = os.environ["COMPANION_LIBRARY"]
        self.index = open_library(library)
        self._evaluator: Evaluator | None = None
        self.search_options: dict = {}  # refine's design options (bench/program_quality.py)

    # -- resources -----------------------------------------------------------------------
    @property
    def evaluator(self) -> Evaluator:
        """The pool of engines, started on first use (programming one voice needs none)."""
        if self._evaluator is None:
            self._evaluator = Evaluator(self.jobs, self.cfg)
        return self._evaluator

    def warm_up(self) -> None:
        """Start the pool and make every first call now, so that the first input's time
        budget is not spent on them (about 1.5 s here)."""
        from companion.dx7.voice import INIT_VOICE

        audio = self.renderer.render(INIT_VOICE)
        estimate_pitch(audio, self.cfg.sample_rate)  # librosa's first call compiles (numba)
        self.propose(audio, "WARM UP")  # torch's first inference picks its kernels
        if self.network_only:
            return
        # one batch through every worker: their imports and first engine calls happen here
        # (distinct voices: the evaluator renders a repeated voice once)
        self.evaluator.set_target(audio)
        warm = np.tile(INIT_VOICE.values.astype(np.int64), (4 * self.evaluator.processes, 1))
        warm[:, param_index("output_level", 1)] = np.linspace(60, 99, len(warm)).astype(int)
        self.evaluator(warm)

    def close(self) -> None:
        if self._evaluator is not None:
            self._evaluator.close()
            self._evaluator = None

    def __enter__(self) -> Programmer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutting down: the pool goes with it
            pass

    # -- candidates ----------------------------------------------------------------------
    def spectrogram(self, audio: np.ndarray) -> torch.Tensor:
        """(T,) audio -> (n_mels, frames) dB, as the model hears it."""
        with torch.no_grad():
            return self.mel(torch.from_numpy(np.ascontiguousarray(audio, np.float32)))

    def propose(self, audio: np.ndarray, name: str, exclude_ids=()) -> list[Voice]:
        """The network's answer first, then samples around it in latent space, then the
        library's nearest voices (at most ``quality.retrieval``)."""
        x = ((self.spectrogram(audio) - self.mean) / self.std)[None, None]
        with torch.no_grad():
            mu, _ = self.model.encoder(x)
            zk = self.model.flow(mu)[0]
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(self.latent, zk.shape[1], generator=gen)
            z = torch.cat([zk, zk + LATENT_SPREAD * noise])
            u = self.model.latent_to_preset(z).numpy()
        voices = [Voice.from_values(v, name) for v in self.rep.decode(u)]
        if self.index is not None and self.quality.retrieval and not self.network_only:
            near = self.index.query(audio, self.quality.retrieval, self.split, exclude_ids)
            voices += [Voice.from_values(v.values, name)
                       for v in self.index.voices([i for i, _ in near])]  # fmt: skip
        return voices

    # -- one input -----------------------------------------------------------------------
    def run(self, path: Path, note: int | str = 60, velocity: int = 85,
            tune: bool = True) -> Result:  # fmt: skip
        """Program one input file; raises AudioError for a file that cannot be used."""
        return self.run_audio(load_audio(path, self.cfg), Path(path), note, velocity, tune)

    def run_audio(self, audio: np.ndarray, path: Path, note: int | str = 60, velocity: int = 85,
                  tune: bool = True, exclude_ids=()) -> Result:  # fmt: skip
        """Program one sound (see ``_run``), this process on one thread: the pool's workers
        have the cores, and BLAS / torch threads here would only compete with them (measured:
        with them, ``good`` made 92 evaluations in its 2.3 s instead of about 400)."""
        from threadpoolctl import threadpool_limits

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(1):
                return self._run(audio, path, note, velocity, tune, exclude_ids)
        finally:
            torch.set_num_threads(threads)

    def _run(self, audio: np.ndarray, path: Path, note: int | str, velocity: int, tune: bool,
             exclude_ids) -> Result:  # fmt: skip
        """Program one sound.

        Args:
            audio: (cfg.n_samples,) float32 at cfg.sample_rate.
            path: names the voice (its stem) and the Result.
            note: MIDI note the input plays, or "auto" (from its pitch; 60 without one).
            exclude_ids: library ids never retrieved (a test voice's own id, say).
        """
        t0 = time.perf_counter()
        path = Path(path)
        f_in = estimate_pitch(audio, self.cfg.sample_rate)
        if note == "auto":
            note = note_of(f_in)
        result = Result(path, note=int(note), velocity=int(velocity))
        voices = self.propose(audio, voice_name(path.stem), exclude_ids)
        target = Target(audio, self.cfg.sample_rate)
        if len(voices) == 1:  # the network alone: one render here, no pool
            render = self.renderer.render(voices[0], result.note, result.velocity)
            voice, loss = voices[0], float(target.loss(render[None])[0])
            result.network_loss = result.candidate_loss = loss
            result.evals = 1
        else:
            left = self.budget - (time.perf_counter() - t0)
            found = refine(audio, voices, result.note, result.velocity,
                           max_evals=self.quality.evals,
                           budget_s=None if not np.isfinite(left) else max(left, 0.0),
                           evaluator=self.evaluator, seed=self.seed,
                           **self.search_options)  # fmt: skip
            voice, loss, result.evals = found.voice, found.loss, found.evals
            result.network_loss = float(found.start_losses[0])
            result.candidate_loss = float(found.start_losses.min())
        voice, loss, rendered, err = self._tune(target, voice, loss, f_in, result, tune)
        if np.abs(rendered).max() < AUDIBLE and len(voices) > 1:  # never a silent answer
            voice, loss, rendered = self._audible(target, voices, found.start_losses, result)
            err = cents(estimate_pitch(rendered, self.cfg.sample_rate), f_in)
        result.voice, result.loss, result.pitch_error_cents = voice, loss, err
        result.audio, result.render = audio, rendered
        result.seconds = time.perf_counter() - t0
        return result

    def _audible(self, target: Target, voices: list[Voice], losses: np.ndarray,
                 result: Result) -> tuple[Voice, float, np.ndarray]:  # fmt: skip
        """The best candidate whose render is audible (INIT VOICE if none is)."""
        from companion.dx7.voice import INIT_VOICE

        for k in np.argsort(losses, kind="stable"):
            rendered = self.renderer.render(voices[k], result.note, result.velocity)
            result.evals += 1
            if np.abs(rendered).max() >= AUDIBLE:
                return voices[k], float(losses[k]), rendered
        voice = Voice.from_values(INIT_VOICE.values, voices[0].name)
        rendered = self.renderer.render(voice, result.note, result.velocity)
        return voice, float(target.loss(rendered[None])[0]), rendered

    def _tune(self, target: Target, voice: Voice, loss: float, f_in: float, result: Result,
              tune: bool) -> tuple[Voice, float, np.ndarray, float]:  # fmt: skip
        """Retune ``voice`` when its pitch is more than TUNE_CENTS off the input's; the tuned
        voice is kept only if its pitch is closer and its loss no higher.

        Returns:
            (voice, loss, its render (T,), pitch error in cents; NaN without a stable pitch).
        """
        rendered = self.renderer.render(voice, result.note, result.velocity)
        err = cents(estimate_pitch(rendered, self.cfg.sample_rate), f_in)
        if tune and np.isfinite(err) and abs(err) > TUNE_CENTS:
            tuned = retune(voice, -err)
            audio_t = self.renderer.render(tuned, result.note, result.velocity)
            loss_t = float(target.loss(audio_t[None])[0])
            result.evals += 1
            err_t = cents(estimate_pitch(audio_t, self.cfg.sample_rate), f_in)
            if loss_t <= loss and abs(err_t) < abs(err):
                result.tuned = True
                return tuned, loss_t, audio_t, err_t
        return voice, loss, rendered, err


def check_out_dir(out_dir: Path) -> Path:
    """Create the output folder, or say in one line why it cannot be written to."""
    out_dir = Path(out_dir)
    for parent in [out_dir, *out_dir.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{out_dir}: {parent} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"{out_dir}: the output folder is not writable")
    return out_dir


def program(inputs, out_dir, model=None, note: int | str = 60, velocity: int = 85,
            quality: str = DEFAULT_QUALITY, budget: float | None = None,
            library=None, jobs: int | None = None, candidates: int | None = None,
            tune: bool = True, wav: bool = False, png: bool = False, progress: bool = True,
            seed: int = 0, on_result=None) -> list[Result]:  # fmt: skip
    """Program every input; a bad input is reported in its Result, the others go on.

    Everything that can be checked is checked before the first input is computed (note,
    velocity, quality, the output folder, the model, the library). Results keep no audio, so
    memory stays flat over many inputs. ``on_result(result)`` is called as each one is done.
    """
    if note != "auto" and not 0 <= int(note) <= 127 or not 1 <= velocity <= 127:
        raise ValueError(f"note must be 0..127 or auto and velocity 1..127, got {note} and "
                         f"{velocity}")  # fmt: skip
    inputs = [Path(p) for p in inputs]
    out_dir = check_out_dir(Path(out_dir))
    names = output_names(inputs, out_dir)
    from tqdm import tqdm

    results = []
    with Programmer(model, candidates, seed=seed, library=library, quality=quality, jobs=jobs,
                    budget=budget) as prog:  # fmt: skip
        prog.warm_up()
        for path, name in tqdm(list(zip(inputs, names)), desc="programming", unit="input",
                               disable=not progress or len(inputs) < 2):  # fmt: skip
            try:
                result = prog.run(path, note, velocity, tune)
                result.outputs = write_outputs(result, out_dir, name, prog.cfg.sample_rate, wav,
                                               png)  # fmt: skip
            except AudioError as e:
                result = Result(path, error=str(e))
            result.drop_audio()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


__all__ = ["QUALITIES", "Programmer", "Result", "check_out_dir", "program", "retune", "voice_name"]
