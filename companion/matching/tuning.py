"""Moving a voice in pitch as a DX7 can: by keys (``shift_key``) and by cents (``retune``), and
the tuning of an answer to its recording (``tune``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from companion.data.pitch import cents, pitch_near
from companion.dx7.voice import Voice, param_index
from companion.matching.take import PITCH_MIN_S

TUNE_CENTS = 20.0  # a pitch error above this is corrected (when the match does not get worse)
TAKE_NEAR = 1.5  # semitones around a take's heard pitch its precise pitch is looked for
ANSWER_NEAR = 6.0  # ... and an answer's (a wrong answer can be further off; never an octave)


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


def shift_key(voice: Voice, semitones: int) -> Voice | None:
    """The voice that plays at key ``k - semitones`` what ``voice`` plays at key ``k``: its
    transpose raised by ``semitones`` (the engine adds transpose to the key before anything
    else, so this is exact: tests/test_program.py checks it with the engine). Where the
    transpose's range (0..48) ends, the rest moves by octaves in every ratio-mode operator's
    coarse frequency (x2 or /2) and keyboard-scaling breakpoint (fixed-frequency operators do
    not follow the key; rate scaling cannot move: close, not exact), the transpose taking the
    rest. None when no such voice exists (an odd coarse ratio halved, a ratio doubled past 31,
    a breakpoint past its range).
    """
    values = voice.values.astype(np.int64)
    t = int(values[_TRANSPOSE]) + int(semitones)
    # the fewest octaves the frequencies must take so that the transpose stays in 0..48
    octaves = math.ceil((t - 48) / 12) if t > 48 else -math.ceil(-t / 12) if t < 0 else 0
    values[_TRANSPOSE] = t - 12 * octaves
    for op in range(1, 7) if octaves else ():
        bp = param_index("breakpoint", op)
        values[bp] -= 12 * octaves
        if not 0 <= values[bp] <= 99:
            return None
        if values[param_index("osc_mode", op)] == 1:
            continue
        c = param_index("coarse", op)
        for _ in range(abs(octaves)):
            ratio = _doubled(int(values[c])) if octaves > 0 else _halved(int(values[c]))
            if ratio is None:
                return None
            values[c] = ratio
    return Voice.from_values(values, voice.name)


def _doubled(coarse: int) -> int | None:
    """The coarse value of twice a ratio (coarse 0 is a ratio of 0.5), None past 31."""
    out = 1 if coarse == 0 else 2 * coarse
    return out if out <= 31 else None


def _halved(coarse: int) -> int | None:
    """The coarse value of half a ratio, None where there is none (odd ratios, 0.5)."""
    if coarse == 1:
        return 0
    return coarse // 2 if coarse >= 2 and coarse % 2 == 0 else None


def pitch_error(audio: np.ndarray, play, pitch_hz: float, reference: np.ndarray) -> float:
    """Cents from ``reference``'s pitch to ``audio``'s, both played as ``play`` (over its held
    part, from 50 ms after the key-on, at least PITCH_MIN_S), each measured precisely near the
    reference's heard pitch ``pitch_hz`` (companion.data.pitch.pitch_near); NaN where either
    has no pitch there."""
    sr = play.sample_rate
    start = play.offset + round(0.05 * sr)
    end = play.offset + round(max(play.hold_s, PITCH_MIN_S) * sr)
    ref = pitch_near(reference, sr, pitch_hz, start, end, TAKE_NEAR)
    got = pitch_near(audio, sr, ref if np.isfinite(ref) else pitch_hz, start, end, ANSWER_NEAR)
    return cents(got, ref)


def tune(voice: Voice, loss: float, render: Callable[[Voice], np.ndarray], take,
         loss_of: Callable[[Voice], float]
         ) -> tuple[Voice, float, np.ndarray, float, bool]:  # fmt: skip
    """Retune ``voice`` when its pitch is more than TUNE_CENTS off the take's; the tuned voice
    is kept only if its pitch is closer and its loss (``loss_of``) no higher.

    Args:
        voice, loss: the answer and its loss. render: plays a voice as the take (T,).
        take: the recording (companion.matching.take.Take).

    Returns:
        (voice, loss, its render, pitch error in cents (NaN: no stable pitch), retuned).
    """
    audio = render(voice)
    err = pitch_error(audio, take.play, take.pitch_hz, take.audio)
    if np.isfinite(err) and abs(err) > TUNE_CENTS:
        tuned = retune(voice, -err)
        audio_t = render(tuned)
        err_t = pitch_error(audio_t, take.play, take.pitch_hz, take.audio)
        loss_t = loss_of(tuned)
        if loss_t <= loss and abs(err_t) < abs(err):
            return tuned, loss_t, audio_t, err_t, True
    return voice, loss, audio, err, False
