"""What a recording does not tell, chosen with the engine: its key-on, velocity and key-up.

A recording's onset is where its sound rose out of the noise, its key-up where its envelope
turned to a release, and its velocity is not in it at all (its level is arbitrary): each is
an estimate (companion.matching.take). ``fit_play`` plays the best candidates with the key
released at other times (fractions of the estimate and of the sound's length), at
VELOCITIES, with the key down KEY_ON_EARLIER before the onset found (a slow attack rises
after its key-on); then each is moved in finer steps around the best (the key-on to the
sample, the velocity by 1, the key-up by 3 ms). A value is kept when the candidates' best
loss falls by more than KEEP (relative): a change that does not pay is not made, so a given
value (``--onset``, ``--velocity``, ``--hold``) and an estimate that is already right stay
as they are.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from companion.data.render import Play
from companion.matching.evaluator import Evaluator
from companion.matching.take import Take

FIT_STARTS = 3  # candidates a key-on, velocity or key-up is checked with
VELOCITIES = (40, 64, 85, 105, 127)  # velocities tried where none was given ...
VELOCITY_STEPS = (8, 4, 2, 1)  # ... then steps from the best of them
HOLD_NEAR = (-0.05, -0.02, 0.02, 0.05)  # s around the estimated key-up tried ...
HOLD_SHARES = (0.25, 0.5, 0.75, 1.0)  # ... and these shares of the sound's length ...
HOLD_STEPS = (0.16, 0.08, 0.04, 0.02, 0.01, 0.005, 0.003)  # s: ... then steps from the best
# (the engine lets the key up at a block of 64 samples: 2.9 ms at 22 050 Hz)
KEY_ON_EARLIER = (0.005, 0.01, 0.02, 0.04, 0.08)  # s before the onset found a key-on is tried
OFFSET_STEPS = (44, 22, 11, 4, 1)  # samples: then steps from the best
KEEP = 1e-3  # a value is kept when the best loss falls by more than this (relative)


def fit_play(evaluator: Evaluator, take: Take, top: np.ndarray) -> tuple[Take, float, int]:
    """The take with its key-on, velocity and key-up chosen where they were estimated.

    Args:
        evaluator: the pool of engines (its target is set here, to the take at each trial).
        take: the recording as read (its play: the estimates, or the values given).
        top: (M, 145) the candidates it is checked with (the FIT_STARTS best, say).

    Returns:
        (the take with the chosen play, the best loss of ``top`` played so, evaluations
        spent).
    """
    play, spent = take.play, 0

    def loss_of(trial: Play) -> float:
        nonlocal spent
        evaluator.set_target(take.audio, trial, not take.level_known)
        spent += len(top)
        return float(evaluator(top).min())

    loss = loss_of(play)

    def fit(field: str, values) -> bool:  # each value in turn, kept when it matches better
        nonlocal play, loss
        moved = False
        for value in values:
            trial = dataclasses.replace(play, **{field: value})
            lv = loss_of(trial)
            if lv < loss * (1 - KEEP):
                play, loss, moved = trial, lv, True
        return moved

    def walk(field: str, steps, lo, hi) -> None:  # both ways by each step, on while it pays
        for step in steps:
            for sign in (-1, 1):
                while True:
                    value = getattr(play, field) + sign * step
                    if not lo <= value <= hi or not fit(field, [value]):
                        break

    sr = play.sample_rate
    sound_s = (play.length - play.offset) / sr
    # coarse first, the least certain estimate first: the key-up (a slow release is read as
    # a held note), then the velocity (not in the recording at all), then the key-on (the
    # onset found is where the sound rose out of the noise: a slow attack's key went down
    # before it)
    if "hold" in take.estimated:
        holds = {round(h, 3) for h in (0.6 * play.hold_s, 1.5 * play.hold_s,
                                       *(play.hold_s + d for d in HOLD_NEAR),
                                       *(f * sound_s for f in HOLD_SHARES))}  # fmt: skip
        fit("hold_s", [h for h in sorted(holds)
                       if 0.05 <= h <= sound_s and abs(h - play.hold_s) > 0.02])  # fmt: skip
    if "velocity" in take.estimated:
        fit("velocity", [v for v in VELOCITIES if v != play.velocity])
    onset = "onset" in take.estimated and play.offset > OFFSET_STEPS[0]
    if onset:
        o = play.offset
        fit("offset", sorted({max(0, o - round(s * sr)) for s in KEY_ON_EARLIER} - {o},
                             reverse=True))  # fmt: skip
    elif "onset" in take.estimated and play.offset:  # at the file's start, or nearly
        fit("offset", [0])
    # then each by steps that halve, moving on while a step pays (a pattern search: the
    # coarse value can be far), the key-on to the sample, the velocity by 1, the key-up to
    # the engine's block
    if onset:
        walk("offset", OFFSET_STEPS, 0, play.length - 1)
    if "velocity" in take.estimated:
        walk("velocity", VELOCITY_STEPS, 1, 127)
    if "hold" in take.estimated:
        walk("hold_s", HOLD_STEPS, 0.05, sound_s)
    return dataclasses.replace(take, play=play), loss, spent


__all__ = ["FIT_STARTS", "fit_play"]
