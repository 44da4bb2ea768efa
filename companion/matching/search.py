"""Refinement with the Dexed engine in the loop: a voice's parameters searched against a sound.

``refine`` ranks its starts by rendering them, then searches from the best one the way a DX7
programmer works (companion.matching.moves): the operators' frequencies first, then the
carriers' levels and envelopes, then the modulators', then the global voice, and again while
a pass gains. Each group is searched in three batches over the pool of engines:

1. a screen: every parameter of the group moved a little from the current best (one, two and
   four engine steps up and down; every value of a parameter with few), plus the values the
   other starts have there where they are near-twins of the best (a crossover, one parameter
   at a time);
2. a line scan of every parameter whose screen helped, over all its engine-distinct values
   (a grid of about 24, then every value around the grid's best): one-parameter loss curves
   are bumpy, so a scan finds the value a local step would not;
3. the scans' best values put together, most helpful first: the best of the cumulative
   combinations is kept.

Moves are kept only when they lower the loss by more than ACCEPT (relative). When a pass over
every group gains less than PASS_TOL, the search is in a local optimum that one parameter at
a time cannot leave, so it tries block moves (before the first pass too, where a far start
gains most from them; only with BLOCKS_MIN evaluations left, as in ``best``): one whole
operator (its frequency, level and envelope; moves.operator_block), a carrier with the
operators that modulate it, all the carriers or all the modulators, copied from another
start, any start, not only the near-twins (a voice's carriers from one library voice and its
modulators from another). The best block move that
helps is kept and the passes go on from there; when none helps, the search starts again from
the next best start (with the best start as its crossover donor) while evaluations are left,
and keeps the best voice found. At the end (a PRUNE_SHARE of the budget is held back for it)
every changed parameter is tried back at its start value and put back where the loss stays
within PRUNE_TOL: between answers of nearly equal loss the one with fewer edits to a real
voice wins, since one note cannot show what the extra edits do at other keys and velocities
(measured at six other keys by bench/search_designs.py).

Written here rather than with an optimiser library: the designs that use one were measured
worse at equal budgets (nevergrad's DiscreteLenglerOnePlusOne mutates around its start, not its
best, and changes dozens of parameters at once; CMA-ES over all 144 parameters scaled to [0, 1]
gained little), and none knows the engine's distinct steps, the operators' roles or a line scan
over a parameter.

Every batch is independent of the number of worker processes, and the Evaluator returns its
losses in order, so for a given ``max_evals`` the result is the same with any number of
processes (a budget in seconds may stop it earlier). Designs and their numbers:
figures/table_search.md (bench/search_designs.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from dexed import algorithms

from companion.data.render import Play
from companion.dx7.params import LEARNABLE
from companion.dx7.voice import N_PARAMS, Voice, param_index
from companion.matching.evaluator import Evaluator
from companion.matching.moves import CLASS, choices, groups, operator_block

ACCEPT = 1e-3  # a move is kept when it lowers the loss by more than this (relative)
PRUNE_TOL = 2e-3  # an edit is undone when the loss without it stays within this (relative)
PRUNE_SHARE = 0.1  # of the evaluations and seconds, held back for the pruning
PASS_TOL = 2e-3  # a pass over every group that gains less than this (relative) ends a search
EXACT = 1e-6  # a loss this low is the target itself: nothing left to search
RESTART_MIN = 200  # evaluations left worth a search from the next start
DONOR_MAX = 40  # a start is a near-twin (a crossover donor) when it differs in <= this many
SCREEN_STEPS = (1, 2, 4)  # engine steps a screen moves a parameter, up and down
SCAN_GRID = 24  # values a line scan tries first; then every value around the best of them
ALL_VALUES = 8  # parameters with at most this many values try all of them in a screen
_BLOCKS = [operator_block(op) for op in range(1, 7)]
BLOCKS_MIN = 1000  # evaluations left worth block moves (a screen costs ~11 per start)
_TRANSPOSE = param_index("transpose")
_ALGORITHM = param_index("algorithm")
_LEARN = np.array(LEARNABLE)


@dataclass
class SearchResult:
    """What ``refine`` found.

    Attributes:
        voice: the best voice (the name of its start).
        loss: its loss against the target (companion.matching.loss.Target).
        evals: voices evaluated, the starts included; renders: of those, rendered (not cached).
        seconds: wall time.
        history: (evals so far, best loss so far) after every batch; the loss never rises.
        start: index in ``starts`` of the start it grew from; start_loss: that start's loss.
        start_losses: (len(starts),) float32, every start's loss, in the order given.
        edits: learnable parameters whose engine value differs from the start's.
    """

    voice: Voice
    loss: float
    evals: int
    seconds: float
    renders: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    start: int = 0
    start_loss: float = float("nan")
    start_losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    edits: int = 0


def edits(a: np.ndarray, b: np.ndarray) -> int:
    """Learnable parameters whose engine values differ between two voices (145,)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    rows = np.arange(N_PARAMS)
    return int((CLASS[rows, a] != CLASS[rows, b])[_LEARN].sum())


