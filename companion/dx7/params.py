"""The learnable preset vector: 144 DX7 parameters in the paper's three encodings.

Transpose is not learned (it stays at 24, its middle value) so 144 of the 145 parameters are.
Each encoding maps a voice to a float vector, parameter by parameter in VCED order:
- ``numonly``: every parameter is one number in [0, 1] (value / max);
- ``numcat``: the categorical parameters (algorithm, osc key sync, LFO key sync, LFO wave,
  operator mode, left and right curves) are one-hot groups;
- ``numcat++``: every discrete parameter with at most 32 values is one-hot too (feedback,
  pitch-mod sensitivity, coarse, detune, rate scaling, amp-mod and key-velocity sensitivity).

Decoding takes the argmax of each one-hot group and rounds numbers to the nearest valid value,
so any vector decodes to a valid voice and ``decode(encode(v)) == v`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from dexed import algorithms

from companion.dx7.voice import N_PARAMS, PARAM_MAX, PARAM_NAMES, PARAM_OPERATOR, Voice, param_index

ENCODINGS = ("numonly", "numcat", "numcat++")
TRANSPOSE = param_index("transpose")
TRANSPOSE_DEFAULT = 24
LEARNABLE = tuple(i for i in range(N_PARAMS) if i != TRANSPOSE)  # 144 indices into a voice

CATEGORICAL = {
    "algorithm",
    "osc_key_sync",
    "lfo_sync",
    "lfo_wave",
    "osc_mode",
    "left_curve",
    "right_curve",
}
DISCRETE_EXTRA = {
    "feedback",
    "pitch_mod_sens",
    "coarse",
    "detune",
    "rate_scaling",
    "amp_mod_sens",
    "key_vel_sens",
}
KEY_DEPENDENT = {
    "breakpoint",
    "left_depth",
    "right_depth",
    "left_curve",
    "right_curve",
    "rate_scaling",
}
VELOCITY_DEPENDENT = {"key_vel_sens"}


def _field(index: int) -> str:
    """Parameter name without its operator prefix: ``op3_coarse`` -> ``coarse``."""
    name = PARAM_NAMES[index]
    return name.split("_", 1)[1] if PARAM_OPERATOR[index] is not None else name


@dataclass(frozen=True)
class ParamInfo:
    """Metadata of one learnable parameter.

    Attributes:
        name: e.g. ``op1_coarse`` or ``algorithm``.
        index: its position in ``Voice.params`` (VCED order).
        operator: DX7 operator number 1..6, or None for a global parameter.
        cardinality: number of values (max + 1).
        key_dependent / velocity_dependent: for the paper's key/velocity metrics.
    """

    name: str
    index: int
    operator: int | None
    cardinality: int
    key_dependent: bool
    velocity_dependent: bool

    def is_categorical(self, encoding: str) -> bool:
        """Whether this parameter is a one-hot group in ``encoding``."""
        field = _field(self.index)
        if encoding == "numonly":
            return False
        if encoding == "numcat":
            return field in CATEGORICAL
        if encoding == "numcat++":
            return field in CATEGORICAL or field in DISCRETE_EXTRA
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")


PARAMS: tuple[ParamInfo, ...] = tuple(
    ParamInfo(
        PARAM_NAMES[i],
        i,
        PARAM_OPERATOR[i],
        int(PARAM_MAX[i]) + 1,
        _field(i) in KEY_DEPENDENT,
        _field(i) in VELOCITY_DEPENDENT,
    )
    for i in LEARNABLE
)


@dataclass(frozen=True)
class Column:
    """Where one learnable parameter lives in an encoded vector."""

    param: ParamInfo
    start: int
    width: int  # 1 for a number, the cardinality for a one-hot group

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.width)

    @property
    def categorical(self) -> bool:
        return self.width > 1


class Representation:
    """One encoding of the 144 learnable parameters as a float vector.

    Attributes:
        encoding: ``numonly``, ``numcat`` or ``numcat++``.
        columns: one ``Column`` per learnable parameter, in VCED order.
        size: length of the encoded vector (144, 224 or 610).
    """

    def __init__(self, encoding: str):
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
        self.encoding = encoding
        cols, start = [], 0
        for p in PARAMS:
            width = p.cardinality if p.is_categorical(encoding) else 1
            cols.append(Column(p, start, width))
            start += width
        self.columns: tuple[Column, ...] = tuple(cols)
        self.size = start
        num = [c for c in cols if not c.categorical]
        self.numerical_columns = np.array([c.start for c in num], dtype=np.int64)
        self.numerical_params = np.array([c.param.index for c in num], dtype=np.int64)
        self.numerical_max = np.array([c.param.cardinality - 1 for c in num], dtype=np.float32)
        self.categorical = tuple(c for c in cols if c.categorical)

    def __repr__(self) -> str:
        return f"Representation({self.encoding!r}, size={self.size})"

    def encode(self, values) -> np.ndarray:
        """Voices to vectors.

        Args:
            values: (145,) or (N, 145) integers in VCED order (valid voices).

        Returns:
            (D,) or (N, D) float32, numbers in [0, 1], one-hot groups of 0/1.
        """
        values = np.asarray(values, dtype=np.int64)
        single = values.ndim == 1
        values = np.atleast_2d(values)
        out = np.zeros((len(values), self.size), dtype=np.float32)
        out[:, self.numerical_columns] = values[:, self.numerical_params] / self.numerical_max
        rows = np.arange(len(values))
        for c in self.categorical:
            out[rows, c.start + values[:, c.param.index]] = 1.0
        return out[0] if single else out

    def decode(self, vectors, transpose: int | np.ndarray = TRANSPOSE_DEFAULT) -> np.ndarray:
        """Vectors to the nearest valid voices' parameters.

        Args:
            vectors: (D,) or (N, D) floats (any values: they are clipped and rounded).
            transpose: the value given to the unlearned transpose parameter (scalar or (N,)).

        Returns:
            (145,) or (N, 145) int64, every parameter in range.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.size:
            raise ValueError(
                f"{self.encoding} vectors have {self.size} columns, got {vectors.shape[-1]}"
            )
        single = vectors.ndim == 1
        vectors = np.atleast_2d(vectors)
        out = np.zeros((len(vectors), N_PARAMS), dtype=np.int64)
        num = np.clip(vectors[:, self.numerical_columns], 0.0, 1.0) * self.numerical_max
        out[:, self.numerical_params] = np.rint(num).astype(np.int64)
        for c in self.categorical:
            out[:, c.param.index] = np.argmax(vectors[:, c.slice], axis=1)
        out[:, TRANSPOSE] = transpose
        return out[0] if single else out

    def decode_voice(self, vector, name: str = "COMPANION", transpose: int = 24) -> Voice:
        """One vector (D,) to a ``Voice``."""
        return Voice.from_values(self.decode(vector, transpose), name)

    def loss_mask(self, values) -> np.ndarray:
        """Which columns count in the loss: all but those of operators that cannot be heard.

        An inaudible operator's output level still counts (the model must learn that it is 0).

        Args:
            values: (N, 145) integers.

        Returns:
            (N, D) bool.
        """
        audible = audible_operators(values)  # (N, 6), column k is OP(k+1)
        mask = np.ones((len(audible), self.size), dtype=bool)
        for c in self.columns:
            op = c.param.operator
            if op is not None and not c.param.name.endswith("output_level"):
                mask[:, c.slice] &= audible[:, op - 1 : op]
        return mask

    def column_indices(self, predicate) -> np.ndarray:
        """Vector columns of the parameters for which ``predicate(ParamInfo)`` is true."""
        cols = [np.arange(c.start, c.start + c.width) for c in self.columns if predicate(c.param)]
        return np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)


