"""Audio -> DX7 voice: candidates from the network and the library, the engine in the loop.

For every input (any format soundfile reads), or several recordings of one sound together, a
reader can follow ``Programmer._run`` top to bottom:

1. the recording read as a note (companion.matching.take): its onset, the end of its first
   note, its key-up, its heard pitch and the key of that note (or the key given), its level;
2. candidates, every one made to play the recording at that key: the network's answer and
   voices decoded around its latent point (it hears the recording as if played at C4: its
   voices are moved there), and, with a library, the voices nearest to the recording
   (companion.matching.retrieval: their starts at the key where they sound its pitch, then
   renders exactly like it; the train split only when evaluating on the test split);
3. what a recording does not tell, chosen with the engine (companion.matching.play_fit): the
   key-on time to the sample, the velocity and the key-up, each kept where the best
   candidates match better so;
4. every candidate played exactly like the recording (key, velocity, hold, key-on, length) and
   ranked by companion.matching.loss at the recording's level;
5. the DX7-structured search from the best candidates (companion.matching.search), under the
   quality's budget of evaluations and seconds; with recordings at several keys or
   velocities, keyboard scaling and velocity sensitivity are searched too;
6. tuning of the result (companion.matching.tuning.tune): when its pitch is more than 20 cents
   off the recording's, it is retuned, and kept only if its pitch is closer and the loss no
   higher.

An answer is never silent where the input is audible: the loss ranks silence last, and a
silent result would give way to the best audible candidate. ``variants`` also keeps the best
distinct answers the search met (companion.matching.variants).

The quality levels trade time for match (seconds per sound on a 2-core machine, measured by
bench/program_quality.py): ``fast`` about 1 s, ``good`` (the default) about 2.5 s, ``best``
about 5 s.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from companion.data.audio import AudioError, MelSpectrogram
from companion.data.render import Renderer
from companion.dx7.params import representation
from companion.dx7.voice import Voice, param_index
from companion.io import check_outputs, uninterrupted
from companion.matching.evaluator import Evaluator, losses, make_targets
from companion.matching.loss import Target
from companion.matching.outputs import extensions, output_names, write_outputs
from companion.matching.play_fit import FIT_STARTS, fit_play
from companion.matching.retrieval import SHORTLIST, rank, shortlist
from companion.matching.search import SearchResult, refine
from companion.matching.take import Take, read_take
from companion.matching.tuning import pitch_error, retune, shift_key
from companion.matching.tuning import tune as tune_voice
from companion.matching.variants import MAX_VARIANTS, variants
from companion.models.vae import load_model

LATENT_SPREAD = 0.5  # std of the candidates sampled around the network's latent point
AUDIBLE = 1e-3  # peak amplitude below which an answer counts as silent (-60 dBFS)
NETWORK_RMS = 0.5  # the median RMS of library renders (300 voices): the level it learned
NETWORK_KEY = 60  # the key of every sound it learned from


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
    # offline work: a minute a sound, twice the library voices (more operators for the block
    # moves, more starts to search from); the evaluations are not what stops it
    "max": Quality(latent=7, retrieval=32, evals=50000, seconds=60.0),
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
    takes: list[Take] = field(default_factory=list, repr=False)  # as read and played
    library_ids: list[int] = field(default_factory=list)  # retrieval's voices, nearest first
    variants: list[Voice] = field(default_factory=list, repr=False)  # --variants, best first
    # for the .wav / .png outputs: the input (T,) and the chosen voice's render (T,), float32
    audio: np.ndarray | None = field(default=None, repr=False)
    render: np.ndarray | None = field(default=None, repr=False)

    def drop_audio(self) -> None:
        """Forget the arrays, so that many results stay small in memory."""
        self.audio = self.render = None
        self.takes = [dataclasses.replace(t, audio=np.zeros(0, np.float32)) for t in self.takes]

    def pitch_text(self) -> str:
        """The result's pitch against the input's: ``pitch +3 cents (retuned)`` or ``no stable
        pitch``."""
        if not np.isfinite(self.pitch_error_cents):
            return "no stable pitch"
        return f"pitch {self.pitch_error_cents:+.0f} cents" + (" (retuned)" if self.tuned else "")

    def summary(self) -> str:
        """One line: how the voice plays the recording, and the losses of the network's
        answer, the best candidate and the result."""
        if self.error:
            return f"{self.input}: {self.error}"
        pitch = self.pitch_text()
        read = "; ".join(f"{t.path.name}: {t.describe()}" for t in self.takes)
        return (
            f"{self.input} -> {', '.join(map(str, self.outputs)) or '-'}: "
            f"'{self.voice.display_name}' {read or f'plays at key {self.note}'}; loss network "
            f"{self.network_loss:.3f}, best candidate {self.candidate_loss:.3f}, result "
            f"{self.loss:.3f}; {self.evals} evaluations, {self.seconds:.1f} s; {pitch}"
        )


def lead(takes: list[Take]) -> int:
    """Which of several recordings of one sound its voice is found for first: the middle one
    by key (then velocity), the most typical of the sound; the only one of one."""
    order = sorted(range(len(takes)), key=lambda k: (takes[k].play.note, takes[k].play.velocity))
    return order[len(takes) // 2]


def voice_name(stem: str) -> str:
    """A DX7 name (10 printable ASCII characters) from a file name."""
    name = re.sub(r"[^ -~]", "_", stem)[:10]
    return name or "COMPANION"


def open_library(library, note: int = 60, velocity: int = 85, progress: bool = False):
    """A retrieval index (companion.matching.index.Index) of a preset database or cartridge
    folder, built on first use (with a progress bar on stderr if ``progress``); an Index is
    returned as it is; None gives None."""
    if library is None:
        return None
    from companion.matching.index import Index

    if isinstance(library, Index):
        return library
    if not Path(library).exists():
        raise ValueError(f"{library}: no such preset database or cartridge folder")
    return Index.open(library, note=note, velocity=velocity, progress=progress)


class Programmer:
    """A loaded model, a retrieval index and a pool of engines, ready for many inputs.

    Args:
        model_dir: a model folder (None: the shipped default, companion/models/default).
        candidates: if given, the network's answer plus ``candidates - 1`` latent samples,
            overriding the quality's; 1 is the network's answer alone (no retrieval, no
            search, no pool of processes).
        seed: seeds the latent samples; with the same seed and no time limit the result is
            the same whatever the number of processes.
        library: a preset database, a cartridge folder or an Index (None: no retrieval; the
            command, the app and the notebooks pass companion.data.library.find()'s).
        quality: fast, good or best (see QUALITIES).
        jobs: engine processes (None: one per core).
        budget: seconds per input (None: the quality's; inf: no time limit, evaluations only).
        split: retrieve only voices of this split (evaluation on the test split: "train").
        progress: show a progress bar while a library's index is built (stderr).
    """

    def __init__(self, model_dir=None, candidates: int | None = None, seed: int = 0,
                 library=None, quality: str = DEFAULT_QUALITY, jobs: int | None = None,
                 budget: float | None = None, split: str | None = None,
                 progress: bool = False):  # fmt: skip
        if candidates is not None and candidates < 1:
            raise ValueError("--candidates must be at least 1")
        if budget is not None and not budget > 0:
            raise ValueError(f"--budget must be a positive number of seconds, got {budget}")
        if jobs is not None and jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        self.candidates = candidates
        self.set_quality(quality, budget)  # before the model: a bad name fails at once
        self.model, self.meta = load_model(model_dir)
        if self.model.notes != 1:
            raise ValueError("this model expects six notes; `program` takes one recording per "
                             "voice, so use a one-note model")  # fmt: skip
        self.cfg = self.model.cfg.audio
        self.mel = MelSpectrogram(self.cfg)
        self.renderer = Renderer(self.cfg)
        self.rep = representation(self.meta["encoding"])
        self.mean, self.std = self.meta["stats"]["mean_db"], self.meta["stats"]["std_db"]
        self.network_only = candidates == 1
        self.seed, self.jobs, self.split = seed, jobs, split
        self.index = open_library(library, progress=progress)
        self._evaluator: Evaluator | None = None
        self.search_options: dict = {}  # refine's design options (bench/program_quality.py)

    def set_quality(self, quality: str, budget: float | None = None) -> None:
        """Use another quality (fast, good, best) for the next inputs (the web app's choice);
        ``budget``: seconds per input, None for the quality's."""
        if quality not in QUALITIES:
            raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
        q = QUALITIES[quality]
        self.quality_name, self.quality = quality, q
        self.latent = q.latent if self.candidates is None else self.candidates - 1
        self.budget = q.seconds if budget is None else float(budget)

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
        # librosa's first calls compile (numba, pYIN too); torch's first inference picks its
        # kernels; the index's first query too
        take = read_take(Path("WARM UP"), self.cfg, None, 85, 3.0, audio=audio)
        self.network(take, "WARM UP")
        if self.index is not None:
            self.index.near(take.audio, take.play, list(take.pitches), 1)
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

    def network(self, take: Take, name: str) -> list[Voice]:
        """The network's answer, then samples around it in latent space, each moved to play
        the take at its key. It hears the take as it was trained to: from the key-on, 4 s (cut
        or zero-padded), at the level of the renders it learned from, as if played at
        NETWORK_KEY (a voice that cannot be moved is kept as it is)."""
        audio = np.zeros(self.cfg.n_samples, np.float32)
        x = take.audio[take.play.offset : take.play.offset + self.cfg.n_samples]
        audio[: len(x)] = x * (NETWORK_RMS / max(_rms(x), 1e-9))
        x = ((self.spectrogram(audio) - self.mean) / self.std)[None, None]
        with torch.no_grad():
            mu, _ = self.model.encoder(x)
            zk = self.model.flow(mu)[0]
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(self.latent, zk.shape[1], generator=gen)
            z = torch.cat([zk, zk + LATENT_SPREAD * noise])
            u = self.model.latent_to_preset(z).numpy()
        voices = [Voice.from_values(v, name) for v in self.rep.decode(u)]
        shift = NETWORK_KEY - take.play.note
        return [shift_key(v, shift) or v for v in voices]

    # -- one input -----------------------------------------------------------------------
    def run(self, paths, note: int | str | None = "auto", velocity: int | None = None,
            hold: float | None = None, tune: bool = True, name: str | None = None,
            variants: int = 0, onset: float | None = None, exclude_ids=()) -> Result:  # fmt: skip
        """Program one input file, or several recordings of one sound (a list: one voice that
        matches them all, each at its own key and velocity).

        Args:
            note: the key it was played at ("auto" or None: the note of its heard pitch),
                one for all or a list (one per file). velocity: the same (None: chosen with
                the engine). hold: seconds the key was held (None: estimated), one or a list.
                onset: the key-on, s from the file's start (None: estimated), one or a list.
            name: the voice's name (default: the first file's stem).
            variants: also keep this many distinct alternatives (Result.variants).
            exclude_ids: library ids never retrieved (a test voice's own, in a bench).

        Raises:
            AudioError: a file that cannot be used (the message names it).
        """
        paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        per = lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * len(paths)  # noqa: E731
        notes, vels, holds, onsets = per(note), per(velocity), per(hold), per(onset)
        if not len(notes) == len(vels) == len(holds) == len(onsets) == len(paths):
            raise ValueError(f"{len(paths)} recordings: give one note, velocity, hold and "
                             "onset each or one for all")  # fmt: skip
        takes = [read_take(p, self.cfg, None if n in (None, "auto") else int(n), v, h,
                           onset_s=o)
                 for p, n, v, h, o in zip(paths, notes, vels, holds, onsets)]  # fmt: skip
        return self.run_takes(takes, tune, exclude_ids, name=name, variants=variants)

    def run_audio(self, audio: np.ndarray, path: Path, note: int | str = 60, velocity: int = 85,
                  tune: bool = True, exclude_ids=(), hold: float | None = 3.0,
                  onset: float | None = 0.0) -> Result:  # fmt: skip
        """Program a sound already loaded, (T,) float32 at cfg.sample_rate; by default as the
        project renders (key 60 held 3 s from sample 0, velocity 85), at the voice's own
        level (candidates are compared at theirs). None: estimated."""
        take = read_take(path, self.cfg, None if note in (None, "auto") else int(note), velocity,
                         hold, audio=audio, level_known=True, onset_s=onset)  # fmt: skip
        return self.run_takes([take], tune, exclude_ids)

    def run_takes(self, takes: list[Take], tune: bool = True, exclude_ids=(),
                  name: str | None = None, variants: int = 0) -> Result:  # fmt: skip
        """Program takes (see ``_run``), this process on one thread: the pool's workers have
        the cores, and BLAS / torch threads here would only compete with them (measured:
        with them, ``good`` made 92 evaluations in its 2.3 s instead of about 400)."""
        from threadpoolctl import threadpool_limits

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(1):
                return self._run(takes, tune, exclude_ids, name, variants)
        finally:
            torch.set_num_threads(threads)

    def find_candidates(self, takes: list[Take], name: str, exclude_ids=(),
                        result: Result | None = None
                        ) -> tuple[list[Take], list[Voice], list]:  # fmt: skip
        """Steps 2 and 3: the takes with their key-on, velocity and key-up chosen, and the
        candidates, each playing the lead take (``lead``) at its key.

        The network's answers and the library voices whose starts are nearest to the lead
        take (the first stage of retrieval, companion.matching.retrieval) come first; each
        take's key-on, velocity and key-up are chosen with the nearest starts (the first
        stage does not depend on them), or the network's best answers without a library;
        then the shortlist is played like the lead take and the quality's ``retrieval``
        nearest join the candidates.

        Returns:
            (the takes, in their order, the candidates: the network's then the library's,
            the library's as companion.matching.retrieval.Candidate, nearest first).
        """
        k = lead(takes)
        voices = self.network(takes[k], name)
        library = []
        if self.index is not None and self.quality.retrieval and not self.network_only:
            library = shortlist(self.index, takes[k], SHORTLIST, self.split, exclude_ids)
            if library:  # the velocity the nearest start matched at: where the fit starts
                takes = [dataclasses.replace(t, play=dataclasses.replace(
                    t.play, velocity=library[0].velocity)) if "velocity" in t.estimated
                    else t for t in takes]  # fmt: skip
        if len(voices) == 1:  # the network alone: nothing to choose with
            return takes, voices, []
        if library:
            top = np.stack([c.voice.values for c in library[:FIT_STARTS]]).astype(np.int64)
        fitted = []
        # the lead take first: recordings of one sound whose velocities are not given share
        # the lead's (fitted one by one, they differed by chance, and velocity sensitivity
        # was then searched to fit those differences)
        for j in [k] + [j for j in range(len(takes)) if j != k]:
            take = takes[j]
            if j != k and "velocity" in take.estimated and "velocity" in takes[k].estimated:
                take = dataclasses.replace(take, play=dataclasses.replace(
                    take.play, velocity=fitted[0].play.velocity),
                    estimated=tuple(e for e in take.estimated if e != "velocity"))  # fmt: skip
            if not library:
                values = np.stack([v.values for v in voices]).astype(np.int64)
                self.evaluator.set_target(take.audio, take.play, not take.level_known)
                start = self.evaluator(values)
                if result is not None:
                    result.evals += len(values)
                top = values[np.argsort(start, kind="stable")[:FIT_STARTS]]
            take, _, spent = fit_play(self.evaluator, take, top)
            if result is not None:
                result.evals += spent
            fitted.append(take)
        library = rank(self.evaluator, fitted[0], library, self.quality.retrieval)
        voices += [Voice.from_values(c.voice.values, name) for c in library]
        order = [k] + [j for j in range(len(takes)) if j != k]
        fitted = [fitted[order.index(j)] for j in range(len(takes))]  # back in their order
        return fitted, voices, library

    def _run(self, takes: list[Take], tune: bool, exclude_ids, name: str | None,
             n_variants: int) -> Result:  # fmt: skip
        """Program takes (the module docstring's steps 2 to 6).

        Args:
            takes: one recording, or several of one sound.
            exclude_ids: library ids never retrieved (a test voice's own id, say).
        """
        t0 = time.perf_counter()
        name = voice_name(takes[0].path.stem if name is None else name)
        result = Result(takes[0].path, takes=takes)
        # 2-3. candidates, and how the recording was played
        takes, voices, library = self.find_candidates(takes, name, exclude_ids, result)
        result.library_ids = [c.id for c in library]
        first = takes[0]
        if len(voices) == 1:  # the network alone: one render here, no pool
            target = Target(first.audio, self.cfg.sample_rate,
                            match_level=not first.level_known)  # fmt: skip
            voice = voices[0]
            loss = float(target.loss(self.renderer.play(voice, first.play)[None])[0])
            result.network_loss = result.candidate_loss = loss
            result.evals = 1
            start_losses = np.array([loss], np.float32)
        else:
            # 4-5. every candidate played so, and the search from the best
            found = self._search(takes, voices, result, t0)
            voice, loss = found.voice, found.loss
            start_losses = found.start_losses
            result.network_loss = float(start_losses[0])
            result.candidate_loss = float(start_losses.min())
            if n_variants:
                result.variants = variants(self.evaluator, self.renderer, first.play,
                                           n_variants, name)  # fmt: skip
        result.takes = takes
        result.note, result.velocity = first.play.note, first.play.velocity
        # 6. tuning, and never a silent answer
        render = lambda v: self.renderer.play(v, first.play)  # noqa: E731
        if tune:
            voice, loss, rendered, err, result.tuned = tune_voice(
                voice, loss, render, first, lambda v: self._loss(takes, v))
            result.evals += len(takes) if result.tuned else 0
        else:
            rendered = render(voice)
            err = pitch_error(rendered, first.play, first.pitch_hz, first.audio)
        if np.abs(rendered).max() < AUDIBLE and len(voices) > 1:
            voice, loss, rendered = self._audible(first, voices, start_losses, result)
            err = pitch_error(rendered, first.play, first.pitch_hz, first.audio)
        result.voice, result.loss, result.pitch_error_cents = voice, loss, err
        result.audio, result.render = first.audio, rendered
        result.seconds = time.perf_counter() - t0
        return result

    def _search(self, takes: list[Take], voices: list[Voice], result: Result,
                t0: float) -> SearchResult:  # fmt: skip
        """Steps 4 and 5: the search from the candidates, within what is left of the
        quality's evaluations and seconds (``result.evals`` counts them).

        With several recordings at different keys (or velocities), a voice is first found
        for the lead one alone (the sound), with half of what is left, then searched from
        there against all of them, keyboard scaling (and velocity sensitivity) first (how the
        sound changes across the keyboard), then the rest: ranked against all at once, the
        near-twin of the sound, whose scaling differs, lost to voices that are wrong
        everywhere (measured: three recordings at C2, C4, C6 came out worse at six other keys
        than the C4 recording alone). Returns the second search's result, its start losses
        those of the candidates against the lead recording.
        """

        def search(ts: list[Take], starts: list[Voice], share: float,
                   first: tuple[str, ...] = ()) -> SearchResult:  # fmt: skip
            notes = {t.play.note for t in ts}
            vels = {t.play.velocity for t in ts}
            free = (("key",) if len(notes) > 1 else ()) + (("velocity",) if len(vels) > 1 else ())
            left_s = self.budget - (time.perf_counter() - t0)
            left = self.quality.evals - result.evals
            found = refine([t.audio for t in ts], starts, [t.play for t in ts], free=free,
                           match_level=not ts[0].level_known,
                           max_evals=max(round(share * left), 1),
                           budget_s=None if not np.isfinite(left_s) else max(share * left_s, 0.0),
                           evaluator=self.evaluator, seed=self.seed, first=first,
                           **self.search_options)  # fmt: skip
            result.evals += found.evals
            return found

        if len({(t.play.note, t.play.velocity) for t in takes}) == 1:
            return search(takes, voices, 1.0)
        sound = search([takes[lead(takes)]], voices, 0.5)
        whole = search(takes, [sound.voice], 1.0, first=("scaling",))
        return dataclasses.replace(whole, start_losses=sound.start_losses)

    def _audible(self, take: Take, voices: list[Voice], losses_: np.ndarray,
                 result: Result) -> tuple[Voice, float, np.ndarray]:  # fmt: skip
        """The best candidate whose render is audible (INIT VOICE if none is)."""
        from companion.dx7.voice import INIT_VOICE

        for k in np.argsort(losses_, kind="stable"):
            rendered = self.renderer.play(voices[k], take.play)
            result.evals += 1
            if np.abs(rendered).max() >= AUDIBLE:
                return voices[k], float(losses_[k]), rendered
        voice = Voice.from_values(INIT_VOICE.values, voices[0].name)
        rendered = self.renderer.play(voice, take.play)
        target = Target(take.audio, match_level=not take.level_known)
        return voice, float(target.loss(rendered[None])[0]), rendered

    def _loss(self, takes: list[Take], voice: Voice) -> float:
        """One voice's loss against the takes, computed here (as the evaluator's)."""
        options = self._evaluator.loss_options if self._evaluator is not None else {}
        options = {**options, "match_level": not takes[0].level_known}
        targets = make_targets([t.audio for t in takes], [t.play for t in takes], options)
        return float(losses(self.renderer, targets, [t.play for t in takes],
                            voice.values[None].astype(np.int64))[0])  # fmt: skip


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


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


def _check_play(note, velocity, hold, inputs: int, together: bool, onset=None) -> None:
    """One line for a note, velocity, hold or onset no key could play (each one value or,
    with --together, one per input)."""
    for what, values, ok in (
        ("note", note, lambda v: v in (None, "auto") or 0 <= int(v) <= 127),
        ("velocity", velocity, lambda v: v is None or 1 <= int(v) <= 127),
        ("hold", hold, lambda v: v is None or 0 < float(v) <= 60),
        ("onset", onset, lambda v: v is None or 0 <= float(v) < 60),
    ):
        many = isinstance(values, (list, tuple))
        if many and (not together or len(values) != inputs):
            raise ValueError(f"--{what}: one value, or with --together one per input "
                             f"({inputs}), got {len(values)}")  # fmt: skip
        for v in values if many else [values]:
            if not ok(v):
                rule = {"note": "0..127 or auto", "velocity": "1..127", "hold": "0..60 s",
                        "onset": "0..60 s"}[what]  # fmt: skip
                raise ValueError(f"--{what} must be {rule}, got {v}")


def program(inputs, out_dir, model=None, note: int | str | None = "auto",
            velocity: int | None = None, hold: float | None = None, onset: float | None = None,
            quality: str = DEFAULT_QUALITY, budget: float | None = None,
            library=None, jobs: int | None = None, candidates: int | None = None,
            tune: bool = True, wav: bool = False, png: bool = False, progress: bool = True,
            seed: int = 0, together: bool = False, variants: int = 0, overwrite: bool = False,
            on_result=None, index_progress: bool = False) -> list[Result]:  # fmt: skip
    """Program every input; a bad input is reported in its Result, the others go on.

    With ``together``, the inputs are recordings of one sound: one voice matches them all,
    named after the first (note, velocity, hold and onset may then be lists, one per input). With
    ``variants`` N, each result also writes a 32-voice bank ``<name>-variants.syx`` of its N
    best distinct answers, padded with INIT VOICE. Output names never replace an input, nor
    (unless ``overwrite``) a file already in ``out_dir`` (see companion.matching.outputs).
    A write that fails (a full disk) stops the batch with an OSError naming the file; the
    inputs done before it stay written and reported.

    Everything that can be checked is checked before the first input is computed (note,
    velocity, quality, the output folder, the model, the library). Results keep no audio, so
    memory stays flat over many inputs. ``on_result(result)`` is called as each one is done.
    ``index_progress``: a progress bar while the library's index is built (first use).
    """
    inputs = [Path(p) for p in inputs]
    _check_play(note, velocity, hold, len(inputs), together, onset)
    if not 0 <= int(variants) <= MAX_VARIANTS:
        raise ValueError(f"--variants must be 0..{MAX_VARIANTS}, got {variants}")
    out_dir = check_out_dir(Path(out_dir))
    jobs_in = [inputs] if together else [[p] for p in inputs]
    ends = extensions(wav, png, variants > 0)
    names = output_names([j[0] for j in jobs_in], out_dir, ends, overwrite)
    check_outputs(out_dir / f"{name}{end}" for name in names for end in ends)
    from tqdm import tqdm

    results = []
    with Programmer(model, candidates, seed=seed, library=library, quality=quality, jobs=jobs,
                    budget=budget, progress=index_progress) as prog:  # fmt: skip
        prog.warm_up()
        for paths, name in tqdm(list(zip(jobs_in, names)), desc="programming", unit="input",
                                disable=not progress or len(jobs_in) < 2):  # fmt: skip
            try:
                result = prog.run(paths if together else paths[0], note, velocity, hold, tune,
                                  variants=variants, onset=onset)  # fmt: skip
            except AudioError as e:
                result = Result(paths[0], error=str(e))
            # Ctrl-C waits until an input's files are in place and reported, so that what the
            # lines above the interruption say is exactly what is on disk
            with uninterrupted():
                if result.error is None:
                    result.outputs = write_outputs(result, out_dir, name, prog.cfg.sample_rate,
                                                   wav, png)  # fmt: skip
                result.drop_audio()
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results


__all__ = ["QUALITIES", "Programmer", "Result", "check_out_dir", "program", "retune", "voice_name"]