class _Budget:
    """Evaluations and seconds left; every batch goes through ``__call__``. A share of both
    (``reserve``) is held back until ``release``: the pruning at the end needs it."""

    def __init__(self, evaluator: Evaluator, max_evals: int, seconds: float | None,
                 reserve: float = 0.0):  # fmt: skip
        self.evaluate, self.max_evals = evaluator, max_evals
        self.deadline = None if seconds is None else time.perf_counter() + seconds
        self.held = int(np.ceil(reserve * max_evals))
        self.held_s = 0.0 if seconds is None else reserve * seconds
        self.spent, self.history = 0, []

    def release(self) -> None:
        self.held, self.held_s = 0, 0.0

    @property
    def left(self) -> int:
        if self.deadline is not None and time.perf_counter() > self.deadline - self.held_s:
            return 0
        return self.max_evals - self.held - self.spent

    def __call__(self, values: np.ndarray, best: float) -> np.ndarray:
        values = values[: max(0, self.left)]
        if not len(values):
            return np.zeros(0, np.float32)
        losses = self.evaluate(values)
        self.spent += len(values)
        self.history.append((self.spent, min(best, float(losses.min()))))
        return losses


def _screen(x: np.ndarray, idx: np.ndarray, donors: list[np.ndarray], first_pass: bool):
    """(M, 145) proposals moving one parameter of ``idx`` each, and (M,) which parameter."""
    props, which = [], []
    for i in idx:
        vals = choices(i, x[i])
        c = int(np.searchsorted(vals, x[i]))
        if i == _ALGORITHM:  # unrelated neighbours: every algorithm, on the first pass only
            pos = range(len(vals)) if first_pass else []
        elif len(vals) <= ALL_VALUES:
            pos = range(len(vals))
        else:
            steps = SCREEN_STEPS + ((12,) if i == _TRANSPOSE else ())
            pos = [c + s * d for s in steps for d in (-1, 1) if 0 <= c + s * d < len(vals)]
        new = {int(vals[p]) for p in pos} | {int(d[i]) for d in donors}
        for v in sorted(new):
            if v != x[i] and CLASS[i, v] != CLASS[i, x[i]]:
                m = x.copy()
                m[i] = v
                props.append(m)
                which.append(i)
    return np.array(props, np.int64).reshape(-1, N_PARAMS), np.array(which, np.int64)


