import numpy as np
import pytest

from companion.dx7.voice import (
    INIT_VOICE,
    N_PARAMS,
    PARAM_MAX,
    PARAM_NAMES,
    PARAM_OPERATOR,
    Voice,
    out_of_range,
    param_index,
)


def test_layout_is_the_dx7_single_voice_order():
    assert len(PARAM_NAMES) == N_PARAMS == 145 and len(set(PARAM_NAMES)) == 145
    # VCED byte numbers from the DX7 manual: OP6 block first, OP1 at 105..125.
    assert PARAM_NAMES[0] == "op6_eg_rate1" and PARAM_NAMES[20] == "op6_detune"
    assert param_index("eg_rate1", op=1) == 105 and param_index("detune", op=1) == 125
    assert param_index("output_level", op=1) == 121
    assert param_index("algorithm") == 134 and param_index("transpose") == 144
    assert PARAM_MAX[param_index("algorithm")] == 31 and PARAM_MAX[param_index("detune", 3)] == 14
    assert PARAM_MAX[param_index("lfo_wave")] == 5 and PARAM_MAX[param_index("transpose")] == 48
    assert [PARAM_OPERATOR[i * 21] for i in range(6)] == [6, 5, 4, 3, 2, 1]


def test_init_voice_is_the_dx7_init_voice():
    v = INIT_VOICE
    assert v.name == "INIT VOICE" and v["algorithm"] == 0 and v["transpose"] == 24
    assert v["op1_output_level"] == 99 and all(v[f"op{k}_output_level"] == 0 for k in range(2, 7))
    assert v["op1_detune"] == 7 and v["op1_coarse"] == 1 and v["pitch_eg_level1"] == 50


def test_out_of_range_names_parameter_and_value():
    values = INIT_VOICE.values.astype(int)
    values[param_index("detune", 2)] = 15
    values[param_index("lfo_wave")] = 6
    problems = out_of_range(values)
    assert [str(p) for p in problems] == ["op2_detune=15 (max 14)", "lfo_wave=6 (max 5)"]
    with pytest.raises(ValueError, match="op2_detune=15"):
        Voice.from_values(values)


def test_voice_checks_length_and_name():
    with pytest.raises(ValueError, match="145 parameters"):
        Voice(bytes(144))
    assert Voice(INIT_VOICE.params, "ABC").name == "ABC       "
    with pytest.raises(ValueError, match="7-bit"):
        Voice(INIT_VOICE.params, "CAFÉ")


def test_replace_and_engine_bytes():
    v = INIT_VOICE.replace(op1_coarse=2, name="TWO")
    assert v["op1_coarse"] == 2 and v.display_name == "TWO"
    assert len(v.vced()) == 155 and v.engine_bytes()[-1] == 0x3F
    assert np.array_equal(v.values[:-1], INIT_VOICE.replace(op1_coarse=2).values[:-1])
