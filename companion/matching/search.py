"""Refinement with the Dexed engine in the loop: a voice's parameters searched against a sound.

``refine`` ranks its starts and, by default, runs nevergrad's DiscreteLenglerOnePlusOne from
the best one (measured best, below); ``method="sweep"`` runs the structured search described
here instead.

``refine`` starts from a few candidate voices and moves their parameters one at a time, the
way a DX7 programmer would, judging every proposal by rendering it with the real engine and
comparing it to the target (companion.matching.loss). Its moves respect the instrument:

- parameters come in groups - the operators' frequencies (coarse, fine, detune, mode) and the
  transposition, the operators' output levels and velocity sensitivity, their envelopes, their
  keyboard scaling, then the algorithm and feedback, the pitch envelope and the LFO;
- numbers move by a step (a quarter of their range to start with) up and down, and the step is
  halved when neither direction helps (a pattern search); small categorical parameters (curves,
  LFO wave, oscillator mode, algorithm, feedback) try every value;
- the parameters of operators that cannot be heard (output level 0, or not reaching a carrier
  through the algorithm) are left alone, apart from their output level.

Every group's moves form one batch, rendered over a persistent pool of worker processes; the
improving moves of a batch are then tried together, and the best of all is kept. A batch's
content never depends on the number of workers, and its losses come back in order, so for a
given seed and ``max_evals`` the result is the same with any number of processes (a budget in
seconds may stop earlier). The search stops early when a whole pass over the groups improves
the loss by less than ``tol``. Several starts share the budget by successive halving: each gets
a first pass, the better half continues, until one is left.

Measured in bench/refine_designs.py (figures/table_refine.md) on 20 test-split voices from
retrieval's 16 nearest train voices: 300 evaluations bring the mean spectral convergence to
0.51x retrieval's top 1 (MFCC MAE 0.75x), 800 to 0.44x (MFCC 0.61x). CMA-ES on the operators'
levels, fine and envelopes did less (0.58x at 300); nevergrad's DiscreteLenglerOnePlusOne over
all parameters did better: 0.46x at 300, 0.40x at 800 (MFCC 0.60x), so it is ``refine``'s
default (``method="lengler"``). Trying +-step/4 beside +-step and searching a group again while
it helps (``scales=2, revisit=2``) gave a better median but a worse mean.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from companion.config import AudioConfig
from companion.data.render import Renderer, default_processes
from companion.dx7.params import audible_operators
from companion.dx7.voice import (
    N_PARAMS,
    OPERATOR_FIELDS,
    PARAM_MAX,
    PARAM_NAMES,
    Voice,
    param_index,
)
from companion.matching.loss import Target

CHUNK = 2  # voices per job: fixed, so that batches split the same way for any worker count
TOL = 1e-3  # a pass that gains less than this (relative) ends a search
OP_GROUPS = (  # per operator, in the order they are searched
    ("coarse", "fine", "detune", "osc_mode"),
    ("output_level", "key_vel_sens", "amp_mod_sens"),
    ("eg_rate1", "eg_rate2", "eg_rate3", "eg_rate4", "eg_level1", "eg_level2", "eg_level3",
     "eg_level4"),
    ("breakpoint", "left_depth", "right_depth", "left_curve", "right_curve", "rate_scaling"),
)  # fmt: skip
GLOBAL_GROUPS = (
    ("transpose",),
    ("algorithm", "feedback", "osc_key_sync"),
    ("pitch_eg_rate1", "pitch_eg_rate2", "pitch_eg_rate3", "pitch_eg_rate4",
     "pitch_eg_level1", "pitch_eg_level2", "pitch_eg_level3", "pitch_eg_level4"),
    ("lfo_speed", "lfo_delay", "lfo_pmd", "lfo_amd", "lfo_sync", "lfo_wave", "pitch_mod_sens"),
)  # fmt: skip
# parameters with this many values or fewer try every value rather than a step up and down
ENUMERATE = 4
_EXHAUSTIVE = {"algorithm", "lfo_wave"}  # categorical with more values: every value too
_FIRST_PASS_ONLY = {"algorithm"}  # 31 moves: tried on the first pass of a search only
# first steps other than a quarter of the range: an octave of transposition; a ratio, detune
# or feedback a quarter of its range away is rarely the next better voice
_FIRST_STEP = {"transpose": 12, "coarse": 2, "detune": 3, "feedback": 2}
_LEVEL = {op: param_index("output_level", op) for op in range(1, 7)}


def _groups() -> list[tuple[int | None, np.ndarray]]:
    """(operator or None, parameter indices) of every group, in search order: the frequencies
    and the transposition first (a wrong pitch hides everything else), then levels, envelopes,
    the global parameters and the keyboard scaling last (they matter little at one note)."""
    freq, level, env, scaling = OP_GROUPS
    transpose, alg, pitch_eg, lfo = GLOBAL_GROUPS
    ops = range(1, 7)
    out = [(None, np.array([param_index(n) for n in transpose]))]
    out += [(op, np.array([param_index(n, op) for n in freq])) for op in ops]
    out += [(None, np.array([param_index(n) for n in alg]))]
    for names in (level, env):
        out += [(op, np.array([param_index(n, op) for n in names])) for op in ops]
    for names in (pitch_eg, lfo):
        out += [(None, np.array([param_index(n) for n in names]))]
    out += [(op, np.array([param_index(n, op) for n in scaling])) for op in ops]
    return out


GROUPS = _groups()
_FIELDS = dict(OPERATOR_FIELDS)
assert all(f in _FIELDS for g in OP_GROUPS for f in g)


_ENUMERATED = np.array(
    [PARAM_MAX[i] + 1 <= ENUMERATE or PARAM_NAMES[i] in _EXHAUSTIVE for i in range(N_PARAMS)]
)
_FIRST_PASS = np.array([PARAM_NAMES[i] in _FIRST_PASS_ONLY for i in range(N_PARAMS)])


def initial_steps() -> np.ndarray:
    """(145,) int: the first step of every parameter (a quarter of its range, an octave for
    the transposition); 0 where every value is tried instead."""
    steps = np.maximum(1, (PARAM_MAX + 1) // 4)
    for i, name in enumerate(PARAM_NAMES):
        steps[i] = _FIRST_STEP.get(name.split("_", 1)[-1] if name[:2] == "op" else name, steps[i])
    steps[_ENUMERATED] = 0
    return steps.astype(np.int64)


@dataclass
class SearchResult:
    """What ``refine`` found.

    Attributes:
        voice: the best voice (the name of its start).
        loss: its loss against the target (companion.matching.loss.Target).
        evals: renders spent, the starts included.
        seconds: wall time.
        history: (evals so far, best loss so far) after every batch; the loss never rises.
        start: index in ``starts`` of the start it grew from; start_loss: that start's loss.
    """

    voice: Voice
    loss: float
    evals: int
    seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)
    start: int = 0
    start_loss: float = float("nan")


# ---------------------------------------------------------------------------------------------
# Evaluation over a persistent pool


def _context():
    # as companion.data.render: fork starts a worker in milliseconds; spawn elsewhere
    return mp.get_context("fork" if sys.platform == "linux" else "spawn")


_worker: dict = {}


def _worker_init(cfg: AudioConfig) -> None:
    from threadpoolctl import threadpool_limits

    # one core per worker: the pool is the parallelism. BLAS threads (the loss's mel product)
    # competed with the other workers: measured, 116 evaluations in 2.3 s instead of ~400.
    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the pool needs none
        pass
    _worker["renderer"] = Renderer(cfg)
    _worker["token"] = None


def _evaluate_chunk(renderer: Renderer, target: Target, note, velocity, values) -> np.ndarray:
    audio = np.stack([renderer.render(Voice(bytes(v.astype(np.uint8))), note, velocity)
                      for v in values])  # fmt: skip
    return target.loss(audio)


def _worker_job(job) -> np.ndarray:
    token, audio, note, velocity, values = job
    if _worker["token"] != token:  # a new target: its features once per worker
        _worker["target"], _worker["token"] = Target(audio), token
    return _evaluate_chunk(_worker["renderer"], _worker["target"], note, velocity, values)


class Evaluator:
    """Losses of voices against a target, rendered over a persistent pool of processes.

    Each worker holds one Dexed engine and the current target's features (computed again
    only when the target changes). Use it for many targets in turn, and close it (or use it
    as a context manager) when done.

    Args:
        processes: worker processes (default: one per core); 1 evaluates here, no pool.
        cfg: how voices are played (sample rate, lengths).
    """

    def __init__(self, processes: int | None = None, cfg: AudioConfig = AudioConfig()):
        self.cfg = cfg
        self.processes = processes or default_processes()
        self.pool = None
        if self.processes > 1:
            self.pool = _context().Pool(self.processes, _worker_init, (cfg,))
        else:
            self.renderer = Renderer(cfg)
        self.target: Target | None = None
        self._token = 0
        self.evals = 0

    def set_target(self, audio: np.ndarray, note: int = 60, velocity: int = 85) -> Target:
        """Make ``audio`` ((T,) float32 at cfg.sample_rate) the target, voices played at
        ``note`` / ``velocity``. Raises ValueError for a silent or wrongly sized target."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.shape != (self.cfg.n_samples,):
            raise ValueError(f"a target must be ({self.cfg.n_samples},) samples "
                             f"({self.cfg.render_s} s at {self.cfg.sample_rate} Hz), "
                             f"got {audio.shape}")  # fmt: skip
        self.target = Target(audio, self.cfg.sample_rate)
        self.audio, self.note, self.velocity = audio, int(note), int(velocity)
        self._token += 1
        self.evals = 0
        return self.target

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """(B, 145) integer voices -> (B,) float32 losses, in order."""
        if self.target is None:
            raise ValueError("no target: call set_target first")
        values = np.asarray(values, dtype=np.int64).reshape(-1, N_PARAMS)
        chunks = [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]
        self.evals += len(values)
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        if self.pool is None:
            parts = [_evaluate_chunk(self.renderer, self.target, self.note, self.velocity, c)
                     for c in chunks]  # fmt: skip
        else:
            token = (id(self), self._token)
            jobs = [(token, self.audio, self.note, self.velocity, c) for c in chunks]
            parts = self.pool.map(_worker_job, jobs, chunksize=1)
        return np.concatenate(parts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# The search


class Sweep:
    """A structured coordinate search from one start; ``run`` can be resumed with more evals.

    Args:
        values: (145,) start voice; loss: its loss.
        steps: (145,) first steps (default ``initial_steps()``).
        scales: 1 tries a number at +-step; 2 also at +-step / 4, so that one batch finds
            a value a pattern search would reach only after two halvings.
        revisit: how many times a group is searched again at once after it improved.
        per_param: one batch per parameter, each improvement kept before the next parameter
            is tried (a coordinate descent), rather than one batch per group.
        screen: each pass starts with one batch of every parameter's moves, then descends
            over the parameters that helped, in the order of how much they helped.
    """

    def __init__(self, values: np.ndarray, loss: float, steps: np.ndarray | None = None,
                 scales: int = 1, revisit: int = 0, per_param: bool = False,
                 screen: bool = False):  # fmt: skip
        self.scales, self.revisit, self.visits = scales, revisit, 0
        self.per_param, self.screen = per_param, screen
        self.order, self.pos = [], 0
        self.x = np.asarray(values, dtype=np.int64).copy()
        self.loss = float(loss)
        self.steps = initial_steps() if steps is None else steps.copy()
        self.group = 0  # the next group to search
        self.pass_start = self.loss
        self.passes = 0
        self.done = False

    def _active(self, op: int | None, idx: np.ndarray, audible: np.ndarray) -> np.ndarray:
        if op is not None and not audible[op - 1]:
            # a silent operator: only its level may bring it in
            idx = idx[idx == _LEVEL[op]]
        return idx[(self.steps[idx] > 0) | _ENUMERATED[idx]]

    def _moves(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, 145) proposals, each one parameter changed, and (M,) the parameter of each."""
        moves, which = [], []
        for i in idx:
            if _ENUMERATED[i]:
                new = [v for v in range(PARAM_MAX[i] + 1) if v != self.x[i]]
            else:
                s = self.steps[i]
                deltas = {s, max(1, s // 4)} if self.scales == 2 else {s}
                new = {int(np.clip(self.x[i] + sign * d, 0, PARAM_MAX[i]))
                       for d in deltas for sign in (-1, 1)}  # fmt: skip
                new = sorted(new - {int(self.x[i])})
            for v in new:
                m = self.x.copy()
                m[i] = v
                moves.append(m)
                which.append(i)
        return np.array(moves, dtype=np.int64).reshape(-1, N_PARAMS), np.array(which, int)

    def run(self, evaluate, max_evals: int, history: list, offset: int = 0,
            deadline: float | None = None) -> int:  # fmt: skip
        """Search until ``max_evals`` are spent, the deadline passes or it converges.

        Returns:
            Evaluations spent; ``history`` gets (offset + evals so far, loss) per batch.
        """
        if self.screen:
            return self._run_screened(evaluate, max_evals, history, offset, deadline)
        spent = 0
        while not self.done and spent < max_evals:
            if deadline is not None and time.perf_counter() > deadline:
                break
            op, idx = GROUPS[self.group]
            idx = self._active(op, idx, audible_operators(self.x))
            # one batch per group, or per parameter (each improvement kept before the next)
            batches = [idx] if not self.per_param else [idx[k : k + 1] for k in range(len(idx))]
            improved = False
            for part in batches:
                if spent >= max_evals:
                    break
                moves, which = self._moves(part)
                moves, which = moves[: max_evals - spent], which[: max_evals - spent]
                if not len(moves):
                    continue
                losses = evaluate(moves)
                spent += len(moves)
                before = self.loss
                self._accept(evaluate, moves, which, losses, part, max_evals - spent)
                spent += self._extra
                history.append((offset + spent, self.loss))
                improved |= self.loss < before
            if improved and self.visits < self.revisit and spent < max_evals:
                self.visits += 1  # it moved: search the same group again at once
                continue
            self.group, self.visits = self.group + 1, 0
            if self.group == len(GROUPS):  # a whole pass: stop when it gained too little
                self.group, self.passes = 0, self.passes + 1
                if self.loss > self.pass_start * (1 - TOL):
                    if (self.steps <= 1).all():
                        self.done = True
                    # nothing moved: try again with every step halved (at least 1)
                    self.steps = np.maximum(self.steps // 2, np.minimum(self.steps, 1))
                self.pass_start = self.loss
        return spent

    def _run_screened(self, evaluate, max_evals, history, offset, deadline) -> int:
        """A pass = one batch of every parameter's moves (the screen), then a coordinate
        descent over the parameters that helped, the most helpful first."""
        spent = 0
        while not self.done and spent < max_evals:
            if deadline is not None and time.perf_counter() > deadline:
                break
            if self.pos >= len(self.order):  # a new pass: screen every parameter at once
                if self.passes and self.loss > self.pass_start * (1 - TOL):
                    self.done = True
                    break
                self.pass_start = self.loss
                audible = audible_operators(self.x)
                idx = np.concatenate([self._active(op, g, audible) for op, g in GROUPS])
                scales, self.scales = self.scales, 1  # the screen tries +-step only
                moves, which = self._moves(idx)
                self.scales = scales
                moves, which = moves[: max_evals - spent], which[: max_evals - spent]
                losses = evaluate(moves)
                spent += len(moves)
                gain = {}
                for k in range(len(moves)):
                    gain[which[k]] = max(gain.get(which[k], 0.0), self.loss - float(losses[k]))
                helped = [i for i in gain if gain[i] > 0]
                self.order = sorted(helped, key=lambda i: -gain[i])
                for i in set(idx) - set(helped):  # no step helped: smaller next pass
                    if not _ENUMERATED[i]:
                        self.steps[i] //= 2
                self.pos, self.passes = 0, self.passes + 1
                if not self.order:
                    self.done = bool((self.steps[~_ENUMERATED] == 0).all())
                    self.pos = 0
                    history.append((offset + spent, self.loss))
                    continue
            i = self.order[self.pos]
            self.pos += 1
            for _ in range(1 + self.revisit):  # again while it keeps helping
                moves, which = self._moves(np.array([i]))
                moves, which = moves[: max_evals - spent], which[: max_evals - spent]
                if not len(moves):
                    break
                losses = evaluate(moves)
                spent += len(moves)
                before = self.loss
                self._accept(evaluate, moves, which, losses, np.array([i]), 0)
                history.append((offset + spent, self.loss))
                if not self.loss < before or _ENUMERATED[i]:
                    break
        return spent

    def _accept(self, evaluate, moves, which, losses, idx, left: int) -> None:
        """Keep the best of: the best single move, and every improving move together."""
        self._extra = 0
        best = int(np.argmin(losses))
        improving = {}
        for k in np.argsort(losses, kind="stable"):
            if losses[k] < self.loss and which[k] not in improving:
                improving[which[k]] = k
        candidate, cand_loss = None, self.loss
        if len(improving):
            candidate, cand_loss = moves[best], float(losses[best])
        if len(improving) > 1 and left > 0:
            both = self.x.copy()
            for i, k in improving.items():
                both[i] = moves[k][i]
            loss = float(evaluate(both[None])[0])
            self._extra = 1
            if loss < cand_loss:
                candidate, cand_loss = both, loss
        for i in idx:
            if _ENUMERATED[i]:
                continue
            s = self.steps[i]
            if i not in improving:  # no step helped: below the smallest tried; 0 is spent
                self.steps[i] = s // 2 if self.scales == 1 else s // 8
            elif self.scales == 2 and abs(moves[improving[i]][i] - self.x[i]) < s:
                self.steps[i] = max(1, s // 2)  # the small step helped: come closer
        if candidate is not None and cand_loss < self.loss:
            self.x, self.loss = candidate, cand_loss


def refine(target_audio: np.ndarray, starts: list[Voice], note: int = 60, velocity: int = 85,
           *, max_evals: int = 800, budget_s: float | None = None,
           evaluator: Evaluator | None = None, n_starts: int = 4, scales: int = 1,
           revisit: int = 0, per_param: bool = False, screen: bool = False,
           method: str = "lengler", seed: int = 0) -> SearchResult:  # fmt: skip
    """Refine the best of ``starts`` towards a target sound with the engine in the loop.

    Args:
        target_audio: (T,) float32 at 22 050 Hz, T = 4 s (AudioConfig().n_samples).
        starts: candidate voices, e.g. retrieval's best and the network's answer (any order;
            they are rendered and ranked first, which counts towards ``max_evals``).
        note, velocity: MIDI note and velocity the voices are played at.
        max_evals: most renders to spend (the starts included).
        budget_s: most seconds to spend (None: no limit); stops between batches.
        evaluator: a persistent Evaluator (its pool is reused); None makes one for this call.
        n_starts: how many of the best starts are searched (successive halving between them).
        method: ``lengler`` (nevergrad's DiscreteLenglerOnePlusOne over the 144 learnable
            parameters from the best start, batches of LENGLER_BATCH: measured best) or
            ``sweep`` (the structured coordinate search, ``Sweep``).
        scales, revisit, per_param, screen: for ``sweep``, see ``Sweep``.
        seed: the search is deterministic; the seed only breaks exact ties between starts.

    Returns:
        SearchResult; its loss is never above the best start's.

    Raises:
        ValueError: no starts, or a silent / wrongly sized target.
    """
    if not starts:
        raise ValueError("refine needs at least one start voice")
    t0 = time.perf_counter()
    deadline = None if budget_s is None else t0 + budget_s
    own = evaluator is None
    evaluator = Evaluator() if own else evaluator
    try:
        evaluator.set_target(target_audio, note, velocity)
        values = np.stack([v.values for v in starts]).astype(np.int64)
        # the transposition is part of the search, but the starts are judged as they are
        losses = evaluator(values)
        evals = len(values)
        history = [(evals, float(losses.min()))]
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.permutation(len(values)), losses))
        if method == "lengler":
            k = int(order[0])
            x, loss, evals = _lengler(evaluator, values[k], float(losses[k]), max_evals, evals,
                                      history, deadline, seed)  # fmt: skip
            return SearchResult(voice=Voice.from_values(x, starts[k].name), loss=loss,
                                evals=evals, seconds=time.perf_counter() - t0,
                                history=_monotone(history), start=k,
                                start_loss=float(losses[k]))  # fmt: skip
        if method != "sweep":
            raise ValueError(f"unknown refinement method {method!r}; choose sweep or lengler")
        keep = [int(k) for k in order[: max(1, n_starts)]]
        sweeps = {k: Sweep(values[k], losses[k], scales=scales, revisit=revisit,
                           per_param=per_param, screen=screen) for k in keep}  # fmt: skip
        # successive halving: every start gets a share, the better half goes on
        while evals < max_evals and sweeps:
            alive = sorted(sweeps, key=lambda k: sweeps[k].loss)
            if len(alive) > 1:
                share = max(1, (max_evals - evals) // (2 * len(alive)))
            else:
                share = max_evals - evals
            for k in alive:
                evals += sweeps[k].run(evaluator, min(share, max_evals - evals), history, evals,
                                       deadline)  # fmt: skip
            alive = sorted(sweeps, key=lambda k: sweeps[k].loss)
            if len(alive) > 1:
                sweeps = {k: sweeps[k] for k in alive[: len(alive) // 2]}
            elif sweeps[alive[0]].done:
                break
            if deadline is not None and time.perf_counter() > deadline:
                break
        best = min(sweeps, key=lambda k: sweeps[k].loss)
        history = _monotone(history)
        return SearchResult(
            voice=Voice.from_values(sweeps[best].x, starts[best].name),
            loss=float(sweeps[best].loss),
            evals=evals,
            seconds=time.perf_counter() - t0,
            history=history,
            start=best,
            start_loss=float(losses[best]),
        )
    finally:
        if own:
            evaluator.close()


LENGLER_BATCH = 8  # proposals asked of nevergrad at once: the batch the workers share


def _lengler(evaluate, x0, loss0, max_evals, evals, history, deadline, seed):
    """nevergrad's DiscreteLenglerOnePlusOne (a discrete (1+1) evolution strategy whose
    mutation rate adapts) over the 144 learnable parameters, started at ``x0``.

    Returns:
        (best values (145,), its loss, evaluations spent in all).
    """
    import nevergrad as ng

    from companion.dx7.params import LEARNABLE

    learn = np.array(LEARNABLE)
    hi = PARAM_MAX[learn].astype(float)
    param = ng.p.Array(init=x0[learn].astype(float), lower=0, upper=hi).set_integer_casting()
    param.random_state = np.random.RandomState(seed)
    opt = ng.optimizers.registry["DiscreteLenglerOnePlusOne"](
        parametrization=param, budget=max(1, max_evals - evals), num_workers=LENGLER_BATCH
    )
    best, best_loss = np.asarray(x0, np.int64).copy(), float(loss0)
    while evals + LENGLER_BATCH <= max_evals:
        if deadline is not None and time.perf_counter() > deadline:
            break
        cands = [opt.ask() for _ in range(LENGLER_BATCH)]
        vals = np.repeat(np.asarray(x0, np.int64)[None], LENGLER_BATCH, 0)
        vals[:, learn] = np.clip(np.rint([c.value for c in cands]), 0, hi)
        losses = evaluate(vals)
        evals += LENGLER_BATCH
        for c, loss in zip(cands, losses):
            opt.tell(c, float(loss))
        k = int(np.argmin(losses))
        if losses[k] < best_loss:
            best, best_loss = vals[k].copy(), float(losses[k])
        history.append((evals, best_loss))
    return best, best_loss, evals


def _monotone(history: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The history as the best loss so far (several starts interleave)."""
    out, best = [], float("inf")
    for n, loss in history:
        best = min(best, loss)
        out.append((int(n), best))
    return out
