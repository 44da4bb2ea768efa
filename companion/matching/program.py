"""Audio -> DX7 voice: candidates from the network and the library, the engine in the loop.

For every input (any format soundfile reads), or several recordings of one sound together:

1. the recording read as a note (companion.matching.take): its onset, the end of its first
   note, its key-up, its key from its pitch (or as given), its level;
2. candidates: the network's answer and voices decoded from points sampled around its latent
   point, and, with a library, the library voices whose renders are nearest to the recording
   by full-resolution log-mel distance (companion.matching.index: the recording warped to the
   library's key and hold; the train split only when evaluating on the test split), at the
   pitch's key and an octave up;
3. what a recording does not tell, chosen with the engine (``Programmer._fit_play``): the
   key's octave (each key's candidates played at it), the key-on time to the sample, the
   velocity and the key-up, each kept where the best candidates match better so;
4. every candidate played exactly like the recording (key, velocity, hold, key-on, length)
   over a pool of worker processes and ranked by companion.matching.loss at the recording's
   level (spectral convergence and log-magnitude at two STFT sizes, log-mel, MFCCs, and a
   guard that ranks silence last);
5. the DX7-structured search from the best candidates (companion.matching.search), under the
   quality's budget of evaluations and seconds; with recordings at several keys or
   velocities, keyboard scaling and velocity sensitivity are searched too;
6. tuning of the result: when its pitch is more than 20 cents off the recording's, it is
   retuned, and the retuned voice is kept only if its pitch is closer and the loss no higher.

An answer is never silent where the input is audible: the loss ranks silence last, and a
silent result would give way to the best audible candidate. ``variants`` also keeps the best
distinct answers the search met (a bank to audition).

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
from companion.data.pitch import cents, estimate_pitch
from companion.data.render import Play, Renderer
from companion.dx7.params import representation
from companion.dx7.voice import Voice, param_index
from companion.io import check_outputs, uninterrupted
from companion.matching.evaluator import Evaluator
from companion.matching.loss import Target
from companion.matching.outputs import extensions, output_names, write_outputs
from companion.matching.search import refine
from companion.matching.take import Take, read_take
from companion.matching.tuning import TUNE_CENTS, retune
from companion.models.vae import load_model

LATENT_SPREAD = 0.5  # std of the candidates sampled around the network's latent point
AUDIBLE = 1e-3  # peak amplitude below which an answer counts as silent (-60 dBFS)
NETWORK_RMS = 0.5  # the median RMS of library renders (300 voices): the level it learned
LIBRARY_PEAK_DB = -2.3  # the median loudest-frame RMS of library renders (400 voices), dBFS
LEVELS_DB = (-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0)  # levels a recording is compared at, dB
FIT_STARTS = 3  # candidates a velocity or hold is checked with
VELOCITIES = (40, 64, 85, 105, 127)  # velocities tried where none was given ...
VELOCITY_FINE = (10, 5, 2, 1)  # ... then either way around the best of them
HOLD_NEAR = (-0.05, -0.02, 0.02, 0.05)  # s around the estimated key-up tried ...
HOLD_FINE = (0.01, 0.005)  # s: ... then either way around the best of them
KEY_ON_EARLIER = (0.005, 0.01, 0.02, 0.04, 0.08)  # s before the onset found a key-on is tried
OFFSET_FINE = (44, 22, 11, 4, 1)  # samples: then the key-on is moved by these, either way
# --variants N: the 64 N best voices evaluated are considered, best first (the search spends
# most evaluations near its best: among the 8 N best, a recording once had 1 distinct voice) ...
VARIANT_POOL = 64
DISTINCT_DB = 1.0  # ... and kept when their log-mel is this far (RMS, dB) from those kept
MAX_VARIANTS = 32  # a DX7 bank holds 32 voices


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
    takes: list[Take] = field(default_factory=list, repr=False)  # as read and played
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
        """One line: the losses of the network's answer, the best candidate and the result."""
        if self.error:
            return f"{self.input}: {self.error}"
        pitch = self.pitch_text()
        read = "; ".join(f"{t.path.name}: {t.describe()}" for t in self.takes)
        return (
            f"{self.input} -> {', '.join(map(str, self.outputs)) or '-'}: "
            f"'{self.voice.display_name}'; {read or f'note {self.note}'}; loss network "
            f"{self.network_loss:.3f}, best candidate {self.candidate_loss:.3f}, result "
            f"{self.loss:.3f}; {self.evals} evaluations, {self.seconds:.1f} s; {pitch}"
        )


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
        library: a preset database, a cartridge folder or an Index (None: $COMPANION_LIBRARY
            if set, else no retrieval).
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
        if library is None and os.environ.get("COMPANION_LIBRARY"):
            library = os.environ["COMPANION_LIBRARY"]
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
        # librosa's first calls compile (numba); torch's first inference picks its kernels;
        # the index's first query (and as_render's STFT) too
        take = read_take(Path("WARM UP"), self.cfg, 60, 85, 3.0, audio=audio)
        self.network(take, "WARM UP")
        if self.index is not None:
            self.index.query_embedding(self.index.embed_take(take.audio, take.play, 60), 1)
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
        """The network's answer, then samples around it in latent space. It hears the take
        as it was trained to: from the key-on, 4 s (cut or zero-padded), at the level of
        the renders it learned from."""
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
        return [Voice.from_values(v, name) for v in self.rep.decode(u)]

    def retrieve(self, takes: list[Take], exclude_ids=(), key: int | None = None
                 ) -> list[Voice]:  # fmt: skip
        """The library voices nearest to the takes, each compared with the library at its
        key (or ``key``; companion.matching.index.as_render); with several takes, their lists
        are merged in turn (each voice once), up to quality.retrieval voices.

        The library's log-mels hold the voices' own levels and a recording's level is
        arbitrary, so each take (but one at its voice's own level, Take.level_known) is
        compared at the level where its nearest voice is nearest:
        its own, and LEVELS_DB around the library's median loudness (LIBRARY_PEAK_DB), then
        half a step either side of the best."""
        lists = []
        for take in takes:
            play = take.play if key is None else dataclasses.replace(take.play, note=key)
            if take.level_known:
                lists.append([i for i, _ in self._query(take.audio, 0.0, play, exclude_ids)])
                continue
            base = LIBRARY_PEAK_DB - peak_db(take.audio)
            tried = {db: self._query(take.audio, base + db, play, exclude_ids)
                     for db in (*LEVELS_DB, -base)}  # fmt: skip
            best = min(tried, key=lambda db: tried[db][0][1] if tried[db] else np.inf)
            step = (LEVELS_DB[1] - LEVELS_DB[0]) / 2
            for db in (best - step, best + step):
                tried[db] = self._query(take.audio, base + db, play, exclude_ids)
            best = min(tried, key=lambda db: tried[db][0][1] if tried[db] else np.inf)
            lists.append([i for i, _ in tried[best]])
        ids: list[int] = []
        for rank in range(self.quality.retrieval):
            for ranked in lists:
                if rank < len(ranked) and ranked[rank] not in ids:
                    ids.append(ranked[rank])
        return self.index.voices(ids[: self.quality.retrieval])

    def _query(self, audio: np.ndarray, gain_db: float, play: Play, exclude_ids) -> list:
        """The index's nearest voices to ``audio`` made ``gain_db`` louder."""
        e = self.index.embed_take(audio * np.float32(10 ** (gain_db / 20)), play, play.note)
        return self.index.query_embedding(e, self.quality.retrieval, self.split, exclude_ids)

    # -- one input -----------------------------------------------------------------------
    def run(self, paths, note: int | str | None = "auto", velocity: int | None = None,
            hold: float | None = None, tune: bool = True, name: str | None = None,
            variants: int = 0) -> Result:  # fmt: skip
        """Program one input file, or several recordings of one sound (a list: one voice that
        matches them all, each at its own key and velocity).

        Args:
            note: the key played ("auto" or None: estimated from the pitch), one for all or a
                list (one per file). velocity: the same (None: 85). hold: seconds the key
                was held (None: estimated), one or a list.
            name: the voice's name (default: the first file's stem).
            variants: also keep this many distinct alternatives (Result.variants).

        Raises:
            AudioError: a file that cannot be used (the message names it).
        """
        paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        per = lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * len(paths)  # noqa: E731
        notes, vels, holds = per(note), per(velocity), per(hold)
        if not len(notes) == len(vels) == len(holds) == len(paths):
            raise ValueError(f"{len(paths)} recordings: give one note, velocity and hold each "
                             "or one for all")  # fmt: skip
        takes = [read_take(p, self.cfg, None if n in (None, "auto") else int(n), v, h)
                 for p, n, v, h in zip(paths, notes, vels, holds)]  # fmt: skip
        return self.run_takes(takes, tune, name=name, variants=variants)

    def run_audio(self, audio: np.ndarray, path: Path, note: int | str = 60, velocity: int = 85,
                  tune: bool = True, exclude_ids=(),
                  hold: float | None = 3.0) -> Result:  # fmt: skip
        """Program a sound already loaded, (T,) float32 at cfg.sample_rate; by default as the
        project renders (key 60 held 3 s from its start, velocity 85), at the voice's own
        level (candidates are compared at theirs)."""
        take = read_take(path, self.cfg, None if note in (None, "auto") else int(note), velocity,
                         hold, audio=audio, level_known=True)  # fmt: skip
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

    def _run(self, takes: list[Take], tune: bool, exclude_ids, name: str | None,
             variants: int) -> Result:  # fmt: skip
        """Program takes: candidates (the network's, the library's at the takes' keys),
        the hold checked with the engine where it was estimated, the search, the tuning.

        Args:
            takes: one recording, or several of one sound.
            exclude_ids: library ids never retrieved (a test voice's own id, say).
        """
        t0 = time.perf_counter()
        first = takes[0]
        name = voice_name(first.path.stem if name is None else name)
        voices = self.network(first, name)
        retrieval = self.index is not None and self.quality.retrieval and not self.network_only
        # the candidates of each key the first take may have been played at (with several
        # takes, or a given key: the takes' own keys)
        network = list(voices)
        options = {first.play.note: []}
        if retrieval:
            options[first.play.note] = [Voice.from_values(v.values, name)
                                        for v in self.retrieve(takes, exclude_ids)]  # fmt: skip
            voices = network + options[first.play.note]
            if len(takes) == 1 and "note" in first.estimated and np.isfinite(first.pitch_hz):
                up = first.play.note + 12
                if up <= 127:
                    options[up] = [Voice.from_values(v.values, name)
                                   for v in self.retrieve(takes, exclude_ids, key=up)]  # fmt: skip
        result = Result(first.path, note=first.play.note, velocity=first.play.velocity,
                        takes=takes)  # fmt: skip
        if len(voices) == 1:  # the network alone: one render here, no pool
            target = Target(first.audio, self.cfg.sample_rate,
                            match_level=not first.level_known)  # fmt: skip
            render = self.renderer.play(voices[0], first.play)
            voice, loss = voices[0], float(target.loss(render[None])[0])
            result.network_loss = result.candidate_loss = loss
            result.evals = 1
            losses = np.array([loss], np.float32)
        else:
            if len(takes) == 1:
                first, voices = self._fit_play(first, network, options, result)
                takes = [first]
            else:  # each recording's own key-on, velocity and hold, with the same candidates
                takes = [self._fit_play(t, voices, {t.play.note: []}, result)[0] for t in takes]
                first = takes[0]
            notes = {t.play.note for t in takes}
            vels = {t.play.velocity for t in takes}
            free = (("key",) if len(notes) > 1 else ()) + (("velocity",) if len(vels) > 1 else ())
            left = self.budget - (time.perf_counter() - t0)
            found = refine([t.audio for t in takes], voices, [t.play for t in takes],
                           free=free, match_level=not first.level_known,
                           max_evals=max(self.quality.evals - result.evals, 1),
                           budget_s=None if not np.isfinite(left) else max(left, 0.0),
                           evaluator=self.evaluator, seed=self.seed,
                           **self.search_options)  # fmt: skip
            voice, loss = found.voice, found.loss
            result.evals += found.evals
            losses = found.start_losses
            result.network_loss = float(losses[0])
            result.candidate_loss = float(losses.min())
            if variants:
                result.variants = self._variants(first, variants, name)
        result.takes = takes
        result.note, result.velocity = first.play.note, first.play.velocity
        voice, loss, rendered, err = self._tune(takes, voice, loss, result, tune)
        if np.abs(rendered).max() < AUDIBLE and len(voices) > 1:  # never a silent answer
            voice, loss, rendered = self._audible(first, voices, losses, result)
            err = cents(self._pitch(rendered, first), first.pitch_hz)
        result.voice, result.loss, result.pitch_error_cents = voice, loss, err
        result.audio, result.render = first.audio, rendered
        result.seconds = time.perf_counter() - t0
        return result

    def _fit_play(self, take: Take, network: list[Voice], options: dict[int, list[Voice]],
                  result: Result) -> tuple[Take, list[Voice]]:  # fmt: skip
        """What the recording does not tell, chosen with the engine: the key's octave, the
        velocity and the hold, where they were estimated.

        Each key's library candidates are played at that key (the pitch's note, and an octave
        up: a DX7 voice often sounds an octave below its key; see companion.matching.take)
        and the key whose best one matches best is kept (the ``network``'s candidates, which
        only one key has, do not vote; they join the chosen key's). Then the
        FIT_STARTS best of them are played with the key down KEY_ON_EARLIER (then moved by
        OFFSET_FINE samples either way), at VELOCITIES (then VELOCITY_FINE either way),
        then with the key released at other times (fractions of the estimate and of the
        sound's length); a value is kept when their best loss falls by more than 0.1 %. Every
        evaluation counts in the result's.

        Returns:
            (the take with the chosen key, velocity and hold, the chosen key's candidates).
        """
        ev = self.evaluator
        best = None
        for key, library in options.items():
            play = dataclasses.replace(take.play, note=key)
            ev.set_target(take.audio, play, not take.level_known)
            voices = network + library
            values = np.stack([v.values for v in voices]).astype(np.int64)
            losses = ev(values)
            result.evals += len(values)
            vote = float(losses[len(network) :].min()) if library else 0.0
            if best is None or vote < best[0]:
                best = (vote, play, voices, values, losses)
        _, play, voices, values, losses = best
        top = values[np.argsort(losses, kind="stable")[:FIT_STARTS]]
        loss = float(losses.min())
        sound_s = (play.length - play.offset) / play.sample_rate
        sr = play.sample_rate

        def fit(field_: str, values) -> None:  # each value in turn, kept when it matches better
            nonlocal play, loss
            for value in values:
                play, loss = self._try(take, top, play, loss, field_, value, result)

        # the onset found is where the sound rose out of the noise: a slow attack's key went
        # down before it; then to the sample
        o = play.offset
        if o <= OFFSET_FINE[0]:  # at the file's start, or nearly: the start itself
            fit("offset", [0] if o else [])
        else:
            fit("offset", sorted({max(0, o - round(s * sr)) for s in KEY_ON_EARLIER} - {o},
                                 reverse=True))  # fmt: skip
            for step in OFFSET_FINE:
                fit("offset", [o for o in (play.offset - step, play.offset + step)
                               if 0 <= o < play.length])  # fmt: skip
        if "velocity" in take.estimated:
            fit("velocity", [v for v in VELOCITIES if v != play.velocity])
            for step in VELOCITY_FINE:
                fit("velocity", [v for v in (play.velocity - step, play.velocity + step)
                                 if 1 <= v <= 127])  # fmt: skip
        if "hold" in take.estimated:
            holds = {round(h, 3) for h in (0.6 * play.hold_s, 1.5 * play.hold_s,
                                           *(play.hold_s + d for d in HOLD_NEAR),
                                           *(f * sound_s for f in (0.25, 0.5, 0.75, 1.0)))}
            fit("hold_s", [h for h in sorted(holds)
                           if 0.05 <= h <= sound_s and abs(h - play.hold_s) > 0.02])  # fmt: skip
            for step in HOLD_FINE:  # the key-up matters to the millisecond
                fit("hold_s", [h for h in (play.hold_s - step, play.hold_s + step)
                               if 0.05 <= h <= sound_s])  # fmt: skip
        return dataclasses.replace(take, play=play), voices

    def _try(self, take: Take, top: np.ndarray, play: Play, loss: float, field_: str, value,
             result: Result) -> tuple[Play, float]:  # fmt: skip
        """``play`` with ``field_`` set to ``value`` if the best of ``top`` matches better so."""
        trial = dataclasses.replace(play, **{field_: value})
        self.evaluator.set_target(take.audio, trial, not take.level_known)
        lv = float(self.evaluator(top).min())
        result.evals += len(top)
        return (trial, lv) if lv < loss * (1 - 1e-3) else (play, loss)

    def _variants(self, take: Take, n: int, name: str) -> list[Voice]:
        """Up to ``n`` distinct answers from every voice the search evaluated, best first:
        a voice joins when its render's log-mel (companion.matching.index.LogMel) is at
        least DISTINCT_DB (RMS, dB) from every one already chosen."""
        from companion.matching.index import EMBEDDING

        ranked = sorted(self.evaluator.cache.items(), key=lambda kv: kv[1])
        chosen, feats = [], []
        for key, _ in ranked[: VARIANT_POOL * n]:
            voice = Voice(key)
            f = EMBEDDING(self.renderer.play(voice, take.play)[take.play.offset :])
            if all(np.sqrt(np.mean((f - g) ** 2)) * 10 >= DISTINCT_DB for g in feats):
                chosen.append(voice)
                feats.append(f)
                if len(chosen) == n:
                    break
        return [Voice.from_values(v.values, f"{name[:7]:<7}{k + 1:>3}"[:10])
                for k, v in enumerate(chosen)]  # fmt: skip

    def _pitch(self, audio: np.ndarray, take: Take) -> float:
        """Pitch (Hz) of a render played as ``take``, over the same held part."""
        p = take.play
        start = p.offset + round(0.05 * p.sample_rate)
        end = p.offset + round(p.hold_s * p.sample_rate)
        return estimate_pitch(audio, self.cfg.sample_rate, start=start, end=end)

    def _audible(self, take: Take, voices: list[Voice], losses: np.ndarray,
                 result: Result) -> tuple[Voice, float, np.ndarray]:  # fmt: skip
        """The best candidate whose render is audible (INIT VOICE if none is)."""
        from companion.dx7.voice import INIT_VOICE

        for k in np.argsort(losses, kind="stable"):
            rendered = self.renderer.play(voices[k], take.play)
            result.evals += 1
            if np.abs(rendered).max() >= AUDIBLE:
                return voices[k], float(losses[k]), rendered
        voice = Voice.from_values(INIT_VOICE.values, voices[0].name)
        rendered = self.renderer.play(voice, take.play)
        target = Target(take.audio, match_level=not take.level_known)
        return voice, float(target.loss(rendered[None])[0]), rendered

    def _tune(self, takes: list[Take], voice: Voice, loss: float, result: Result,
              tune: bool) -> tuple[Voice, float, np.ndarray, float]:  # fmt: skip
        """Retune ``voice`` when its pitch is more than TUNE_CENTS off the first take's; the
        tuned voice is kept only if its pitch is closer and its loss no higher.

        Returns:
            (voice, loss, its render (T,) played as the first take, pitch error in cents;
            NaN without a stable pitch).
        """
        take = takes[0]
        rendered = self.renderer.play(voice, take.play)
        err = cents(self._pitch(rendered, take), take.pitch_hz)
        if tune and np.isfinite(err) and abs(err) > TUNE_CENTS:
            tuned = retune(voice, -err)
            audio_t = self.renderer.play(tuned, take.play)
            loss_t = self._loss(takes, tuned)
            result.evals += len(takes)
            err_t = cents(self._pitch(audio_t, take), take.pitch_hz)
            if loss_t <= loss and abs(err_t) < abs(err):
                result.tuned = True
                return tuned, loss_t, audio_t, err_t
        return voice, loss, rendered, err

    def _loss(self, takes: list[Take], voice: Voice) -> float:
        """One voice's loss against the takes, computed here (as the evaluator's)."""
        from companion.matching.evaluator import losses, make_targets

        options = self._evaluator.loss_options if self._evaluator is not None else {}
        options = {**options, "match_level": not takes[0].level_known}
        targets = make_targets([t.audio for t in takes], [t.play for t in takes], options)
        return float(losses(self.renderer, targets, [t.play for t in takes],
                            voice.values[None].astype(np.int64))[0])  # fmt: skip


