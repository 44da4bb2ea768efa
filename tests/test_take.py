"""A recording read as a note: onset, end, key-up, key and level, on sounds whose values are
known (voices the project writes, played by the engine the way a user records them)."""

import numpy as np
import pytest
import soundfile as sf

from companion.data.audio import AudioError
from companion.data.render import Play, Renderer
from companion.dx7.voice import INIT_VOICE
from companion.evaluation.recordings import RATE, Recording, record
from companion.matching.take import MAX_S, PRE_S, read_take

SR = 22050
# a held tone with a fast attack and a fast release: its key-up is plain in its envelope
ORGAN = INIT_VOICE.replace(op1_eg_rate1=99, op1_eg_rate4=70, op1_eg_level3=99)
# a pluck: it decays while the key is held
PLUCK = INIT_VOICE.replace(op1_eg_rate1=99, op1_eg_rate2=60, op1_eg_level2=0, op1_eg_level3=0,
                           op1_eg_rate4=60, op2_output_level=70, op2_coarse=3)  # fmt: skip


def write(tmp_path, voice, rec: Recording, name="take.wav", noise_db=None) -> str:
    audio = record(Renderer(), voice, rec)
    if noise_db is not None:
        rng = np.random.default_rng(0)
        noise = 10 ** (noise_db / 20) * rng.standard_normal(audio.shape)
        audio = audio + noise.astype(np.float32)
    path = tmp_path / name
    sf.write(path, audio, RATE, subtype="PCM_24")
    return path


@pytest.mark.parametrize("onset", [0.0, 0.12, 0.3])
@pytest.mark.parametrize("hold", [0.4, 1.3, 2.5])
def test_onset_and_key_up_of_a_held_tone(tmp_path, onset, hold):
    rec = Recording(note=57, velocity=100, hold_s=hold, onset_s=onset, peak_db=-6.0)
    take = read_take(write(tmp_path, ORGAN, rec))
    assert take.onset_s == pytest.approx(onset, abs=0.005)
    assert take.play.hold_s == pytest.approx(hold, abs=0.06)
    assert {"note", "hold"} <= set(take.estimated)
    # what is matched starts PRE_S before the onset (less where the file starts sooner) and
    # candidates are played with the same silence before their key-on
    assert take.play.offset == round(min(take.onset_s, PRE_S) * SR)
    assert take.play.length == len(take.audio)


def test_onset_above_a_noise_floor(tmp_path):
    rec = Recording(note=60, velocity=90, hold_s=1.0, onset_s=0.2, peak_db=-3.0)
    take = read_take(write(tmp_path, ORGAN, rec, noise_db=-70))
    assert take.onset_s == pytest.approx(0.2, abs=0.005)


@pytest.mark.parametrize("note", [36, 48, 60, 72, 84])
def test_key_from_the_pitch(tmp_path, note):
    """INIT VOICE sounds at its key: the key is found wherever it is played."""
    rec = Recording(note=note, velocity=85, hold_s=1.0, onset_s=0.05, peak_db=-6.0)
    take = read_take(write(tmp_path, ORGAN, rec))
    assert take.play.note == note
    assert 1200 * abs(np.log2(take.pitch_hz / (440 * 2 ** ((note - 69) / 12)))) < 10
    assert "note" in take.estimated and f"plays at key {note} (" in take.describe()


def test_given_values_are_kept(tmp_path):
    rec = Recording(note=50, velocity=85, hold_s=1.0, onset_s=0.1, peak_db=-6.0)
    take = read_take(write(tmp_path, ORGAN, rec), note=62, velocity=30, hold_s=0.7,
                     onset_s=0.12)  # fmt: skip
    assert (take.play.note, take.play.velocity, take.play.hold_s) == (62, 30, 0.7)
    assert take.key_on_s == pytest.approx(0.12, abs=1 / SR)
    assert take.estimated == ()
    assert "estimated" not in take.describe()
    assert "plays at key 62 (D4, as given; sounds 147 Hz)" in take.describe()


