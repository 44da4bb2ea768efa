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

import numpy as np
from dexed import _dexed
from tqdm import tqdm

from companion.config import AudioConfig
from companion.dx7.voice import Voice

Notes = Sequence[tuple[int, int]]  # (MIDI note, velocity) pairs


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


def _init_worker(setup: Callable[[], object]) -> None:
    import torch
    from threadpoolctl import threadpool_limits

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
