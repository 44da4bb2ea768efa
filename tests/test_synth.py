import numpy as np
import pytest
from dexed import DexedSynth

from companion.config import NOTE_LAYOUTS, AudioConfig
from companion.data.render import Renderer, render_many
from companion.dx7.voice import INIT_VOICE

from .conftest import FIXTURE_VOICES

CFG = AudioConfig()
# An S&H LFO that is clearly heard: full pitch-mod depth and sensitivity, fast.
SAMPLE_AND_HOLD = INIT_VOICE.replace(
    lfo_wave=5,
    lfo_speed=60,
    lfo_pmd=99,
    pitch_mod_sens=7,
    lfo_amd=60,
    op1_amp_mod_sens=3,
    name="S&H",
)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(CFG)


def test_init_voice_is_a_sine_at_middle_c(renderer):
    audio = renderer.render(INIT_VOICE, 60, 85)
    assert audio.shape == (88200,) and audio.dtype == np.float32
    held = audio[: int(2.5 * 22050)]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    peak = np.argmax(spectrum) * 22050 / len(held)
    assert abs(1200 * np.log2(peak / 261.63)) < 10  # cents
    assert np.abs(audio[int(3.9 * 22050) :]).max() < 1e-3  # released by the end


@pytest.mark.parametrize("voice", FIXTURE_VOICES[:12], ids=lambda v: v.display_name)
def test_render_equals_dexed_py_own_render(renderer, voice):
    synth = DexedSynth(sample_rate=22050)
    synth.load_patch(voice.to_patch())
    theirs = synth.render(midi_note=60, velocity=85, note_duration=3.0, render_duration=4.0)
    assert np.array_equal(renderer.render(voice, 60, 85), theirs)


def test_sample_and_hold_is_deterministic_and_not_square(renderer):
    a = renderer.render(SAMPLE_AND_HOLD)
    b = renderer.render(SAMPLE_AND_HOLD)
    c = Renderer(CFG).render(SAMPLE_AND_HOLD)
    square = renderer.render(SAMPLE_AND_HOLD.replace(lfo_wave=3))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.allclose(a, square, atol=1e-3)


@pytest.mark.parametrize("layout", NOTE_LAYOUTS)
def test_note_layouts(renderer, layout):
    notes = NOTE_LAYOUTS[layout]
    audio = renderer.render_notes(INIT_VOICE, notes)
    assert audio.shape == (len(notes), 88200)
    for row, (note, velocity) in zip(audio, notes):
        assert np.array_equal(row, renderer.render(INIT_VOICE, note, velocity))
    if layout == "six":  # velocity changes the level of a velocity-sensitive voice
        loud = INIT_VOICE.replace(op1_key_vel_sens=7)
        rms = [np.sqrt(np.mean(renderer.render(loud, 60, v) ** 2)) for v in (42, 85, 127)]
        assert rms[0] < rms[1] < rms[2]


def test_pool_equals_one_process():
    voices = FIXTURE_VOICES[:10]
    notes = NOTE_LAYOUTS["six"]
    pooled = render_many(voices, notes, CFG, processes=2, chunk=3, progress=False)
    serial = render_many(voices, notes, CFG, processes=1, chunk=4, progress=False)
    assert pooled.shape == (10, 6, 88200) and np.array_equal(pooled, serial)
