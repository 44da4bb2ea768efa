"""Losses of many voices against one target sound, rendered over a persistent pool of engines.

Each worker process holds one Dexed engine and the current target's features. The target's
samples reach the workers once, through shared memory written before the first batch of a new
target (a job carries only a token and the voices; sending the 4 s of audio with every job
cost more than the render). Every voice evaluated for a target is cached by its parameters, so
a search that proposes a voice twice renders it once.

A batch splits into fixed chunks of CHUNK voices whatever the number of workers, and every loss
is computed row by row, so the losses of a batch are the same for any number of processes.
"""

from __future__ import annotations

import numpy as np

from companion.config import AudioConfig
from companion.data.render import Renderer, _context, default_processes
from companion.dx7.voice import N_PARAMS, Voice
from companion.matching.loss import Target

CHUNK = 4  # voices per job: fixed, so that batches split the same way for any worker count


_worker: dict = {}


def _worker_init(cfg: AudioConfig, shared, header, loss_options: dict) -> None:
    import signal

    from threadpoolctl import threadpool_limits

    # Ctrl-C goes to the whole process group: the parent alone handles it and ends the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # one core per worker: the pool is the parallelism (BLAS threads competed with the other
    # workers: measured, 116 evaluations in 2.3 s instead of ~400)
    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the pool needs none
        pass
    _worker.update(renderer=Renderer(cfg), shared=shared, header=header, token=-1,
                   sr=cfg.sample_rate, options=loss_options)  # fmt: skip


def _losses(renderer: Renderer, target: Target, note: int, velocity: int,
            values: np.ndarray) -> np.ndarray:  # fmt: skip
    audio = np.stack([renderer.render(Voice(bytes(v.astype(np.uint8))), note, velocity)
                      for v in values])  # fmt: skip
    return target.loss(audio)


def _worker_job(job) -> np.ndarray:
    token, values = job
    if _worker["token"] != token:  # a new target: read it once, compute its features once
        audio = np.frombuffer(_worker["shared"], dtype=np.float32).copy()
        _worker["target"] = Target(audio, _worker["sr"], **_worker["options"])
        _worker["token"] = token
    _, note, velocity = _worker["header"][:]
    return _losses(_worker["renderer"], _worker["target"], int(note), int(velocity), values)


class Evaluator:
    """Losses of voices against a target, rendered over a persistent pool of processes.

    Use it for many targets in turn (``set_target``), and close it (or use it as a context
    manager) when done.

    Args:
        processes: worker processes (default: one per core); 1 evaluates here, no pool.
        cfg: how voices are played (sample rate, lengths).
        loss_options: keyword arguments of every Target (its terms' weights; the defaults
            are the measured choice, bench/search_designs.py compares others).

    Attributes:
        evals: voices asked for since the last ``set_target``; renders: of those, the ones
            rendered (the others came from the cache).
    """

    def __init__(self, processes: int | None = None, cfg: AudioConfig = AudioConfig(),
                 loss_options: dict | None = None):  # fmt: skip
        self.cfg, self.loss_options = cfg, dict(loss_options or {})
        self.processes = processes or default_processes()
        self.pool = None
        if self.processes > 1:
            ctx = _context()
            self._shared = ctx.RawArray("f", cfg.n_samples)
            self._header = ctx.RawArray("q", 3)  # token, note, velocity
            self.pool = ctx.Pool(self.processes, _worker_init,
                                 (cfg, self._shared, self._header, self.loss_options))  # fmt: skip
        else:
            self.renderer = Renderer(cfg)
        self.target: Target | None = None
        self._token = 0
        self.cache: dict[bytes, float] = {}
        self.evals = self.renders = 0

    def set_target(self, audio: np.ndarray, note: int = 60, velocity: int = 85) -> Target:
        """Make ``audio`` ((T,) float32 at cfg.sample_rate) the target, voices played at
        ``note`` / ``velocity``. Raises ValueError for a silent or wrongly sized target."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.shape != (self.cfg.n_samples,):
            raise ValueError(f"a target must be ({self.cfg.n_samples},) samples "
                             f"({self.cfg.render_s} s at {self.cfg.sample_rate} Hz), "
                             f"got {audio.shape}")  # fmt: skip
        self.target = Target(audio, self.cfg.sample_rate, **self.loss_options)
        self.note, self.velocity = int(note), int(velocity)
        self._token += 1
        if self.pool is not None:  # no job is running: the workers read it at their next one
            np.frombuffer(self._shared, dtype=np.float32)[:] = audio
            self._header[:] = [self._token, self.note, self.velocity]
        self.cache.clear()
        self.evals = self.renders = 0
        return self.target

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """(B, 145) integer voices -> (B,) float32 losses, in order."""
        if self.target is None:
            raise ValueError("no target: call set_target first")
        values = np.asarray(values, dtype=np.int64).reshape(-1, N_PARAMS)
        self.evals += len(values)
        keys = [v.astype(np.uint8).tobytes() for v in values]
        new, seen = [], set()
        for k, key in enumerate(keys):
            if key not in self.cache and key not in seen:
                seen.add(key)
                new.append(k)
        if new:
            todo = values[new]
            self.renders += len(todo)
            chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
            if self.pool is None:
                parts = [_losses(self.renderer, self.target, self.note, self.velocity, c)
                         for c in chunks]  # fmt: skip
            else:
                parts = self.pool.map(_worker_job, [(self._token, c) for c in chunks], chunksize=1)
            for k, loss in zip(new, np.concatenate(parts)):
                self.cache[keys[k]] = float(loss)
        return np.array([self.cache[key] for key in keys], dtype=np.float32)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
