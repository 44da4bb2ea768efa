"""Retrieval for recordings (the index's starts, then renders exactly like the recording) and the
key a voice is made to play at, on a library of voices the project writes, with the real
engine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from companion.data import presets
from companion.data.pitch import note_of
from companion.data.render import Play, Renderer
from companion.dx7.sysex import bank_message
from companion.dx7.voice import INIT_VOICE
from companion.evaluation.metrics import spectral_convergence
from companion.evaluation.recordings import RATE, Recording, as_recorded, level_matched, record
from companion.matching.evaluator import Evaluator
from companion.matching.index import Index
from companion.matching.retrieval import rank, shortlist
from companion.matching.take import read_take
from companion.matching.tuning import shift_key

from .conftest import designed_voices

SR = 22050


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("designed")
    voices = designed_voices()
    (root / "carts").mkdir()
    (root / "carts" / "bank.syx").write_bytes(bank_message(voices))
    presets.build(root / "carts", root / "lib.sqlite", progress=False)
    index = Index.open(root / "lib.sqlite")
    by_params = {v.params: vid for vid, v in presets.load(root / "lib.sqlite")}
    return index, [(by_params[v.params], v) for v in voices]


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator(2) as ev:
        yield ev


@pytest.mark.parametrize("seed", range(6))
def test_a_recorded_library_voice_is_found_and_plays_at_the_key_read(library, evaluator,
                                                                    tmp_path, seed):  # fmt: skip
    """A library voice recorded at a random key, velocity, hold and onset (a 44.1 kHz file)
    is retrieval's first voice, and moved so that it plays the recording at the key read from
    its pitch: played there (with the recording's velocity, key-on and key-up) it is the
    recording again."""
    index, voices = library
    rng = np.random.default_rng(seed)
    vid, voice = voices[int(rng.integers(len(voices)))]
    rec = Recording(note=int(rng.integers(36, 85)), velocity=int(rng.integers(50, 121)),
                    hold_s=float(rng.uniform(0.4, 2.0)), onset_s=float(rng.uniform(0, 0.3)),
                    peak_db=-6.0)  # fmt: skip
    sf.write(tmp_path / "take.wav", record(Renderer(), voice, rec), RATE, subtype="PCM_24")
    take = read_take(tmp_path / "take.wav")
    truth = dataclasses.replace(take.play, velocity=rec.velocity, hold_s=rec.hold_s,
                                offset=round(rec.onset_s * SR) - take.start)  # fmt: skip
    take = dataclasses.replace(take, play=truth)  # the play as the recording was made
    found = rank(evaluator, take, shortlist(index, take), n=4)
    assert found[0].id == vid, [(c.id, c.distance) for c in found]
    played = as_recorded(Renderer().play(found[0].voice, take.play))
    assert take.play.note == note_of(take.pitch_hz)
    assert spectral_convergence(take.audio, level_matched(played, take.audio)) < 0.02


def test_second_stage_orders_by_renders(library, evaluator, tmp_path):
    """The second stage re-ranks the first stage's voices by renders exactly like the
    recording: its distances are sorted, and the voice itself is at distance ~0."""
    index, voices = library
    vid, voice = voices[5]
    rec = Recording(note=55, velocity=100, hold_s=1.0, onset_s=0.1, peak_db=-3.0)
    sf.write(tmp_path / "take.wav", record(Renderer(), voice, rec), RATE, subtype="PCM_24")
    take = read_take(tmp_path / "take.wav", velocity=100, hold_s=1.0, onset_s=0.1)
    first = shortlist(index, take, 16)
    second = rank(evaluator, take, first, 16)
    assert sorted(c.id for c in second) == sorted(c.id for c in first)
    assert [c.distance for c in second] == sorted(c.distance for c in second)
    assert second[0].id == vid and second[0].distance < 0.1


@pytest.mark.parametrize("semitones", [-30, -24, -7, 0, 5, 12, 24, 31])
def test_shift_key_plays_at_another_key(semitones):
    """A voice moved by n semitones plays at key k - n what it played at key k: exactly where
    the transpose has room (the engine adds it to the key), by octaves of its ratios beyond
    (the pitch the same, the sound close)."""
    r = Renderer()
    voice = INIT_VOICE.replace(op2_output_level=60, op2_coarse=2, algorithm=0, transpose=24)
    moved = shift_key(voice, semitones)
    key = 60 + semitones
    a = r.play(voice, Play(key, 90, 1.0, 0, SR * 2))
    b = r.play(moved, Play(60, 90, 1.0, 0, SR * 2))
    if abs(semitones) <= 24:
        assert moved["transpose"] == 24 + semitones and np.array_equal(a, b)
    else:
        assert spectral_convergence(a, level_matched(b, a)) < 0.2


def test_shift_key_refuses_what_no_voice_can_play():
    odd = INIT_VOICE.replace(op1_coarse=3, transpose=0)
    assert shift_key(odd, -12) is None  # a ratio of 3 has no half
    assert shift_key(odd, 0) == odd
