"""``program --variants N``: a bank of distinct answers, from every voice the search evaluated.

The search spends most of its evaluations near its best, so the best few voices it met are
often one sound: the VARIANT_POOL * N best are considered, best first, and a voice joins when
its render's log-mel (companion.matching.logmel.EMBEDDING) is at least DISTINCT_DB (RMS, dB)
from every one already chosen (among the 8 N best, a recording once had 1 distinct voice).
"""

from __future__ import annotations

import numpy as np

from companion.data.render import Play, Renderer
from companion.dx7.voice import Voice
from companion.matching.evaluator import Evaluator
from companion.matching.logmel import EMBEDDING

VARIANT_POOL = 64
DISTINCT_DB = 1.0
MAX_VARIANTS = 32  # a DX7 bank holds 32 voices


def variants(evaluator: Evaluator, renderer: Renderer, play: Play, n: int,
             name: str) -> list[Voice]:  # fmt: skip
    """Up to ``n`` distinct voices among those ``evaluator`` met for its current target, best
    first, named ``NAME     1``, ``NAME     2``... (7 characters of ``name`` and a number)."""
    ranked = sorted(evaluator.cache.items(), key=lambda kv: kv[1])
    chosen, feats = [], []
    for key, _ in ranked[: VARIANT_POOL * n]:
        voice = Voice(key)
        f = EMBEDDING(renderer.play(voice, play)[play.offset :])
        if all(np.sqrt(np.mean((f - g) ** 2)) * 10 >= DISTINCT_DB for g in feats):
            chosen.append(voice)
            feats.append(f)
            if len(chosen) == n:
                break
    return [Voice.from_values(v.values, f"{name[:7]:<7}{k + 1:>3}"[:10])
            for k, v in enumerate(chosen)]  # fmt: skip


__all__ = ["MAX_VARIANTS", "variants"]