@cache
def representation(encoding: str) -> Representation:
    """The shared ``Representation`` of an encoding name."""
    return Representation(encoding)


_OUTPUT_LEVEL = np.array([param_index("output_level", op) for op in range(1, 7)])


def audible_operators(values) -> np.ndarray:
    """Which operators can be heard: output level above 0, and a carrier or a modulator of an
    audible operator (through the voice's algorithm).

    Args:
        values: (145,) or (N, 145) integers.

    Returns:
        (6,) or (N, 6) bool, column k for operator k + 1.
    """
    values = np.asarray(values, dtype=np.int64)
    single = values.ndim == 1
    values = np.atleast_2d(values)
    level_on = values[:, _OUTPUT_LEVEL] > 0
    audible = np.zeros_like(level_on)
    alg = values[:, param_index("algorithm")]
    for a in np.unique(alg):
        rows = alg == a
        info = algorithms[int(a)]
        heard = np.zeros((int(rows.sum()), 6), dtype=bool)
        heard[:, list(info.carriers)] = True
        heard &= level_on[rows]
        mod = np.asarray(info.mod_matrix, dtype=bool)  # mod[i, j]: op j modulates op i
        for _ in range(6):  # a chain is at most 6 operators long
            heard = level_on[rows] & (heard | (heard.astype(np.int64) @ mod.astype(np.int64) > 0))
        audible[rows] = heard
    return audible[0] if single else audible
