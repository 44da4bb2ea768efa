"""companion program: audio in, a DX7 voice out (with a smoke-scale model)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from companion.data.pitch import estimate_pitch
from companion.data.render import Renderer
from companion.dx7.sysex import parse_syx
from companion.dx7.voice import INIT_VOICE
from companion.matching.program import Programmer, program, retune, voice_name

SR = 22050


@pytest.fixture(scope="module")
def model_dir(smoke_run):
    return smoke_run[1]


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sounds")
    r = Renderer()
    brass = INIT_VOICE.replace(op2_output_level=80, algorithm=0, feedback=5, op2_coarse=1)
    sf.write(folder / "brass.wav", r.render(brass), SR)
    stereo = np.stack([r.render(INIT_VOICE, 64, 100)] * 2, axis=1)
    sf.write(folder / "sine stereo.flac", stereo, SR)
    sf.write(folder / "silent.wav", np.zeros(SR, np.float32), SR)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVE")
    return folder


def test_program_writes_a_voice_per_input(model_dir, sounds, tmp_path):
    inputs = [sounds / "brass.wav", sounds / "silent.wav", sounds / "sine stereo.flac",
              sounds / "broken.wav"]  # fmt: skip
    results = program(inputs, tmp_path, model=model_dir, wav=True, png=True, progress=False)
    ok = {r.input.name: r for r in results if not r.error}
    bad = {r.input.name: r.error for r in results if r.error}
    assert set(ok) == {"brass.wav", "sine stereo.flac"}
    assert "silent" in bad["silent.wav"] and "cannot read audio" in bad["broken.wav"]
    for name, r in ok.items():
        stem = name.rsplit(".", 1)[0]
        data = (tmp_path / f"{stem}.syx").read_bytes()
        assert len(data) == 163
        voices = parse_syx(data).voices
        assert (
            len(voices) == 1
            and voices[0][1] == r.voice
            and r.voice.name == voice_name(stem).ljust(10)
        )
        audio, rate = sf.read(tmp_path / f"{stem}.wav")
        assert rate == SR and len(audio) == 4 * SR
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
        assert r.distance_db <= r.network_distance_db
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}.{e}" for s in ("brass", "sine stereo") for e in ("syx", "wav", "png"))  # fmt: skip


def test_one_candidate_is_the_network_answer(model_dir, sounds, tmp_path):
    (r,) = program([sounds / "brass.wav"], tmp_path, model=model_dir, candidates=1, tune=False,
                   progress=False)  # fmt: skip
    assert r.distance_db == r.network_distance_db and not r.tuned
    prog = Programmer(model_dir, candidates=1)
    audio = sf.read(sounds / "brass.wav", dtype="float32")[0]
    assert prog.propose(prog.spectrogram(audio), "X")[0] == r.voice.replace(name="X")


def test_pitch_and_retuning():
    r = Renderer()
    assert abs(estimate_pitch(r.render(INIT_VOICE), SR) - 261.63) < 1.5
    assert np.isnan(estimate_pitch(np.random.default_rng(0).standard_normal(4 * SR) * 0.1, SR))
    up = retune(INIT_VOICE, 300)
    assert up["transpose"] == 27 and up["op1_fine"] == 0
    f = estimate_pitch(r.render(up), SR)
    assert abs(1200 * np.log2(f / 261.63) - 300) < 5
    for shift in (12.0, -30.0, 45.0):
        f = estimate_pitch(r.render(retune(INIT_VOICE, shift)), SR)
        assert abs(1200 * np.log2(f / 261.63) - shift) < 5, shift
    fixed = INIT_VOICE.replace(op1_osc_mode=1)
    moved = retune(fixed, 40)  # OP1 at a fixed frequency is not touched; OP2..6 are ratios
    assert (moved["op1_fine"], moved["op1_detune"]) == (fixed["op1_fine"], fixed["op1_detune"])
    assert moved["op2_fine"] != fixed["op2_fine"]


def test_command_line(model_dir, sounds, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "companion",
        "program",
        str(sounds / "brass.wav"),
        str(sounds / "silent.wav"),
        "--out-dir",
        str(tmp_path),
        "--model",
        str(model_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "brass.syx" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("companion: error")]
    assert len(errors) == 1 and "silent.wav: audio is silent" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brass.syx"]
    bad = subprocess.run(cmd[:5] + ["--out-dir", str(tmp_path), "--model", str(tmp_path)],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "not a model folder" in bad.stderr


def test_default_model_beats_the_init_voice(sounds, tmp_path):
    """The shipped model's voice sounds closer to the input than the DX7's INIT VOICE does."""
    from companion.data.audio import load_audio

    pluck = INIT_VOICE.replace(
        op1_eg_rate2=60,
        op1_eg_level2=0,
        op1_eg_level3=0,
        op1_eg_rate4=60,
        op2_output_level=85,
        op2_coarse=3,
        op2_eg_rate2=50,
        op2_eg_level3=0,
    )
    sf.write(tmp_path / "pluck.wav", Renderer().render(pluck), SR)
    (r,) = program([tmp_path / "pluck.wav"], tmp_path / "out", progress=False)  # the default model
    prog = Programmer(None, candidates=1)
    target = prog.spectrogram(load_audio(tmp_path / "pluck.wav", prog.cfg))
    init = prog.spectrogram(Renderer(prog.cfg).render(INIT_VOICE))
    assert r.distance_db < float((init - target).abs().mean())


def test_library_voices_join_the_candidates(model_dir, tmp_path):
    """A voice of a (32-voice) library, played as the input, is found again through it."""
    from companion.data import presets
    from companion.dx7.sysex import bank_message

    from .conftest import FIXTURE_VOICES

    (tmp_path / "carts").mkdir()
    (tmp_path / "carts" / "bank.syx").write_bytes(bank_message(FIXTURE_VOICES[:32]))
    presets.build(tmp_path / "carts", tmp_path / "lib.sqlite", progress=False)
    voice = FIXTURE_VOICES[7]
    sf.write(tmp_path / "lib.wav", Renderer().render(voice), SR)
    for library in (tmp_path / "lib.sqlite", tmp_path / "carts"):
        (r,) = program([tmp_path / "lib.wav"], tmp_path / "out", model=model_dir, tune=False,
                       library=library, progress=False)  # fmt: skip
        assert r.distance_db == 0 and r.voice.params == voice.params
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DX7 voices"):
        Programmer(model_dir, library=tmp_path / "empty")