def peak_db(audio: np.ndarray, frame: int = 1024) -> float:
    """The loudest 46 ms frame's RMS, dBFS (floored at -120)."""
    n = max(1, len(audio) // frame)
    x = np.zeros(n * frame, np.float32)
    x[: min(len(audio), n * frame)] = audio[: n * frame]
    rms = np.sqrt(np.mean(np.square(x.reshape(n, frame), dtype=np.float64), axis=1)).max()
    return float(20 * np.log10(max(rms, 1e-6)))


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


def _check_play(note, velocity, hold, inputs: int, together: bool) -> None:
    """One line for a note, velocity or hold no key could play (each one value or, with
    --together, one per input)."""
    for what, values, ok in (
        ("note", note, lambda v: v in (None, "auto") or 0 <= int(v) <= 127),
        ("velocity", velocity, lambda v: v is None or 1 <= int(v) <= 127),
        ("hold", hold, lambda v: v is None or 0 < float(v) <= 60),
    ):
        many = isinstance(values, (list, tuple))
        if many and (not together or len(values) != inputs):
            raise ValueError(f"--{what}: one value, or with --together one per input "
                             f"({inputs}), got {len(values)}")  # fmt: skip
        for v in values if many else [values]:
            if not ok(v):
                rule = {"note": "0..127 or auto", "velocity": "1..127", "hold": "0..60 s"}[what]
                raise ValueError(f"--{what} must be {rule}, got {v}")


def program(inputs, out_dir, model=None, note: int | str | None = "auto",
            velocity: int | None = None, hold: float | None = None,
            quality: str = DEFAULT_QUALITY, budget: float | None = None,
            library=None, jobs: int | None = None, candidates: int | None = None,
            tune: bool = True, wav: bool = False, png: bool = False, progress: bool = True,
            seed: int = 0, together: bool = False, variants: int = 0, overwrite: bool = False,
            on_result=None, index_progress: bool = False) -> list[Result]:  # fmt: skip
    """Program every input; a bad input is reported in its Result, the others go on.

    With ``together``, the inputs are recordings of one sound: one voice matches them all,
    named after the first (note, velocity and hold may then be lists, one per input). With
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
    _check_play(note, velocity, hold, len(inputs), together)
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
                                  variants=variants)  # fmt: skip
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
