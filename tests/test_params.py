import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from companion.dx7.params import (
    ENCODINGS,
    LEARNABLE,
    PARAMS,
    TRANSPOSE,
    audible_operators,
    representation,
)
from companion.dx7.voice import INIT_VOICE, PARAM_MAX, Voice, out_of_range, param_index

from .conftest import FIXTURE_VOICES

SIZES = {"numonly": 144, "numcat": 224, "numcat++": 610}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_sizes_and_groups(encoding):
    rep = representation(encoding)
    assert len(PARAMS) == len(LEARNABLE) == 144 and TRANSPOSE not in LEARNABLE
    assert rep.size == SIZES[encoding] == sum(c.width for c in rep.columns)
    groups = {c.param.name: c.width for c in rep.categorical}
    if encoding == "numonly":
        assert groups == {}
    else:
        assert groups["algorithm"] == 32 and groups["lfo_wave"] == 6 and groups["op3_osc_mode"] == 2
        assert groups["op1_left_curve"] == 4
    if encoding == "numcat++":
        assert groups["op2_coarse"] == 32 and groups["op2_detune"] == 15
        assert groups["feedback"] == 8 and groups["op6_amp_mod_sens"] == 4
        assert "op1_fine" not in groups and "op1_output_level" not in groups


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_is_exact_on_fixture_voices(encoding):
    rep = representation(encoding)
    values = np.stack([v.values for v in FIXTURE_VOICES]).astype(np.int64)
    encoded = rep.encode(values)
    assert encoded.dtype == np.float32 and encoded.shape == (len(values), rep.size)
    assert encoded.min() >= 0.0 and encoded.max() <= 1.0
    assert np.array_equal(rep.decode(encoded, transpose=values[:, TRANSPOSE]), values)
    assert np.array_equal(rep.decode(encoded[0], transpose=values[0, TRANSPOSE]), values[0])
    assert (
        rep.decode_voice(encoded[1], name="X", transpose=int(values[1, TRANSPOSE])).params
        == FIXTURE_VOICES[1].params
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_any_vector_decodes_to_a_valid_voice(encoding, data):
    rep = representation(encoding)
    vec = data.draw(arrays(np.float32, rep.size, elements=st.floats(-3, 3, width=32)))
    values = rep.decode(vec)
    assert out_of_range(values) == [] and values[TRANSPOSE] == 24
    Voice.from_values(values)


def test_decode_rounds_to_nearest_step():
    rep = representation("numonly")
    vec = rep.encode(INIT_VOICE.values)
    col = next(c for c in rep.columns if c.param.name == "op1_fine").start
    vec[col] = 50.4 / 99
    assert rep.decode(vec)[param_index("fine", 1)] == 50
    vec[col] = 50.6 / 99
    assert rep.decode(vec)[param_index("fine", 1)] == 51


def test_metadata():
    by_name = {p.name: p for p in PARAMS}
    assert by_name["op3_breakpoint"].key_dependent and by_name["op3_rate_scaling"].key_dependent
    assert by_name["op1_key_vel_sens"].velocity_dependent
    assert not by_name["op1_coarse"].key_dependent and not by_name["algorithm"].velocity_dependent
    assert by_name["op4_coarse"].operator == 4 and by_name["algorithm"].operator is None
    assert by_name["op4_coarse"].cardinality == 32 and by_name["lfo_wave"].cardinality == 6
    assert by_name["op4_coarse"].is_categorical("numcat++")
    assert not by_name["op4_coarse"].is_categorical("numcat")
    assert all(p.cardinality == PARAM_MAX[p.index] + 1 for p in PARAMS)
    rep = representation("numcat")
    kv = rep.column_indices(lambda p: p.key_dependent or p.velocity_dependent)
    assert len(kv) == 6 * (3 + 4 + 4 + 1 + 1)  # bp, depths, curves (one-hot), rs, kvs


def test_audible_operators():
    assert audible_operators(INIT_VOICE.values).tolist() == [True] + [False] * 5
    # Algorithm 32 (index 31): six carriers; OP4 at level 0 cannot be heard.
    v = INIT_VOICE.replace(algorithm=31, **{f"op{k}_output_level": 80 for k in range(1, 7)})
    assert audible_operators(v.replace(op4_output_level=0).values).tolist() == [
        True,
        True,
        True,
        False,
        True,
        True,
    ]
    # Algorithm 1: OP6 -> OP5 -> OP4 -> OP3 (carrier); silencing OP4 mutes OP5 and OP6 too.
    v = INIT_VOICE.replace(algorithm=0, **{f"op{k}_output_level": 80 for k in range(1, 7)})
    assert audible_operators(v.values).all()
    assert audible_operators(v.replace(op4_output_level=0).values).tolist() == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_loss_mask_hides_inaudible_operators_but_their_level(encoding):
    rep = representation(encoding)
    mask = rep.loss_mask(INIT_VOICE.values[None])[0]
    for c in rep.columns:
        op = c.param.operator
        expected = op in (None, 1) or c.param.name.endswith("output_level")
        assert mask[c.slice].all() == expected, c.param.name
