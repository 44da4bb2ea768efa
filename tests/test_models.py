"""Models and training at smoke scale, on the CPU."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from companion.config import get_config
from companion.data import dataset
from companion.dx7.params import ENCODINGS, representation
from companion.models.flows import RealNVP
from companion.models.vae import SpectralVAE, load_model, load_weights, save_weights
from companion.training import train

SMOKE = get_config("smoke")


@pytest.fixture(scope="module")
def smoke_data(fixture_db, tmp_path_factory):
    out = {}
    for notes in ("single", "six"):
        path = tmp_path_factory.mktemp(f"train-{notes}")
        dataset.build(
            fixture_db, "smoke", path, notes=notes, limit=120, processes=1, progress=False
        )
        out[notes] = path
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("notes", [1, 6])
@pytest.mark.parametrize("regression", ["flow", "mlp"])
def test_shapes(encoding, notes, regression):
    torch.manual_seed(0)
    model = SpectralVAE(SMOKE, encoding, notes, regression)
    d = representation(encoding).size
    x = torch.randn(3, notes, *SMOKE.audio.spectrogram_shape)
    out = model(x)
    assert out["x_hat"].shape == x.shape and out["u"].shape == (3, d)
    assert out["mu"].shape == out["zK"].shape == (3, d) and out["logdet"].shape == (3,)
    model.eval()
    assert model.infer(x).shape == (3, d)


def test_paper_shapes():
    cfg = get_config("paper")
    model = SpectralVAE(cfg, "numcat++", 6)
    assert (model.encoder.h, model.encoder.w) == (2, 2)  # 257 x 345 after 7 stride-2 layers
    out = model(torch.randn(2, 6, 257, 345))
    assert out["x_hat"].shape == (2, 6, 257, 345)


@pytest.mark.parametrize("dim", [144, 610])
def test_flows_are_invertible(dim):
    torch.manual_seed(0)
    flow = RealNVP(dim, layers=6, hidden=300)
    z = torch.randn(16, dim)
    y, logdet = flow(z)
    assert logdet.shape == (16,) and not torch.allclose(y, z)
    torch.testing.assert_close(flow.inverse(y), z, atol=1e-4, rtol=0)
    model = SpectralVAE(SMOKE, "numcat", 1).eval()
    u = torch.rand(8, model.dim_z)
    torch.testing.assert_close(
        model.latent_to_preset(model.preset_to_latent(u)), u, atol=1e-4, rtol=0
    )


def test_loss_falls_when_overfitting_32_voices(smoke_data):
    torch.manual_seed(0)
    data = dataset.DeviceSplit(smoke_data["single"], "train", "numcat++", "cpu")
    x, params, mask = data.batch(torch.arange(32))
    model = SpectralVAE(SMOKE, "numcat++", 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rep = representation("numcat++")
    losses = []
    for _ in range(60):
        parts = train._losses(model, x, params, mask, SMOKE, rep)
        loss = parts["rec"] + 0.1 * parts["kl"] + parts["params"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_resume_equals_an_uninterrupted_run(smoke_data, tmp_path):
    data = smoke_data["single"]
    train.train("smoke", data, tmp_path / "a", epochs=3, progress=False)
    train.train("smoke", data, tmp_path / "b", epochs=1, progress=False)
    train.train("smoke", data, tmp_path / "b", epochs=3, resume=True, progress=False)
    a, b = load_weights(tmp_path / "a"), load_weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = train.read_metrics(tmp_path / "a"), train.read_metrics(tmp_path / "b")
    assert [m["val_loss"] for m in ma] == [m["val_loss"] for m in mb] and len(ma) == 3
    assert (tmp_path / "a" / "config.yaml").read_text().startswith("config:\n  name: smoke")


def test_same_seed_same_weights(smoke_data, tmp_path):
    for name in ("x", "y"):
        train.train("smoke", smoke_data["six"], tmp_path / name, encoding="numonly", epochs=1,
                    progress=False)  # fmt: skip
    x, y = load_weights(tmp_path / "x"), load_weights(tmp_path / "y")
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_run_errors(smoke_data, tmp_path):
    train.train("smoke", smoke_data["single"], tmp_path / "r", epochs=1, progress=False)
    with pytest.raises(ValueError, match="already there; pass --resume"):
        train.train("smoke", smoke_data["single"], tmp_path / "r", epochs=1, progress=False)
    with pytest.raises(ValueError, match="built with config 'smoke'"):
        train.train("small", smoke_data["single"], tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="holds 'single' notes"):
        train.train("smoke", smoke_data["single"], tmp_path / "t", notes="six", progress=False)


def test_weights_are_sharded_under_16_mib(tmp_path):
    model = SpectralVAE(get_config("paper"), "numcat++", 6)
    files = save_weights(model, tmp_path)
    assert len(files) > 1 and all(f.stat().st_size < 16 * 2**20 for f in files)
    state = load_weights(tmp_path)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_train_command_and_torchrun(smoke_data, tmp_path):
    cmd = [sys.executable, "-m", "companion", "train", "--config", "smoke", "--data",
           str(smoke_data["single"]), "--representation", "numcat", "--epochs", "1"]  # fmt: skip
    one = subprocess.run(cmd + ["--out", str(tmp_path / "one")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29517", "-m", "companion"]  # fmt: skip
    ddp = cmd[3:] + ["--device", "cpu", "--out", str(tmp_path / "ddp")]
    two = subprocess.run(torchrun + ddp, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    model, meta = load_model(tmp_path / "ddp")
    assert meta["settings"]["world_size"] == 2 and meta["encoding"] == "numcat"


def test_saved_model_encodes_and_decodes_a_voice(smoke_data, tmp_path, fixture_voices):
    train.train("smoke", smoke_data["single"], tmp_path / "m", epochs=1, progress=False)
    model, meta = load_model(tmp_path / "m")
    rep = representation(meta["encoding"])
    voice = fixture_voices[5]
    u = torch.from_numpy(rep.encode(voice.values)[None])
    back = model.latent_to_preset(model.preset_to_latent(u)).numpy()
    assert np.array_equal(rep.decode(back, transpose=voice["transpose"])[0], voice.values)
    spec = torch.from_numpy(np.load(smoke_data["single"] / "test.spec.npy")[:2].astype(np.float32))
    values = rep.decode(
        model.infer((spec - meta["stats"]["mean_db"]) / meta["stats"]["std_db"]).numpy()
    )
    assert values.shape == (2, 145)
    with pytest.raises(ValueError, match="not a model folder"):
        load_model(tmp_path)


def test_default_model_loads_encodes_and_decodes(fixture_voices):
    model, meta = load_model()  # companion/models/default, shipped in the repository
    assert meta["encoding"] == "numcat++" and meta["notes"] == 1 and not model.training
    rep = representation(meta["encoding"])
    for voice in fixture_voices[:8]:
        u = torch.from_numpy(rep.encode(voice.values)[None])
        back = model.latent_to_preset(model.preset_to_latent(u)).numpy()
        assert np.array_equal(rep.decode(back, transpose=voice["transpose"])[0], voice.values)


def test_a_wheel_carries_the_default_model(tmp_path):
    """A non-editable install finds the shipped model: the wheel holds every file of it."""
    import zipfile
    from pathlib import Path

    from companion.models.vae import default_model_dir

    root = Path(__file__).resolve().parents[1]
    shipped = sorted(p.name for p in default_model_dir().iterdir() if p.is_file())
    assert "model.yaml" in shipped and default_model_dir().is_relative_to(root / "companion")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("companion-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names
                  if n.startswith("companion/models/default/")) == shipped  # fmt: skip