def _scan_values(x: np.ndarray, i: int, near: int | None = None) -> list[int]:
    """A line scan's values of parameter ``i``: a grid of about SCAN_GRID over its
    engine-distinct values (through the current one), or every value within one grid step of
    ``near`` (the grid's best)."""
    vals = choices(i, x[i])
    stride = max(1, -(-len(vals) // SCAN_GRID))
    if near is None:
        c = int(np.searchsorted(vals, x[i]))
        pos = range(c % stride, len(vals), stride)
    else:
        p = int(np.searchsorted(vals, near))
        pos = range(max(0, p - stride + 1), min(len(vals), p + stride))
    return [int(vals[p]) for p in pos if vals[p] != x[i]]


def _batch(x: np.ndarray, moves: list[tuple[int, int]]) -> np.ndarray:
    """(len(moves), 145): ``x`` with one (parameter, value) move each."""
    out = np.repeat(x[None], len(moves), 0)
    for k, (i, v) in enumerate(moves):
        out[k, i] = v
    return out


def _cumulative(x: np.ndarray, moves: list[tuple[int, int]]) -> np.ndarray:
    """(len(moves), 145): ``x`` with the first 1, 2, ... of the moves applied together."""
    out = np.repeat(x[None], len(moves), 0)
    for k, (i, v) in enumerate(moves):
        out[k:, i] = v
    return out


def _search_group(budget: _Budget, x: np.ndarray, loss: float, idx: np.ndarray,
                  donors: list[np.ndarray], first_pass: bool):  # fmt: skip
    """Screen, scan and combine one group (see the module docstring).

    Returns:
        (the best values (145,), their loss).
    """
    props, which = _screen(x, idx, donors, first_pass)
    losses = budget(props, loss)
    which = which[: len(losses)]
    best = {}  # parameter -> (loss, value): its best move so far
    for k in np.argsort(losses, kind="stable"):
        i = int(which[k])
        if i not in best:
            best[i] = (float(losses[k]), int(props[k, i]))
    helped = [i for i in best if best[i][0] < loss * (1 - ACCEPT)]
    # line scans of the parameters that helped: a grid, then every value near its best
    for near in (False, True):
        moves = [(i, v) for i in helped
                 for v in _scan_values(x, i, best[i][1] if near else None)]  # fmt: skip
        if not moves:
            break
        scanned = budget(_batch(x, moves), loss)
        for (i, v), lv in zip(moves, scanned):
            if lv < best[i][0]:
                best[i] = (float(lv), v)
    helped = sorted((i for i in best if best[i][0] < loss * (1 - ACCEPT)), key=lambda i: best[i][0])
    if not helped:
        return x, loss
    # the cumulative combinations of the best moves, most helpful first; the best one is kept
    combos = _cumulative(x, [(i, best[i][1]) for i in helped])
    together = budget(combos[1:], best[helped[0]][0])
    options = [(best[helped[0]][0], 0)] + [(float(lv), k + 1) for k, lv in enumerate(together)]
    lv, k = min(options)
    return combos[k], lv


def _prune(budget: _Budget, x: np.ndarray, loss: float, start: np.ndarray,
           ceiling: float) -> tuple[np.ndarray, float]:  # fmt: skip
    """Put back the start's value of every edit whose undoing costs at most PRUNE_TOL (and
    never above ``ceiling``, the best start's loss)."""
    rows = np.arange(N_PARAMS)
    changed = [int(i) for i in rows[CLASS[rows, x] != CLASS[rows, start]]]
    if not changed or budget.left <= 0:
        return x, loss
    limit = min(loss * (1 + PRUNE_TOL), ceiling)
    undone = budget(_batch(x, [(i, int(start[i])) for i in changed]), loss)
    cheap = [changed[k] for k in np.argsort(undone, kind="stable") if undone[k] <= limit]
    if not cheap:
        return x, loss
    combos = _cumulative(x, [(i, int(start[i])) for i in cheap])
    together = budget(combos[1:], loss)
    options = [float(undone[changed.index(cheap[0])])] + [float(v) for v in together]
    # the most undone edits whose loss stays within the limit
    ok = [k for k, lv in enumerate(options) if lv <= limit]
    if not ok:
        return x, loss
    k = max(ok)
    return combos[k], options[k]


def _stacks(x: np.ndarray) -> list[np.ndarray]:
    """The blocks of ``x``'s algorithm: each operator, each carrier with every operator that
    reaches it through modulation (its stack), all the carriers, all the modulators; as
    parameter indices (moves.operator_block of each operator)."""
    algo = algorithms[int(x[_ALGORITHM])]
    mod = np.asarray(algo.mod_matrix, bool)  # mod[i, j]: operator j modulates operator i
    sets = [{op} for op in range(6)]
    for c in algo.carriers:
        stack, grow = {c}, [c]
        while grow:
            new = {int(j) for i in grow for j in np.flatnonzero(mod[i])} - stack
            stack |= new
            grow = list(new)
        sets.append(stack)
    sets += [set(algo.carriers), set(range(6)) - set(algo.carriers)]
    unique = {tuple(sorted(s)) for s in sets if s}
    return [np.concatenate([_BLOCKS[op] for op in ops]) for ops in sorted(unique)]


def _blocks(budget: _Budget, x: np.ndarray, loss: float, pool: list[np.ndarray]):
    """The best block move (``_stacks``: operators of a ``pool`` voice copied into ``x``),
    or ``x`` when none lowers the loss by more than ACCEPT.

    Returns:
        (values (145,), loss).
    """
    props = []
    for block in _stacks(x):
        seen = {x[block].tobytes()}
        for d in pool:
            if d[block].tobytes() not in seen:
                seen.add(d[block].tobytes())
                m = x.copy()
                m[block] = d[block]
                props.append(m)
    if not props:
        return x, loss
    props = np.array(props, np.int64)
    losses = budget(props, loss)
    if not len(losses) or losses.min() >= loss * (1 - ACCEPT):
        return x, loss
    k = int(np.argmin(losses))
    return props[k], float(losses[k])


def _descend(budget: _Budget, x: np.ndarray, loss: float, donors: list[np.ndarray],
             free: tuple[str, ...] = (), first: tuple[str, ...] = (),
             pool: list[np.ndarray] = ()):  # fmt: skip
    """Passes over the groups from ``x`` (those named in ``first`` first) until a pass gains
    less than PASS_TOL. Before the first pass, and where a pass stalls, a block move from
    ``pool`` (``_blocks``; with at least BLOCKS_MIN evaluations left), the passes going on
    from it while one helps. The start's own
    values join the donors: an edit that stopped paying can be undone.

    Returns:
        (best values (145,), its loss).
    """
    x, passes = x.copy(), 0
    donors = [*donors, x.copy()]
    pool = pool if budget.left >= BLOCKS_MIN else ()
    if len(pool) and loss > EXACT:
        x, loss = _blocks(budget, x, loss, pool)
    while budget.left > 0 and loss > EXACT:
        before = loss
        ordered = sorted(groups(x, free), key=lambda g: g[0] not in first)
        for _, idx in ordered:
            if budget.left <= 0:
                break
            x, loss = _search_group(budget, x, loss, idx, donors, passes == 0)
        passes += 1
        if loss >= before * (1 - PASS_TOL) and len(pool) and budget.left > 0 and loss > EXACT:
            x, loss = _blocks(budget, x, loss, pool)
        if loss >= before * (1 - PASS_TOL):
            break
    return x, loss


def refine(target_audio, starts: list[Voice], play: Play | list[Play] | None = None,
           *, free: tuple[str, ...] = (), match_level: bool = True, max_evals: int = 800,
           budget_s: float | None = None,
           evaluator: Evaluator | None = None, crossover: bool = True,
           prune: bool = True, blocks: bool = True, seed: int = 0,
           first: tuple[str, ...] = ()) -> SearchResult:  # fmt: skip
    """Refine the best of ``starts`` towards a target sound with the engine in the loop.

    Args:
        target_audio: (T,) float32 at 22 050 Hz, or a list of them (several recordings of one
            sound: Evaluator.set_target).
        starts: candidate voices, e.g. retrieval's best and the network's answer (any order;
            they are rendered and ranked first, which counts towards ``max_evals``).
        play: how the voices are played for each target (default: the project's render, note
            60, velocity 85, 4 s).
        free: which of "key" and "velocity" dependent parameters are searched too (several
            recordings at different keys / velocities show them; moves.groups).
        first: the groups (moves.groups' names) each pass searches first, e.g. "scaling"
            from a voice that already matches one of several recordings.
        match_level: compare at the target's level (a recording's; companion.matching.loss).
        max_evals: most voices to evaluate (the starts included; cached ones count too).
        budget_s: most seconds to spend (None: no limit); stops between batches.
        evaluator: a persistent Evaluator (its pool is reused); None makes one for this call.
        crossover: the other starts' values where they are near-twins of the best are tried.
        prune: edits that do not pay are undone at the end.
        blocks: where passes stop gaining, whole operators of the other starts are tried.
        seed: breaks exact ties between starts.

    Returns:
        SearchResult; its loss is never above the best start's.

    Raises:
        ValueError: no starts, or a silent / wrongly sized target.
    """
    if not starts:
        raise ValueError("refine needs at least one start voice")
    t0 = time.perf_counter()
    own = evaluator is None
    evaluator = Evaluator() if own else evaluator
    try:
        evaluator.set_target(target_audio, play, match_level)
        values = np.stack([v.values for v in starts]).astype(np.int64)
        losses = evaluator(values)
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.permutation(len(values)), losses))
        k = int(order[0])
        start, start_loss = values[k].copy(), float(losses[k])
        seconds = None if budget_s is None else budget_s - (time.perf_counter() - t0)
        budget = _Budget(evaluator, max(0, max_evals - len(values)), seconds,
                         PRUNE_SHARE if prune else 0.0)  # fmt: skip
        budget.history.append((0, start_loss))
        donors = [values[j] for j in order[1:] if crossover
                  and 0 < edits(values[j], start) <= DONOR_MAX]  # fmt: skip
        # from the best start while a pass gains; then, with budget left, from the next
        # best start (its own search), keeping the best voice found
        pool = list(values) if blocks else []
        x, loss = _descend(budget, start, start_loss, donors, free, first, pool)
        for j in order[1:]:
            if budget.left < RESTART_MIN or loss <= EXACT:
                break
            xj, lj = _descend(budget, values[j], float(losses[j]), [start], free, first, pool)
            if lj < loss:
                x, loss, k, start, start_loss = xj, lj, int(j), values[j].copy(), float(losses[j])
        budget.release()
        if prune:
            x, loss = _prune(budget, x, loss, start, float(losses.min()))
        history = [(len(values) + n, lv) for n, lv in budget.history]
        best = float("inf")
        history = [(n, best := min(best, lv)) for n, lv in history]
        return SearchResult(voice=Voice.from_values(x, starts[k].name), loss=float(loss),
                            evals=len(values) + budget.spent, renders=evaluator.renders,
                            seconds=time.perf_counter() - t0, history=history, start=k,
                            start_loss=start_loss, start_losses=losses,
                            edits=edits(x, start))  # fmt: skip
    finally:
        if own:
            evaluator.close()


__all__ = ["SearchResult", "edits", "refine"]
