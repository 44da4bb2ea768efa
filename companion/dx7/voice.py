"""A DX7 voice: its 145 sound parameters in the DX7's own order, plus a 10-character name.

The order is the single-voice (VCED) sysex order of the DX7 manual: operator 6 first, then
operators 5..1 (21 parameters each), then the 19 global parameters. Index ``i`` of
``Voice.params`` is byte ``i`` of a single-voice dump's data, so nothing is reordered between
the file, the database and the engine. Values are the DX7's own integers (algorithm 0..31
shows as 1..32 on the instrument; transpose 24 is C3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_PARAMS = 145
NAME_LENGTH = 10

# (name, max) of one operator's 21 parameters, in VCED order.
OPERATOR_FIELDS: tuple[tuple[str, int], ...] = (
    ("eg_rate1", 99),
    ("eg_rate2", 99),
    ("eg_rate3", 99),
    ("eg_rate4", 99),
    ("eg_level1", 99),
    ("eg_level2", 99),
    ("eg_level3", 99),
    ("eg_level4", 99),
    ("breakpoint", 99),
    ("left_depth", 99),
    ("right_depth", 99),
    ("left_curve", 3),
    ("right_curve", 3),
    ("rate_scaling", 7),
    ("amp_mod_sens", 3),
    ("key_vel_sens", 7),
    ("output_level", 99),
    ("osc_mode", 1),
    ("coarse", 31),
    ("fine", 99),
    ("detune", 14),
)

GLOBAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("pitch_eg_rate1", 99),
    ("pitch_eg_rate2", 99),
    ("pitch_eg_rate3", 99),
    ("pitch_eg_rate4", 99),
    ("pitch_eg_level1", 99),
    ("pitch_eg_level2", 99),
    ("pitch_eg_level3", 99),
    ("pitch_eg_level4", 99),
    ("algorithm", 31),
    ("feedback", 7),
    ("osc_key_sync", 1),
    ("lfo_speed", 99),
    ("lfo_delay", 99),
    ("lfo_pmd", 99),
    ("lfo_amd", 99),
    ("lfo_sync", 1),
    ("lfo_wave", 5),
    ("pitch_mod_sens", 7),
    ("transpose", 48),
)

# DX7 operator number (6..1) of each 21-parameter block, in storage order.
OPERATOR_ORDER = (6, 5, 4, 3, 2, 1)


def _layout() -> tuple[tuple[str, ...], np.ndarray, tuple[int | None, ...]]:
    names, maxima, ops = [], [], []
    for op in OPERATOR_ORDER:
        for field, hi in OPERATOR_FIELDS:
            names.append(f"op{op}_{field}")
            maxima.append(hi)
            ops.append(op)
    for field, hi in GLOBAL_FIELDS:
        names.append(field)
        maxima.append(hi)
        ops.append(None)
    return tuple(names), np.array(maxima, dtype=np.int64), tuple(ops)


PARAM_NAMES, PARAM_MAX, PARAM_OPERATOR = _layout()
PARAM_INDEX = {name: i for i, name in enumerate(PARAM_NAMES)}
assert len(PARAM_NAMES) == N_PARAMS


def param_index(name: str, op: int | None = None) -> int:
    """Index of a parameter in ``Voice.params``, e.g. ``param_index("coarse", op=1)``."""
    return PARAM_INDEX[f"op{op}_{name}" if op is not None else name]


@dataclass(frozen=True)
class OutOfRange:
    """One parameter outside the DX7's range."""

    index: int
    value: int

    @property
    def param(self) -> str:
        return PARAM_NAMES[self.index]

    def __str__(self) -> str:
        return f"{self.param}={self.value} (max {PARAM_MAX[self.index]})"


def out_of_range(values) -> list[OutOfRange]:
    """Parameters outside their DX7 range.

    Args:
        values: (145,) integers in VCED order.

    Returns:
        One entry per bad parameter, in parameter order (empty when the voice is valid).
    """
    values = np.asarray(values, dtype=np.int64)
    if values.shape != (N_PARAMS,):
        raise ValueError(f"a DX7 voice has {N_PARAMS} parameters, got shape {values.shape}")
    bad = np.flatnonzero((values < 0) | (values > PARAM_MAX))
    return [OutOfRange(int(i), int(values[i])) for i in bad]


@dataclass(frozen=True)
class Voice:
    """One DX7 voice.

    Attributes:
        params: the 145 sound parameters as bytes, in VCED order (see module docstring).
            Two voices with equal ``params`` sound the same; this is the database key.
        name: exactly 10 characters (7-bit), padding included, as stored on the DX7.
    """

    params: bytes
    name: str = "INIT VOICE"

    def __post_init__(self):
        if len(self.params) != N_PARAMS:
            raise ValueError(f"a DX7 voice has {N_PARAMS} parameters, got {len(self.params)}")
        problems = out_of_range(np.frombuffer(self.params, dtype=np.uint8))
        if problems:
            raise ValueError("parameter out of range: " + ", ".join(map(str, problems)))
        name = self.name[:NAME_LENGTH].ljust(NAME_LENGTH)
        if any(ord(c) > 127 for c in name):
            raise ValueError(f"a DX7 name is 7-bit ASCII, got {name!r}")
        object.__setattr__(self, "name", name)

    @classmethod
    def from_values(cls, values, name: str = "INIT VOICE") -> Voice:
        """Voice from (145,) integers; raises ValueError naming any out-of-range parameter."""
        values = np.asarray(values)
        problems = out_of_range(values)
        if problems:
            raise ValueError("parameter out of range: " + ", ".join(map(str, problems)))
        return cls(bytes(values.astype(np.uint8)), name)

    @property
    def values(self) -> np.ndarray:
        """(145,) uint8 copy of the parameters."""
        return np.frombuffer(self.params, dtype=np.uint8).copy()

    def __getitem__(self, name: str) -> int:
        return self.params[PARAM_INDEX[name]]

    def replace(self, name: str | None = None, **params: int) -> Voice:
        """A copy with some parameters (by name, e.g. ``op1_coarse=2``) or the name changed."""
        values = self.values.astype(np.int64)
        for key, value in params.items():
            values[PARAM_INDEX[key]] = value
        return Voice.from_values(values, self.name if name is None else name)

    def vced(self) -> bytes:
        """The 155 data bytes of a single-voice dump: parameters then name."""
        return self.params + self.name.encode("ascii")

    def engine_bytes(self) -> bytes:
        """The 156 bytes dexed-py's engine loads: VCED data plus operator on/off (all on)."""
        return self.vced() + b"\x3f"

    def to_patch(self):
        """This voice as a dexed-py ``Patch`` (for its editing API and packed format)."""
        from dexed import Patch

        return Patch.from_sysex(self.engine_bytes())

    @property
    def display_name(self) -> str:
        return self.name.rstrip()


def _init_voice() -> Voice:
    # The DX7's "INIT VOICE": a single sine on OP1 at full level, everything else neutral.
    op = [99, 99, 99, 99, 99, 99, 99, 0, 39, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7]
    values = []
    for number in OPERATOR_ORDER:
        block = list(op)
        block[16] = 99 if number == 1 else 0
        values += block
    values += [99, 99, 99, 99, 50, 50, 50, 50, 0, 0, 1, 35, 0, 0, 0, 1, 0, 3, 24]
    return Voice(bytes(values), "INIT VOICE")


INIT_VOICE = _init_voice()
