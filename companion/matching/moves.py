"""What the search may change in a voice, in the steps the engine can hear, in DX7 order.

Dexed quantises some parameters before they reach the sound (its env.cc, the DX7's own
tables): an envelope rate r becomes ``r * 41 >> 6`` (64 distinct values of 100), and an
envelope level l becomes ``scaleoutlevel(l) >> 1`` (59 distinct values of 100). Two values of
one class render the same samples (tests/test_moves.py checks it with the engine), so the
search moves between classes, never inside one, and keeps the start's own value where its
class is the one chosen (fewer edits to the library voice, the same sound).

The parameters are searched in the order a DX7 programmer works in: the operators'
frequencies first (a wrong ratio hides everything else), then the carriers' levels and
envelopes (what is heard directly), then the modulators' (the timbre), then the global
voice (algorithm, feedback, pitch envelope, LFO). Parameters one note cannot tell apart from
others are left as the start has them: keyboard level and rate scaling (they only change the
sound across keys) and velocity sensitivity (it only scales a level at one velocity), so a
match at one key does not buy itself a wrong sound at the others by moving them. An operator
that cannot be heard (its level 0, or reaching no carrier) is left alone but for its level,
and the LFO's parameters only move where the LFO is heard.
"""

from __future__ import annotations

import numpy as np
from dexed import algorithms

from companion.dx7.params import KEY_DEPENDENT, VELOCITY_DEPENDENT, audible_operators
from companion.dx7.voice import N_PARAMS, PARAM_MAX, PARAM_NAMES, param_index

# Dexed's env.cc: levels below 20 go through this table, 20..99 become 28 + level.
_LEVEL_LUT = (0, 5, 9, 13, 17, 20, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 42, 43, 45, 46)


def _scaled_level(level: int) -> int:
    return _LEVEL_LUT[level] if level < 20 else 28 + level


def engine_class(index: int, value: int) -> int:
    """The value the engine uses for a parameter (equal classes sound the same)."""
    name = PARAM_NAMES[index].split("_", 1)[1] if PARAM_NAMES[index][:2] == "op" else ""
    if name.startswith("eg_rate"):
        return (int(value) * 41) >> 6
    if name.startswith("eg_level"):
        return _scaled_level(int(value)) >> 1
    return int(value)


# (145, 100) class of every value (-1 beyond a parameter's range)
CLASS = np.full((N_PARAMS, 100), -1, np.int64)
for _i in range(N_PARAMS):
    CLASS[_i, : PARAM_MAX[_i] + 1] = [engine_class(_i, v) for v in range(PARAM_MAX[_i] + 1)]


def choices(index: int, current: int) -> np.ndarray:
    """The values worth trying for a parameter: one per engine class, in increasing order,
    ``current`` standing for its own class."""
    cls = CLASS[index, : PARAM_MAX[index] + 1]
    _, first = np.unique(cls, return_index=True)
    values = np.sort(first)
    own = cls[current]
    values[cls[values] == own] = current
    return values


# parameters a single note cannot tell apart from others: left as the start has them
NOT_SEARCHED = KEY_DEPENDENT | VELOCITY_DEPENDENT
_FREQ = ("coarse", "fine", "detune", "osc_mode")
_LEVEL_ENV = ("output_level", "eg_rate1", "eg_rate2", "eg_rate3", "eg_rate4", "eg_level1",
              "eg_level2", "eg_level3", "eg_level4")  # fmt: skip
_GLOBAL = ("algorithm", "feedback", "osc_key_sync", "pitch_eg_rate1", "pitch_eg_rate2",
           "pitch_eg_rate3", "pitch_eg_rate4", "pitch_eg_level1", "pitch_eg_level2",
           "pitch_eg_level3", "pitch_eg_level4")  # fmt: skip
_LFO = ("lfo_speed", "lfo_delay", "lfo_pmd", "lfo_amd", "lfo_sync", "lfo_wave", "pitch_mod_sens")
assert not set(_FREQ + _LEVEL_ENV) & NOT_SEARCHED
_TRANSPOSE = param_index("transpose")
_ALGORITHM = param_index("algorithm")


def operator_block(op: int) -> np.ndarray:
    """The parameters of operator ``op`` (1-6) a block move copies from another voice: its
    frequency, output level and envelope (what one note shows of it; its scaling and
    velocity sensitivity stay the voice's own, as NOT_SEARCHED)."""
    return np.array([param_index(n, op) for n in _FREQ + _LEVEL_ENV], np.int64)


def groups(values: np.ndarray, free: tuple[str, ...] = ()) -> list[tuple[str, np.ndarray]]:
    """The parameter groups to search for this voice, in DX7 order.

    Args:
        values: (145,) the current voice.
        free: "key" and / or "velocity": their dependent parameters (keyboard level and
            rate scaling; velocity sensitivity) of the audible operators are searched too,
            in a last group ("scaling"): recordings at several keys or velocities show them.

    Returns:
        [(group name, parameter indices)]: "frequencies", "carriers", "modulators",
        "global", "scaling"; empty groups left out.
    """
    values = np.asarray(values, np.int64)
    audible = audible_operators(values)
    carriers = set(algorithms[int(values[_ALGORITHM])].carriers)  # 0-based operators
    freq, car, mod = [_TRANSPOSE], [], []
    for op in range(1, 7):
        if not audible[op - 1]:  # only its level may bring it in
            (car if op - 1 in carriers else mod).append(param_index("output_level", op))
            continue
        freq += [param_index(n, op) for n in _FREQ]
        (car if op - 1 in carriers else mod).extend(param_index(n, op) for n in _LEVEL_ENV)
    glob = [param_index(n) for n in _GLOBAL]
    lfo_heard = values[param_index("lfo_pmd")] * values[param_index("pitch_mod_sens")] > 0 or (
        values[param_index("lfo_amd")] > 0
    )
    if lfo_heard:
        glob += [param_index(n) for n in _LFO]
        glob += [param_index("amp_mod_sens", op) for op in range(1, 7) if audible[op - 1]]
    names = (KEY_DEPENDENT if "key" in free else set()) | (
        VELOCITY_DEPENDENT if "velocity" in free else set()
    )
    scaling = [param_index(n, op) for op in range(1, 7) if audible[op - 1] for n in sorted(names)]
    out = [("frequencies", freq), ("carriers", car), ("modulators", mod), ("global", glob),
           ("scaling", scaling)]  # fmt: skip
    return [(name, np.array(idx, np.int64)) for name, idx in out if idx]