def test_level_is_measured_not_matched(tmp_path):
    """Two recordings 20 dB apart read as the same note at levels 20 dB apart."""
    takes = []
    for peak in (-3.0, -23.0):
        rec = Recording(note=60, velocity=85, hold_s=1.0, onset_s=0.1, peak_db=peak)
        takes.append(read_take(write(tmp_path, ORGAN, rec, name=f"{peak}.wav")))
    a, b = takes
    assert a.level_db - b.level_db == pytest.approx(20.0, abs=0.2)
    assert (a.onset_s, a.play.hold_s, a.play.note) == pytest.approx(
        (b.onset_s, b.play.hold_s, b.play.note), abs=0.02)  # fmt: skip


def test_a_pluck_ends_where_its_sound_does(tmp_path):
    """A pluck that dies while the key is held is matched up to its end (and a little
    silence after it), not to the end of the file."""
    rec = Recording(note=60, velocity=85, hold_s=2.5, onset_s=0.0, peak_db=-6.0)
    path = write(tmp_path, PLUCK, rec)
    take = read_take(path)
    renders = Renderer().play(PLUCK, rec.play(SR))
    sounding = np.flatnonzero(np.abs(renders) > 1e-3 * np.abs(renders).max())[-1] / SR
    assert take.play.length / SR <= sounding + 0.7
    assert take.play.length / SR >= sounding - 0.3


def test_the_first_note_of_several_and_the_cap(tmp_path):
    r = Renderer()
    note = r.play(ORGAN, Play(60, 85, 0.5, 0, round(1.2 * SR)))
    two = np.concatenate([note, note])  # a second attack 1.2 s after the first
    sf.write(tmp_path / "two.wav", two, SR)
    take = read_take(tmp_path / "two.wav")
    assert take.cut and take.play.length / SR == pytest.approx(1.2, abs=0.1)
    assert "first" in take.describe()
    long = r.play(ORGAN, Play(60, 85, 20.0, 0, 20 * SR))
    sf.write(tmp_path / "pad.wav", long, SR)
    take = read_take(tmp_path / "pad.wav")
    assert take.cut and take.play.length / SR == pytest.approx(MAX_S, abs=0.05)
    assert f"first {MAX_S:.1f} s of 20.0 s" in take.describe()


def test_tremolo_is_not_a_second_note(tmp_path):
    """An LFO gating the sound (dips of tens of ms) is one note, not many."""
    gated = INIT_VOICE.replace(lfo_amd=99, lfo_speed=60, lfo_wave=3, op1_amp_mod_sens=3,
                               op1_eg_rate4=70)  # fmt: skip
    rec = Recording(note=60, velocity=85, hold_s=2.0, onset_s=0.0, peak_db=-6.0)
    take = read_take(write(tmp_path, gated, rec))
    assert not take.cut and take.play.length / SR > 2.0


def test_too_short_or_silent(tmp_path):
    sf.write(tmp_path / "click.wav", np.r_[np.ones(20), np.zeros(2000)].astype(np.float32), SR)
    with pytest.raises(AudioError, match="click.wav: too short"):
        read_take(tmp_path / "click.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(AudioError, match="silent.wav: audio is silent"):
        read_take(tmp_path / "silent.wav")


# voices whose note sounds at their key, an octave below it (transpose C2), an octave and two
# above it (ratio 2, transpose C4), and a fifth above an octave (ratio 3)
SOUNDING = [(ORGAN, 0), (ORGAN.replace(transpose=12), -12),
            (ORGAN.replace(op1_coarse=2, transpose=36), 24), (ORGAN.replace(op1_coarse=3), 19)]


@pytest.mark.parametrize("voice,offset", SOUNDING)
def test_the_key_read_is_the_note_heard(tmp_path, voice, offset):
    """Whatever key a voice was played at, the key read is the note that sounds (the one a
    musician presses to play it), from MIDI 30 to 100."""
    for note in range(30, 101 - max(offset, 0), 9):
        if note + offset < 24:
            continue
        rec = Recording(note=note, velocity=90, hold_s=0.8, onset_s=0.1, peak_db=-6.0)
        take = read_take(write(tmp_path, voice, rec))
        assert take.play.note == note + offset, (note, offset, take.pitch_hz)


def test_an_onset_beyond_the_sound_is_refused(tmp_path):
    rec = Recording(note=60, velocity=90, hold_s=0.5, onset_s=0.1, peak_db=-6.0)
    path = write(tmp_path, ORGAN, rec)
    with pytest.raises(AudioError, match="no sound after the onset given"):
        read_take(path, onset_s=30.0)
