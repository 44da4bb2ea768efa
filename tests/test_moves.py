"""The DX7 structure the search works in (companion.matching.moves), checked with the engine."""

from __future__ import annotations

import numpy as np
import pytest

from companion.data.render import Renderer
from companion.dx7.voice import INIT_VOICE, PARAM_MAX, PARAM_NAMES, param_index
from companion.matching.moves import CLASS, NOT_SEARCHED, choices, groups

VOICE = INIT_VOICE.replace(op2_output_level=80, algorithm=0, op1_eg_rate2=40, op1_eg_level2=50,
                           op1_eg_level3=70,
                           op1_eg_rate3=30, op2_eg_rate2=35)  # fmt: skip


@pytest.mark.parametrize("name", ["eg_rate2", "eg_level3", "eg_rate3"])
def test_engine_classes_are_what_the_engine_hears(name):
    """Two values of one class render the same samples (so the search loses nothing by trying
    one of them); many neighbouring classes differ where the envelope is heard (above 50:
    a fast rising segment, or the fastest rates, complete within one engine block anyway)."""
    renderer = Renderer()
    i = param_index(name, 1)
    renders = {v: renderer.render(VOICE.replace(**{f"op1_{name}": v}), 60, 85)
               for v in range(100)}  # fmt: skip
    differ = pairs = 0
    for v in range(99):
        same = np.array_equal(renders[v], renders[v + 1])
        if CLASS[i, v] == CLASS[i, v + 1]:
            assert same, (name, v)
        elif v >= 50:
            differ, pairs = differ + (not same), pairs + 1
    assert differ >= pairs / 3, (differ, pairs)
    expected = {"eg_rate2": 64, "eg_level3": 59, "eg_rate3": 64}[name]
    assert len(choices(i, 50)) == expected


def test_choices_keep_the_current_value_for_its_class():
    i = param_index("eg_rate1", 3)
    for current in range(100):
        vals = choices(i, current)
        assert current in vals and len(set(CLASS[i, vals])) == len(vals) == 64
        assert list(vals) == sorted(vals)
    j = param_index("coarse", 3)
    assert list(choices(j, 5)) == list(range(PARAM_MAX[j] + 1))


def test_groups_follow_dx7_order_and_leave_unheard_parameters():
    values = VOICE.values.astype(np.int64)
    found = dict(groups(values))
    assert list(found) == ["frequencies", "carriers", "modulators", "global"]
    # algorithm 1: op1 and op3 carry; op2 (level 80) modulates op1; the others are silent
    assert param_index("coarse", 2) in found["frequencies"]
    assert param_index("coarse", 4) not in found["frequencies"]  # op4 is silent
    assert param_index("output_level", 4) in found["modulators"]  # only its level may move
    assert param_index("eg_rate1", 1) in found["carriers"]
    assert param_index("eg_rate1", 2) in found["modulators"]
    every = np.concatenate(list(found.values()))
    assert not {PARAM_NAMES[i].split("_", 1)[1] for i in every if PARAM_NAMES[i][:2] == "op"} & (
        NOT_SEARCHED
    )
    for name in ("breakpoint", "left_depth", "rate_scaling", "key_vel_sens"):
        assert param_index(name, 1) not in every
    assert param_index("lfo_speed") not in every  # the LFO is not heard (pmd, amd 0)
    heard = VOICE.replace(lfo_amd=50).values.astype(np.int64)
    assert param_index("lfo_speed") in dict(groups(heard))["global"]
