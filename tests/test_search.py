"""Refinement with the real Dexed engine in the loop (companion.matching.search) and its loss."""

from __future__ import annotations

import numpy as np
import pytest

from companion.data.render import Renderer
from companion.dx7.voice import INIT_VOICE, Voice
from companion.evaluation.metrics import spectral_convergence
from companion.matching.loss import Target
from companion.matching.search import Evaluator, refine


def programmed_voice() -> Voice:
    """A voice as a DX7 programmer makes one: algorithm 5 (three modulator -> carrier pairs),
    a bright attack on the 1:1 pair, a 2:1 pair an octave up, a quiet fixed-ratio third pair."""
    params = {"algorithm": 4, "feedback": 5, "transpose": 24}
    ops = {1: (99, 1, 0), 2: (78, 1, 0), 3: (80, 2, 0), 4: (70, 3, 50), 5: (60, 1, 0),
           6: (55, 4, 0)}  # fmt: skip
    for op, (level, coarse, fine) in ops.items():
        params |= {f"op{op}_output_level": level, f"op{op}_coarse": coarse, f"op{op}_fine": fine,
                   f"op{op}_eg_rate1": 90, f"op{op}_eg_rate2": 40 + 5 * op,
                   f"op{op}_eg_rate3": 30, f"op{op}_eg_rate4": 60,
                   f"op{op}_eg_level1": 99, f"op{op}_eg_level2": 85,
                   f"op{op}_eg_level3": 70 if op % 2 else 50, f"op{op}_eg_level4": 0}  # fmt: skip
    return INIT_VOICE.replace(name="PROGRAMMED", **params)


VOICE = programmed_voice()
# five parameters moved as a user's slip would move them: a ratio, a level, an envelope rate,
# the feedback and a fine frequency
PERTURBED = VOICE.replace(op2_coarse=2, op3_output_level=65, op1_eg_rate2=25, feedback=2,
                          op4_fine=62)  # fmt: skip


@pytest.fixture(scope="module")
def target() -> np.ndarray:
    return Renderer().render(VOICE, 60, 85)


def test_loss_is_zero_on_the_target_and_rowwise(target):
    other = Renderer().render(PERTURBED, 60, 85)
    t = Target(target)
    both = t.loss(np.stack([target, other]))
    assert both.dtype == np.float32 and both.shape == (2,)
    assert both[0] == pytest.approx(0.0, abs=1e-6) and both[1] > 0.1
    # a candidate's loss does not depend on the rest of its batch
    assert t.loss(other[None])[0] == both[1]
    terms = t.terms(other[None])
    assert {"sc_1024", "sc_2048", "log_1024", "log_2048", "mel"} <= set(terms)
    # the spectral-convergence term at the paper's window agrees with the metric (hop differs)
    assert terms["sc_1024"][0] == pytest.approx(spectral_convergence(target, other), rel=0.1)


def test_loss_rejects_silent_and_misshapen_targets(target):
    with pytest.raises(ValueError, match="silent"):
        Target(np.zeros_like(target))
    with pytest.raises(ValueError, match="one channel"):
        Target(np.stack([target, target]))
    with pytest.raises(ValueError, match="candidates must be"):
        Target(target).loss(target[None, :1000])


@pytest.mark.xfail(
    strict=True,
    reason="not reached yet: the greedy search drifts into compensating moves (measured "
    "SC 2.18 -> 0.28..0.42 in 700 evals, 0.41 -> 0.13 for a milder perturbation)",
)
def test_refine_recovers_a_perturbed_voice(target):
    start_sc = spectral_convergence(target, Renderer().render(PERTURBED, 60, 85))
    assert start_sc > 0.3  # the perturbation is heard
    result = refine(target, [PERTURBED], max_evals=700)
    sc = spectral_convergence(target, Renderer().render(result.voice, 60, 85))
    assert sc < 0.05, f"spectral convergence {start_sc:.3f} -> {sc:.3f} in {result.evals} evals"
    assert result.evals <= 700


def test_same_result_with_one_and_two_workers(target):
    starts = [PERTURBED, PERTURBED.replace(op1_output_level=90), INIT_VOICE]
    results = []
    for processes in (1, 2):
        with Evaluator(processes) as ev:
            results.append(refine(target, starts, max_evals=90, evaluator=ev, n_starts=2))
    a, b = results
    assert a.voice.params == b.voice.params
    assert a.loss == b.loss and a.evals == b.evals and a.history == b.history


def test_refine_never_returns_worse_than_its_best_start(target):
    starts = [INIT_VOICE, PERTURBED.replace(op1_coarse=5), PERTURBED]
    renders = np.stack([Renderer().render(v, 60, 85) for v in starts])
    best_start = float(Target(target).loss(renders).min())
    result = refine(target, starts, max_evals=60, n_starts=2)
    losses = [loss for _, loss in result.history]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # the best loss never rises
    assert result.loss <= best_start and losses[0] == pytest.approx(best_start)
    assert float(Target(target).loss(Renderer().render(result.voice, 60, 85)[None])[0]) == (
        pytest.approx(result.loss)
    )
    with pytest.raises(ValueError, match="at least one start"):
        refine(target, [], max_evals=10)
