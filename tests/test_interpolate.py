"""Paths between voices, new voices from the latent prior, and their measures (smoke scale)."""

import numpy as np
import pytest

from companion.data.dataset import open_dataset
from companion.data.render import Renderer
from companion.dx7.params import TRANSPOSE
from companion.dx7.sysex import bank_message, parse_syx, read_voices, single_voice_message
from companion.dx7.voice import INIT_VOICE, out_of_range, param_index
from companion.evaluation import latent
from companion.latent.interpolate import Latent, generate_bank, naive_path

from .conftest import FIXTURE_VOICES
from .test_cli import run


def test_naive_path_ends_and_validity():
    a, b = FIXTURE_VOICES[0], FIXTURE_VOICES[1]
    path = naive_path(a, b, 7)
    assert path.shape == (7, 145)
    assert np.array_equal(path[0], a.values) and np.array_equal(path[-1], b.values)
    assert all(not out_of_range(v) for v in path)
    algorithm = param_index("algorithm")  # categorical: a's before half-way, b's after
    assert list(path[:3, algorithm]) == [a.values[algorithm]] * 3
    assert list(path[4:, algorithm]) == [b.values[algorithm]] * 3


def test_latent_path_and_generate(smoke_run):
    _, run_dir = smoke_run
    latent = Latent(run_dir)
    a, b = FIXTURE_VOICES[2], FIXTURE_VOICES[3].replace(transpose=30)
    path = latent.path(a, b, 5)
    assert path.shape == (5, 145) and all(not out_of_range(v) for v in path)
    assert path[0, TRANSPOSE] == a.values[TRANSPOSE] and path[-1, TRANSPOSE] == 30
    bank = generate_bank(32, run_dir, seed=3)
    assert [v.display_name for v in bank[:2]] == ["GEN 001", "GEN 002"]
    # the bank as a DX7 reads it: 32 voices, none refused, each as generated
    parsed = parse_syx(bank_message(bank))
    assert not parsed.skipped and [v.params for _, v in parsed.voices] == [v.params for v in bank]
    assert [v.display_name for _, v in parsed.voices] == [v.display_name for v in bank]
    # new voices, not one voice 32 times: a collapsed decoder gives few distinct voices
    assert len({v.params for v in bank}) >= 16
    again = generate_bank(32, run_dir, seed=3)
    assert [v.params for v in bank] == [v.params for v in again]
    assert [v.params for v in bank] != [v.params for v in generate_bank(32, run_dir, seed=4)]


def test_cli_interpolate_generate(smoke_run, tmp_path):
    _, run_dir = smoke_run
    a, b = tmp_path / "a.syx", tmp_path / "b.syx"
    a.write_bytes(single_voice_message(FIXTURE_VOICES[4]))
    b.write_bytes(single_voice_message(FIXTURE_VOICES[5]))
    out = run("interpolate", a, b, "--out-dir", tmp_path / "lat", "--model", run_dir, "--wav")
    assert "latent path" in out.stdout
    steps = [read_voices(tmp_path / "lat" / f"step{i}.syx")[0] for i in range(1, 8)]
    assert len(steps) == 7 and (tmp_path / "lat" / "step7.wav").exists()
    bank = read_voices(tmp_path / "lat" / "path.syx")
    assert [v.params for v in bank[:7]] == [v.params for v in steps]
    run("interpolate", a, b, "--out-dir", tmp_path / "naive", "--naive", "--steps", "3")
    ends = [read_voices(tmp_path / "naive" / f"step{i}.syx")[0] for i in (1, 3)]
    assert ends[0].params == FIXTURE_VOICES[4].params and ends[1].params == FIXTURE_VOICES[5].params
    run("generate", "-o", tmp_path / "gen.syx", "--model", run_dir, "--seed", "1")
    parsed = parse_syx((tmp_path / "gen.syx").read_bytes())
    assert len(parsed.voices) == 32 and not parsed.skipped
    bad = run("interpolate", a, b, "--out-dir", tmp_path / "x", "--steps", "1", check=False)
    assert bad.returncode == 1 and "--steps must be at least 2" in bad.stderr


def test_path_scores():
    line = np.linspace(0, 1, 7)[:, None] * np.ones((1, 4))
    assert latent.path_scores(line) == pytest.approx((0.0, 0.0), abs=1e-12)
    bump = line.copy()
    bump[3] += 1.0
    smooth, nonlinear = latent.path_scores(bump)
    assert smooth > 0 and nonlinear == pytest.approx(2.0 / 5)  # |bump| = 2, on 1 of 5 steps


def test_latent_eval_tables(smoke_run, tmp_path):
    data, run_dir = smoke_run
    interp = latent.interpolation(run_dir, str(data), pairs=3, steps=5, progress=False)
    assert interp["scores"]["latent"].shape == (3, 2)
    gen = latent.generation(run_dir, str(data), n=8)
    # Every decoded voice is valid by construction (decoding clamps to the ranges), so what
    # can be wrong is measured: distinct voices (a collapsed decoder repeats one), and the
    # counts; the measures themselves are checked in test_voice_scores.
    assert gen["latent prior"]["distinct"] >= 0.5
    assert {s["voices"] for s in gen.values()} == {8}
    latent.write_tables(interp, gen, "Smoke.", tmp_path)
    assert "| latent |" in (tmp_path / "table_interpolation.md").read_text()
    assert "| random valid voices |" in (tmp_path / "table_generate.md").read_text()
    assert (tmp_path / "interpolation.png").stat().st_size > 1000


def test_voice_scores(smoke_run):
    """Each measure of the generate table on voices whose answer is known."""
    data, _ = smoke_run
    info = open_dataset(data)
    train = np.load(info.path / "train.voices.npy").astype(np.int64)
    renderer = Renderer(info.audio)
    init, silent = INIT_VOICE.values, FIXTURE_VOICES[1].values  # ALL MIN: output levels 0
    s = latent.voice_scores(np.stack([init, init, silent]), train, renderer)
    assert s["voices"] == 3
    assert s["distinct"] == pytest.approx(2 / 3) and s["audible"] == pytest.approx(2 / 3)
    assert latent.voice_scores(train[:3], train, renderer)["novelty"] == 0.0
    far = latent.voice_scores(latent.random_voices(8, seed=5), train, renderer)["novelty"]
    assert 0.05 < far < 1.0  # mean |difference| / range to the nearest train voice
