"""Losses of many voices against a target sound, rendered over a persistent pool of engines.

A target is one recording or several of one sound (``program --together``), each with the way
a candidate is played to be compared with it (companion.data.render.Play: key, velocity,
hold, offset, length). Each worker process holds one Dexed engine and the current target's
features. The targets' samples reach the workers once, through shared memory written before
the first batch of a new target (a job carries only a token, the plays and the voices; sending
the audio with every job cost more than the render). Every voice evaluated for a target is
cached by its parameters, so a search that proposes a voice twice renders it once.

With several recordings, a candidate's loss is the mean of the recordings' losses, each at
the recording's own level (recordings are often normalised one by one, so their relative
levels are not trusted: velocity sensitivity shows in their timbres only).

A batch splits into fixed chunks of CHUNK voices whatever the number of workers, and every loss
is computed row by row, so the losses of a batch are the same for any number of processes.

``distances`` is retrieval's second stage (companion.matching.retrieval): voices, each at its
own velocity, played like the target and compared by log-mel (companion.matching.logmel), a
cheaper and smoother distance than the loss, over the same pool.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from companion.config import AudioConfig
from companion.data.render import Play, Renderer, _context, default_processes, quiet_worker
from companion.dx7.voice import N_PARAMS, Voice
from companion.matching.logmel import LogMel
from companion.matching.loss import BAND, Target

CHUNK = 4  # voices per job: fixed, so that batches split the same way for any worker count
CAPACITY_S = 16.0  # s of target audio the shared memory first holds (grown when needed)


_worker: dict = {}


def _worker_init(cfg: AudioConfig, shared, loss_options: dict) -> None:
    from threadpoolctl import threadpool_limits

    quiet_worker()
    # one core per worker: the pool is the parallelism (BLAS threads competed with the other
    # workers: measured, 116 evaluations in 2.3 s instead of ~400)
    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the pool needs none
        pass
    _worker.update(renderer=Renderer(cfg), shared=shared, token=-1, options=loss_options)


def make_targets(audios: list[np.ndarray], plays: list[Play], options: dict) -> list[Target]:
    return [Target(a, p.sample_rate, **options) for a, p in zip(audios, plays)]


def losses(renderer: Renderer, targets: list[Target], plays: list[Play],
           values: np.ndarray) -> np.ndarray:  # fmt: skip
    """(B, 145) voices -> (B,) float32 losses against ``targets``, each voice played as
    ``plays`` say (see the module docstring for several targets)."""
    out = np.empty(len(values), np.float32)
    for k, v in enumerate(values):
        renderer.engine.load_sysex(Voice(bytes(v.astype(np.uint8))).engine_bytes())
        out[k] = np.mean([t.loss(renderer.play_loaded(p)[None])[0]
                          for t, p in zip(targets, plays)])  # fmt: skip
    return out


def logmel_of(audio: np.ndarray, play: Play, level_free: bool) -> tuple[LogMel, np.ndarray]:
    """The log-mel retrieval compares for a sound played as ``play``: from its key-on to its
    end (level-free unless the level is the voice's own), below the loss's BAND. Returns the
    LogMel and (D,)."""
    mel = LogMel(n_samples=play.length - play.offset, sample_rate=play.sample_rate,
                 normalise=level_free, band=BAND)  # fmt: skip
    return mel, mel(audio[play.offset :])


def log_mel_distances(renderer: Renderer, targets: list[tuple[LogMel, np.ndarray]],
                      plays: list[Play], values: np.ndarray,
                      velocities: np.ndarray) -> np.ndarray:  # fmt: skip
    """(B, 145) voices, each played at its own velocity (B,) (or, with None, each play's) ->
    (B,) float32: RMS difference of their log-mels and the targets' (``logmel_of``),
    averaged over the targets."""
    out = np.empty(len(values), np.float32)
    for k, v in enumerate(values):
        renderer.engine.load_sysex(Voice(bytes(v.astype(np.uint8))).engine_bytes())
        d = []
        for (mel, target), p in zip(targets, plays):
            if velocities is not None:
                p = dataclasses.replace(p, velocity=int(velocities[k]))
            audio = renderer.play_loaded(p)
            d.append(np.sqrt(np.mean(np.square(mel(audio[p.offset :]) - target))))
        out[k] = np.mean(d)
    return out


def _worker_job(job) -> np.ndarray:
    token, plays, match_level, values, kind, velocities = job
    if _worker["token"] != token:  # a new target: read it once, compute its features once
        flat = np.frombuffer(_worker["shared"], dtype=np.float32)
        ends = np.cumsum([p.length for p in plays])
        _worker["audios"] = [flat[e - p.length : e].copy() for p, e in zip(plays, ends)]
        _worker["targets"] = make_targets(_worker["audios"], plays,
                                          {**_worker["options"], "match_level": match_level})
        _worker["logmels"] = None
        _worker["token"] = token
    if kind == "loss":
        return losses(_worker["renderer"], _worker["targets"], plays, values)
    if _worker["logmels"] is None:
        _worker["logmels"] = [logmel_of(a, p, match_level)
                              for a, p in zip(_worker["audios"], plays)]  # fmt: skip
    return log_mel_distances(_worker["renderer"], _worker["logmels"], plays, values, velocities)


class Evaluator:
    """Losses of voices against a target, rendered over a persistent pool of processes.

    Use it for many targets in turn (``set_target``), and close it (or use it as a context
    manager) when done.

    Args:
        processes: worker processes (default: one per core); 1 evaluates here, no pool.
        cfg: the engine's sample rate (and the default way to play: ``Play.render(cfg)``).
        loss_options: keyword arguments of every Target (its terms' weights; the defaults
            are the measured choice, bench/search_designs.py compares others).

    Attributes:
        targets: the current targets; plays: how candidates are played for each.
        evals: voices asked for since the last ``set_target``; renders: of those, the ones
            rendered (the others came from the cache).
    """

    def __init__(self, processes: int | None = None, cfg: AudioConfig = AudioConfig(),
                 loss_options: dict | None = None):  # fmt: skip
        self.cfg, self.loss_options = cfg, dict(loss_options or {})
        self.processes = processes or default_processes()
        self.pool = None
        self._capacity = 0
        if self.processes > 1:
            self._start_pool(round(CAPACITY_S * cfg.sample_rate))
        else:
            self.renderer = Renderer(cfg)
        self.targets: list[Target] = []
        self.plays: list[Play] = []
        self._audios: list[np.ndarray] = []
        self._logmels: list | None = None
        self.match_level = True
        self._token = 0
        self.cache: dict[bytes, float] = {}
        self.evals = self.renders = 0

    def _start_pool(self, capacity: int) -> None:
        """(Re)start the workers with shared memory for ``capacity`` samples of targets."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        ctx = _context()
        self._shared = ctx.RawArray("f", capacity)
        self._capacity = capacity
        self.pool = ctx.Pool(self.processes, _worker_init,
                             (self.cfg, self._shared, self.loss_options))  # fmt: skip

    def set_target(self, audio, play: Play | list[Play] | None = None,
                   match_level: bool = True) -> list[Target]:  # fmt: skip
        """Make ``audio`` the target: one (T,) float32 array at cfg.sample_rate, or a list of
        them (several recordings of one sound), each played as its ``play`` says (default:
        the project's render at note 60, velocity 85); ``match_level``: candidates compared
        at the target's level (Target). The same target set again keeps its cache and counts.

        Raises:
            ValueError: a silent target, or one whose length is not its play's.
        """
        audios = [audio] if isinstance(audio, np.ndarray) else list(audio)
        plays = [play] if isinstance(play, Play) else list(play or [])
        if not plays:
            plays = [Play.render(self.cfg)] * len(audios)
        if len(plays) != len(audios) or not audios:
            raise ValueError(f"{len(audios)} target sounds for {len(plays)} ways to play them")
        audios = [np.ascontiguousarray(a, dtype=np.float32) for a in audios]
        for a, p in zip(audios, plays):
            if a.shape != (p.length,) or p.sample_rate != self.cfg.sample_rate:
                raise ValueError(f"a target must be ({p.length},) samples at "
                                 f"{self.cfg.sample_rate} Hz, got {a.shape} at "
                                 f"{p.sample_rate} Hz")  # fmt: skip
        if plays == self.plays and match_level == self.match_level and len(audios) == len(
                self._audios) and all(
                np.array_equal(a, b) for a, b in zip(audios, self._audios)):  # fmt: skip
            return self.targets  # the same target again: its cache stays good
        self._audios = audios
        self.match_level = bool(match_level)
        self.targets = make_targets(audios, plays, {**self.loss_options,
                                                    "match_level": self.match_level})
        self.plays = plays
        self._logmels = None
        self._token += 1
        if self.pool is not None:  # no job is running: the workers read it at their next one
            total = sum(len(a) for a in audios)
            if total > self._capacity:
                self._start_pool(total)
            np.frombuffer(self._shared, dtype=np.float32)[:total] = np.concatenate(audios)
        self.cache.clear()
        self.evals = self.renders = 0
        return self.targets

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """(B, 145) integer voices -> (B,) float32 losses, in order."""
        if not self.targets:
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
                parts = [losses(self.renderer, self.targets, self.plays, c) for c in chunks]
            else:
                jobs = [(self._token, self.plays, self.match_level, c, "loss", None)
                        for c in chunks]  # fmt: skip
                parts = self.pool.map(_worker_job, jobs, chunksize=1)
            for k, loss in zip(new, np.concatenate(parts)):
                self.cache[keys[k]] = float(loss)
        return np.array([self.cache[key] for key in keys], dtype=np.float32)

    def distances(self, values: np.ndarray, velocities=None) -> np.ndarray:
        """(B, 145) integer voices, each played like the target (at its own velocity (B,)
        if given) -> (B,) float32 log-mel distances (``log_mel_distances``; level-free where
        the target's level is not the voice's own), in order. Not cached, not counted in
        ``evals``: a retrieval's ranking, not a search's evaluations."""
        if not self.targets:
            raise ValueError("no target: call set_target first")
        values = np.asarray(values, dtype=np.int64).reshape(-1, N_PARAMS)
        if velocities is not None:
            velocities = np.asarray(velocities, dtype=np.int64).reshape(len(values))
        if not len(values):
            return np.zeros(0, np.float32)
        if self.pool is None:
            if self._logmels is None:
                self._logmels = [logmel_of(a, p, self.match_level)
                                 for a, p in zip(self._audios, self.plays)]  # fmt: skip
            return log_mel_distances(self.renderer, self._logmels, self.plays, values,
                                     velocities)  # fmt: skip
        jobs = [(self._token, self.plays, self.match_level, values[i : i + CHUNK], "logmel",
                 None if velocities is None else velocities[i : i + CHUNK])
                for i in range(0, len(values), CHUNK)]  # fmt: skip
        return np.concatenate(self.pool.map(_worker_job, jobs, chunksize=1))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
