"""Tuning a voice: the pitch shift that brings it onto the input's note, as a DX7 can play it."""

from __future__ import annotations

import numpy as np

from companion.dx7.voice import Voice, param_index

TUNE_CENTS = 20.0  # a pitch error above this is corrected (when the match does not get worse)


def note_of(f0_hz: float, default: int = 60) -> int:
    """The MIDI note nearest to a frequency (Hz); ``default`` when there is no pitch (NaN)."""
    if not np.isfinite(f0_hz) or f0_hz <= 0:
        return default
    return int(np.clip(np.round(69 + 12 * np.log2(f0_hz / 440.0)), 0, 127))


def note_hz(note: int) -> float:
    """Equal-tempered frequency (Hz, A4 = 440) of a MIDI note."""
    return float(440.0 * 2 ** ((note - 69) / 12))


_TRANSPOSE = param_index("transpose")


def _fine_and_detune(values: np.ndarray, rest: float) -> tuple[np.ndarray, float]:
    """Every ratio-mode operator's fine frequency and detune moved by ``rest`` cents as nearly
    as their steps allow; returns the new values and the worst error left (cents)."""
    values, worst = values.copy(), 0.0
    options = np.arange(100)
    for op in range(1, 7):
        if values[param_index("osc_mode", op)] == 1:
            continue
        fi, di = param_index("fine", op), param_index("detune", op)
        # the fine step whose ratio (1 + fine / 100) comes closest to the wanted shift
        shift = 1200 * np.log2((1 + options / 100) / (1 + values[fi] / 100))
        best = int(options[np.argmin(np.abs(shift - rest))])
        left = rest - shift[best]
        # detune: about 1.2 cents a step around middle C (measured with the engine)
        detune = int(np.clip(values[di] + np.round(left / DETUNE_CENTS), 0, 14))
        left -= (detune - values[di]) * DETUNE_CENTS
        values[fi], values[di], worst = best, detune, max(worst, abs(left))
    return values, worst


DETUNE_CENTS = 1.2


def retune(voice: Voice, shift_cents: float) -> Voice:
    """Shift a voice's pitch: transpose for whole semitones, then every ratio-mode operator's
    fine frequency and detune for the rest (fixed-frequency operators are left alone). Fine
    only raises a ratio, so a small downward shift becomes a semitone down and fine up."""
    base = voice.values.astype(np.int64)
    best, best_err = base, float("inf")
    for semis in sorted({int(np.floor(shift_cents / 100)), int(np.round(shift_cents / 100))}):
        values = base.copy()
        values[_TRANSPOSE] = int(np.clip(base[_TRANSPOSE] + semis, 0, 48))
        rest = shift_cents - 100 * (values[_TRANSPOSE] - base[_TRANSPOSE])
        values, err = _fine_and_detune(values, rest)
        if err < best_err - 1e-9:
            best, best_err = values, err
    return Voice.from_values(best, voice.name)
