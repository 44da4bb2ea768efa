"""Rendering voices with the Dexed engine (dexed-py), one note or the paper's six.

All voices are played as in the paper: 22 050 Hz, key held 3.0 s, 4.0 s in all. The plugin-only
controls (cutoff, resonance, volume, master tune) are at their defaults and all operators on.
The S&H LFO is kept as it is: dexed-py renders it deterministically (the paper replaced it with
a square wave only because its plugin host was not deterministic); the tests check this.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from dexed import _dexed
from tqdm import tqdm

from companion.config import AudioConfig
from companion.dx7.voice import Voice

Notes = Sequence[tuple[int, int]]  # (MIDI note, velocity) pairs


@dataclass(frozen=True)
class Play:
    """How a voice is played to be compared with a recording (companion.matching.take).

    Attributes:
        note, velocity: MIDI key and velocity.
        hold_s: how long the key is held, s.
        offset: samples of silence before the key goes down.
        length: samples in all (offset included).
        sample_rate: Hz.
    """

    note: int = 60
    velocity: int = 85
    hold_s: float = 3.0
    offset: int = 0
    length: int = 88200
    sample_rate: int = 22050

    def __post_init__(self):
        if not 0 <= self.note <= 127 or not 1 <= self.velocity <= 127:
            raise ValueError(f"note must be 0..127 and velocity 1..127, got {self.note} and "
                             f"{self.velocity}")  # fmt: skip
        if not self.hold_s > 0 or not 0 <= self.offset < self.length:
            raise ValueError(f"a key must be held > 0 s within the sound, got hold "
                             f"{self.hold_s} s, offset {self.offset}, "
                             f"length {self.length}")  # fmt: skip

    @classmethod
    def render(cls, cfg: AudioConfig = AudioConfig(), note: int = 60, velocity: int = 85) -> Play:
        """The project's own way: key held cfg.note_s from sample 0, cfg.render_s in all."""
        return cls(int(note), int(velocity), cfg.note_s, 0, cfg.n_samples, cfg.sample_rate)


class Renderer:
    """One engine instance. Not shared between processes: each worker makes its own."""

    def __init__(self, cfg: AudioConfig = AudioConfig()):
        self.cfg = cfg
        # dexed-py's DexedSynth wrapper takes a Patch; the raw engine takes the 156 bytes a
        # Voice already holds, which skips building a Patch object per render.
        self.engine = _dexed.DexedSynth(float(cfg.sample_rate), 0)

    def render(self, voice: Voice, note: int = 60, velocity: int = 85) -> np.ndarray:
        """(T,) float32 audio, T = cfg.n_samples."""
        return self.render_notes(voice, ((note, velocity),))[0]

    def play(self, voice: Voice, play: Play) -> np.ndarray:
        """(play.length,) float32: ``voice`` played as ``play`` says."""
        self.engine.load_sysex(voice.engine_bytes())
        return self.play_loaded(play)

    def play_loaded(self, play: Play) -> np.ndarray:
        """``play`` with the voice already loaded (several plays of one voice load it once)."""
        out = np.zeros(play.length, np.float32)
        n = play.length - play.offset
        audio = self.engine.render(int(play.note), int(play.velocity), float(play.hold_s),
                                   n / play.sample_rate)  # fmt: skip
        m = min(len(audio), n)
        out[play.offset : play.offset + m] = audio[:m]
        return out

    def render_notes(self, voice: Voice, notes: Notes) -> np.ndarray:
        """(len(notes), T) float32 audio, one row per (note, velocity)."""
        self.engine.load_sysex(voice.engine_bytes())
        out = np.empty((len(notes), self.cfg.n_samples), dtype=np.float32)
        for i, (note, velocity) in enumerate(notes):
            audio = self.engine.render(int(note), int(velocity), self.cfg.note_s, self.cfg.render_s)
            n = min(len(audio), self.cfg.n_samples)
            out[i, :n] = audio[:n]
            out[i, n:] = 0.0
        return out


def default_processes() -> int:
    """Worker processes: one per core this process may use."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def _context():
    # fork starts a worker in milliseconds where spawn re-imports torch (about 2 s); torch
    # resets its thread pool in a forked child, as its DataLoader workers rely on. Elsewhere
    # (macOS, Windows) fork is unsafe or missing.
    return mp.get_context("fork" if sys.platform == "linux" else "spawn")


_worker_state: dict = {}


def quiet_worker() -> None:
    """What every worker process of the project does first: leave Ctrl-C to the parent (the
    terminal sends it to the whole process group; the parent ends the pool) and SIGTERM to its
    default (the parent's handler would print a traceback in each worker), and die with the
    parent, so that a ``kill -9`` of a command leaves no orphan writing to a closed pipe."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        os._exit(1)


def _init_worker(setup: Callable[[], object]) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    quiet_worker()
    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    threadpool_limits(1)  # BLAS too: its threads would compete with the other workers
    _worker_state["ctx"] = setup()


def _run(job):
    fn, chunk = job
    return fn(_worker_state["ctx"], chunk)


def pool_map(
    fn,
    jobs: Iterable,
    setup: Callable[[], object],
    processes: int | None = None,
    count: Callable = len,
    total: int | None = None,
    desc: str = "rendering",
    progress: bool = True,
) -> Iterator:
    """``fn(ctx, job)`` over jobs in a process pool, results in order, with a progress bar.

    Each worker calls ``setup()`` once (e.g. to make its engine) and passes the result as
    ``ctx``. With one process everything runs here, without a pool. The bar advances by
    ``count(job)`` voices per job.

    Args:
        fn, setup: module-level functions or picklable callables (they go to the workers).
    """
    processes = processes or default_processes()
    jobs = list(jobs)
    bar = tqdm(total=total, desc=desc, unit="voice", disable=not progress)
    try:
        if processes == 1:
            ctx = setup()
            for job in jobs:
                result = fn(ctx, job)
                bar.update(count(job))
                yield result
            return
        with _context().Pool(processes, _init_worker, (setup,)) as pool:
            results = pool.imap(_run, ((fn, job) for job in jobs))
            for job, result in zip(jobs, results):
                bar.update(count(job))
                yield result
    finally:
        bar.close()


def _render_chunk(ctx, job):
    renderer, notes = ctx, job[1]
    return np.stack([renderer.render_notes(v, notes) for v in job[0]])


def render_many(
    voices: Sequence[Voice],
    notes: Notes,
    cfg: AudioConfig = AudioConfig(),
    processes: int | None = None,
    chunk: int = 16,
    progress: bool = True,
) -> np.ndarray:
    """Render many voices over all cores (one engine per process).

    Returns:
        (len(voices), len(notes), T) float32.
    """
    notes = tuple(tuple(n) for n in notes)
    jobs = [(voices[i : i + chunk], notes) for i in range(0, len(voices), chunk)]
    parts = pool_map(
        _render_chunk,
        jobs,
        _RendererFactory(cfg),
        processes,
        count=lambda job: len(job[0]),
        total=len(voices),
        progress=progress,
    )
    parts = list(parts)
    if not parts:
        return np.zeros((0, len(notes), cfg.n_samples), dtype=np.float32)
    return np.concatenate(parts)


class _RendererFactory:
    """Picklable ``setup`` for ``pool_map``: makes one Renderer in each worker."""

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg

    def __call__(self) -> Renderer:
        return Renderer(self.cfg)
