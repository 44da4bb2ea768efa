"""A library's voices for recordings, each made to play the recording at the key it was read at.

Two stages:

1. the index (companion.matching.index.Index.near): every library voice's start compared with
   the recording's where the voice sounds the recording's pitch, at the velocity that matches
   best; its SHORTLIST nearest;
2. each of those rendered exactly like the recording (its key, velocity, hold, key-on and
   length) and compared with it by log-mel (companion.matching.logmel; level-free unless the
   recording is at the voice's own level): the ``n`` nearest are the candidates.

Between the stages, program.py chooses the recording's key-on, velocity and key-up with the
first stage's best voices (companion.matching.play_fit): a key-up read late would otherwise
put the right voice's release in the wrong place, and it would fall out of the second stage.

A voice found at key ``k`` for a recording read at key ``K`` (the note of its pitch, or the key
given) has ``k - K`` moved into its transpose (companion.matching.tuning.shift_key), so that
every candidate plays the recording at ``K``: the key a musician expects to press. A voice that
cannot be moved so is left out.

With several recordings of one sound (``program --together``), the voices are those of one of
them (program.py's ``lead``): ranked against all at once, the sound's near-twin, whose keyboard
scaling differs, lost to voices wrong at every key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from companion.dx7.voice import Voice
from companion.matching.evaluator import Evaluator
from companion.matching.index import Index
from companion.matching.take import Take
from companion.matching.tuning import shift_key

SHORTLIST = 64  # voices of the first stage rendered in the second


@dataclass(frozen=True)
class Candidate:
    """A library voice for a recording.

    Attributes:
        voice: the voice, its transpose moved so that it plays the recording at its key.
        id: its database id. shift: the semitones moved into its transpose.
        velocity: the velocity it matched best at (the first stage's estimate).
        distance: the second stage's log-mel distance (RMS, log10 units).
    """

    voice: Voice
    id: int
    shift: int
    velocity: int
    distance: float


def shortlist(index: Index, take: Take, n: int = SHORTLIST, split: str | None = None,
              exclude_ids=()) -> list[Candidate]:  # fmt: skip
    """The first stage: the ``n`` voices whose starts are nearest to the take's (Index.near),
    each moved to play it at its key, nearest first (their ``distance`` is the index's).

    Args:
        index: the library's index. take: the recording.
        split, exclude_ids: only voices of this split; never these database ids.
    """
    hits = index.near(take.audio, take.play, list(take.pitches), n, split, exclude_ids)
    out = []
    for hit, voice in zip(hits, index.voices([h.id for h in hits])):
        shift = hit.key - take.play.note
        moved = shift_key(voice, shift)
        if moved is not None:
            out.append(Candidate(moved, hit.id, shift, hit.velocity, hit.distance))
    return out


def rank(evaluator: Evaluator, take: Take, candidates: list[Candidate],
         n: int = 16) -> list[Candidate]:  # fmt: skip
    """The second stage: every candidate rendered exactly like the take (as its play says)
    and the ``n`` nearest by log-mel kept, nearest first (their ``distance`` is this one).
    The evaluator's target is set to the take."""
    if not candidates:
        return []
    evaluator.set_target(take.audio, take.play, not take.level_known)
    values = np.stack([c.voice.values for c in candidates]).astype(np.int64)
    d = evaluator.distances(values)
    order = np.lexsort((np.arange(len(d)), d))[:n]
    return [dataclasses.replace(candidates[i], distance=float(d[i]),
                                velocity=take.play.velocity) for i in order]  # fmt: skip


__all__ = ["SHORTLIST", "Candidate", "rank", "shortlist"]
