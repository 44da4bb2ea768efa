import json

import numpy as np
import pytest
import torch

from companion.config import CONFIGS, NOTE_LAYOUTS
from companion.data import dataset, presets
from companion.data.labels import Labeler, labels_from_features
from companion.data.render import Renderer
from companion.dx7.params import representation
from companion.dx7.voice import INIT_VOICE

SMOKE = CONFIGS["smoke"]


@pytest.fixture(scope="module")
def built(fixture_db, tmp_path_factory):
    out = {}
    for notes in NOTE_LAYOUTS:
        path = tmp_path_factory.mktemp(f"ds-{notes}")
        dataset.build(fixture_db, "smoke", path, notes=notes, limit=40, processes=2, progress=False)
        out[notes] = path
    return out


@pytest.mark.parametrize("notes", NOTE_LAYOUTS)
def test_shapes_dtypes_and_splits(built, fixture_db, notes):
    path = built[notes]
    stats = json.loads((path / "stats.json").read_text())
    assert sum(stats["splits"].values()) == 40
    rows = dict(presets.load(fixture_db, limit=40))
    for split in presets.SPLITS:
        spec = np.load(path / f"{split}.spec.npy", mmap_mode="r")
        ids = np.load(path / f"{split}.ids.npy")
        voices = np.load(path / f"{split}.voices.npy")
        assert spec.dtype == np.float16
        assert spec.shape == (len(ids), len(NOTE_LAYOUTS[notes]), *SMOKE.audio.spectrogram_shape)
        assert voices.shape == (len(ids), 145) and voices.dtype == np.uint8
        assert all(presets.split_of(rows[int(i)].params) == split for i in ids)
        assert all(np.array_equal(rows[int(i)].values, v) for i, v in zip(ids, voices))
        assert np.isfinite(spec.astype(np.float32)).all() and spec.min() >= -120
    assert stats["min_db"] == -120 and -120 < stats["mean_db"] < 0 and stats["std_db"] > 1


def test_spectrogram_matches_a_fresh_render(built, fixture_db):
    from companion.data.audio import MelSpectrogram

    path = built["six"]
    ids = np.load(path / "valid.ids.npy")
    spec = np.load(path / "valid.spec.npy", mmap_mode="r")
    voice = dict(presets.load(fixture_db, ids=[int(ids[0])]))[int(ids[0])]
    audio = Renderer(SMOKE.audio).render_notes(voice, NOTE_LAYOUTS["six"])
    expected = MelSpectrogram(SMOKE.audio)(torch.from_numpy(audio)).numpy().astype(np.float16)
    assert np.array_equal(spec[0], expected)


def test_same_data_with_one_or_two_processes(built, fixture_db, tmp_path):
    dataset.build(
        fixture_db, "smoke", tmp_path, notes="single", limit=40, processes=1, progress=False
    )
    for name in ("train.spec.npy", "test.labels.npy", "valid.features.npy"):
        assert np.array_equal(np.load(tmp_path / name), np.load(built["single"] / name))


def test_interrupted_build_resumes_to_the_same_result(built, fixture_db, tmp_path, monkeypatch):
    real = dataset.pool_map

    def interrupted(*args, **kwargs):
        for k, result in enumerate(real(*args, **kwargs)):
            if k == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(dataset, "pool_map", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset.build(
            fixture_db, "smoke", tmp_path, notes="single", limit=40, processes=1, progress=False
        )
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["train"] == SMOKE.chunk and "valid" not in progress
    assert not (tmp_path / "stats.json").exists()
    monkeypatch.setattr(dataset, "pool_map", real)
    calls = []
    monkeypatch.setattr(
        dataset,
        "pool_map",
        lambda fn, jobs, *a, **k: calls.append(len(jobs)) or real(fn, jobs, *a, **k),
    )
    dataset.build(
        fixture_db, "smoke", tmp_path, notes="single", limit=40, processes=1, progress=False
    )
    n_jobs = sum(
        -(-n // SMOKE.chunk)
        for n in json.loads((built["single"] / "stats.json").read_text())["splits"].values()
    )
    assert calls == [n_jobs - 1]  # the first chunk was not rendered again
    for name in ("train.spec.npy", "train.labels.npy", "test.spec.npy"):
        assert np.array_equal(np.load(tmp_path / name), np.load(built["single"] / name))
    assert (tmp_path / "stats.json").read_text() == (built["single"] / "stats.json").read_text()


def test_a_finished_build_called_again_renders_nothing(built, fixture_db, tmp_path, monkeypatch):
    """The key is stable: the same voices, config, notes and limit resume (here: finish)."""
    import shutil

    shutil.copytree(built["single"], tmp_path / "ds")
    calls = []
    real = dataset.pool_map
    monkeypatch.setattr(
        dataset,
        "pool_map",
        lambda fn, jobs, *a, **k: calls.append(len(jobs)) or real(fn, jobs, *a, **k),
    )
    dataset.build(fixture_db, "smoke", tmp_path / "ds", notes="single", limit=40, progress=False)
    assert calls == [0]
    for name in ("train.spec.npy", "stats.json", "config.yaml"):
        assert (tmp_path / "ds" / name).read_bytes() == (built["single"] / name).read_bytes()


@pytest.mark.parametrize("encoding", ["numonly", "numcat++"])
@pytest.mark.parametrize("notes", NOTE_LAYOUTS)
def test_torch_dataset(built, notes, encoding):
    ds = dataset.SpectrogramDataset(built[notes], "train", encoding)
    item = ds[0]
    assert item["spec"].shape == (len(NOTE_LAYOUTS[notes]), *SMOKE.audio.spectrogram_shape)
    assert item["spec"].dtype == torch.float32 and item["params"].shape == (
        representation(encoding).size,
    )
    assert torch.equal(item["values"], torch.from_numpy(ds.values[0]))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert batch["spec"].shape[0] == min(8, len(ds)) and batch["mask"].dtype == torch.bool
    everything = torch.stack([ds[i]["spec"] for i in range(len(ds))])
    assert abs(float(everything.mean())) < 1e-2 and abs(float(everything.std()) - 1) < 1e-2


def test_labels_of_typical_sounds():
    labeler, renderer = Labeler(), Renderer()
    rng = np.random.default_rng(0)
    sustained = renderer.render(INIT_VOICE)
    # a pluck: fast attack, decays to silence in ~0.2 s
    pluck = renderer.render(INIT_VOICE.replace(op1_eg_rate2=75, op1_eg_level2=0, op1_eg_level3=0))
    noise = (0.3 * rng.standard_normal(88200)).astype(np.float32)
    feats = np.stack([labeler.features(a) for a in (sustained, pluck, noise)])
    labels = labels_from_features(feats)
    assert labels[0].tolist() == [True, False, False]  # harmonic only
    assert labels[1, 1] and not labels[1, 2]  # percussive
    assert labels[2].tolist() == [False, False, True]  # sfx only
    assert not labels_from_features(labeler.features(np.zeros(88200, np.float32))).any()


def test_empty_database_and_bad_layout(fixture_db, tmp_path):
    with pytest.raises(ValueError, match="unknown note layout"):
        dataset.build(fixture_db, "smoke", tmp_path, notes="three")
    with pytest.raises(ValueError, match="unknown config"):
        dataset.build(fixture_db, "huge", tmp_path)
    with pytest.raises(ValueError, match="not a finished dataset"):
        dataset.open_dataset(tmp_path)
