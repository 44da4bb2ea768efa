"""The prepared GPU job (scripts/device/) at smoke scale on the CPU, on fixture cartridges: what
it leaves in $OUT fits what comes back from the device, and unpacks into model folders whose
inference weights program a voice.

One run of ``--job table`` with two rows (one note and six notes) goes through every stage of
both jobs: install check, presets, both datasets, the probe, concurrent training resumed to the
planned epochs, export, evaluation; ``--job paper`` is the same code with one row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from companion.config import Config
from companion.data.audio import MelSpectrogram
from companion.data.render import Renderer
from companion.dx7.voice import Voice
from companion.models.vae import SpectralVAE, load_model
from companion.models.weights import load_weights, read_meta

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "device"))
import unpack  # noqa: E402

MIB = 2**20
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@pytest.fixture(scope="module")
def out(cartridges, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("device-job")
    cmd = [sys.executable, str(REPO / "scripts/device/job.py"), "--job", "table", "--smoke",
           "--rows", "numcatpp", "numcatpp-six", "--cartridges", str(cartridges[0]),
           "--work", str(root / "work"), "--out", str(root / "out"), "--processes", "2",
           "--test-voices", "8", "--check-voices", "8", "--probe-s", "0.5"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root / "out"


def test_out_fits_what_comes_back_from_the_device(out):
    files = list(out.iterdir())
    assert all(f.is_file() and set(f.name) <= NAME_CHARS for f in files)
    assert len(files) <= 8
    assert all(f.stat().st_size < 16 * MIB for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * MIB
    job = json.loads((out / "job.json").read_text())
    assert {f.name for f in files} == {"job.json", "job.log", "table_main.md", "eval.tar.gz",
                                       *job["archive"]["parts"]}  # fmt: skip
    assert list(job["stages"]) == ["install", "presets", "datasets", "probe", "train", "export",
                                   "evaluate"]  # fmt: skip
    probe = job["probe"]
    assert set(probe["2 processes"]["per_process"]) == {"numcatpp", "numcatpp-six"}
    assert probe["chosen"] == (
        "concurrent"
        if probe["2 processes"]["samples_per_s"] >= 1.1 * probe["one process"]["samples_per_s"]
        else "one after another"
    )
    for row in ("numcatpp", "numcatpp-six"):  # 1 timed epoch, then resumed to the plan's 2
        facts = job["rows"][row]
        assert facts["epochs"] == 2 and facts["first_epoch_samples_per_s"] > 0
        assert facts["fp16_check"]["voices"] == 8
        assert job["archive"]["precision"][row] in ("fp16", "fp32")
    table = (out / "table_main.md").read_text()
    assert "| NumCat++ |" in table and "| NumCat++, six notes |" in table
    log = (out / "job.log").read_text()
    assert "samples/s in all" in log and "fp16 weights decode" in log and "training the rows" in log


def spectrogram_of(voice: Voice, cfg: Config, stats: dict) -> torch.Tensor:
    """(1, 1, H, W) normalised spectrogram of a voice at (60, 85), as the model takes it."""
    audio = Renderer(cfg.audio).render(voice)
    with torch.no_grad():
        db = MelSpectrogram(cfg.audio)(torch.from_numpy(audio))
    return ((db - stats["mean_db"]) / stats["std_db"])[None, None].float()


def test_unpacked_weights_program_a_voice(out, tmp_path, fixture_voices):
    rows = unpack.unpack(out, tmp_path / "rows")
    assert sorted(p.name for p in rows) == ["numcatpp", "numcatpp-six"]
    assert read_meta(tmp_path / "rows" / "numcatpp-six")["notes"] == 6
    folder = tmp_path / "numcatpp"
    assert unpack.unpack(out, folder, row="numcatpp") == [folder]
    meta = read_meta(folder)  # model.yaml names the digest of the weights written beside it
    assert meta["inference_only"] and meta["device_run"]["epochs"] == 2
    job = json.loads((out / "job.json").read_text())
    assert meta["precision"] == job["archive"]["precision"]["numcatpp"]
    state = load_weights(folder)
    assert state and not any(k.startswith("decoder.") for k in state)
    cfg = Config.from_dict(meta["config"])
    model = SpectralVAE(cfg, meta["encoding"], meta["notes"], meta["regression"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and missing and all(k.startswith("decoder.") for k in missing)
    model.eval()
    x = spectrogram_of(fixture_voices[5], cfg, meta["stats"])
    values = model.rep.decode(model.infer(x).numpy())[0]
    voice = Voice.from_values(np.asarray(values, np.int64), "GPU")  # a valid DX7 voice
    assert np.isfinite(Renderer(cfg.audio).render(voice)).all()
    assert (folder / "device-run" / "table_main_voices.csv").exists()


def test_unpack_refuses_a_changed_archive(out, tmp_path):
    changed = tmp_path / "out"
    changed.mkdir()
    for f in out.iterdir():
        data = f.read_bytes()
        if f.name == "models.tar.000":
            data = data[:-1] + bytes([data[-1] ^ 1])
        (changed / f.name).write_bytes(data)
    with pytest.raises(ValueError, match="differ from what the job wrote"):
        unpack.unpack(changed, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ValueError, match="no weights of row 'numonly'"):
        unpack.unpack(out, tmp_path / "model", row="numonly")


def test_load_model_programs_with_unpacked_weights(out, tmp_path, fixture_voices):
    from companion.matching.program import Programmer

    folder = tmp_path / "numcatpp"
    unpack.unpack(out, folder, row="numcatpp")
    model, _ = load_model(folder)
    assert model.decoder is None  # inference only: the decoder did not travel
    audio = Renderer(model.cfg.audio).render(fixture_voices[5])
    result = Programmer(folder, candidates=1, jobs=1).run_audio(audio, Path("gpu.wav"))
    assert result.voice.values.shape == (145,)
