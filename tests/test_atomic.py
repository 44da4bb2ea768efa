"""Nothing half-written, no silent mix of old and new.

Atomicity: every writer is made to fail half-way (the library call underneath writes some
bytes, then raises as a full disk would): the old file stays byte for byte and no temporary is
left. Resume: a dataset build or a training run continues only what it started itself.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import companion.io as cio
from companion.data import dataset, presets
from companion.io import atomic_dir, save_figure, save_npy, write_atomic, write_audio
from companion.latent.interpolate import write_path
from companion.models import weights
from companion.models.vae import load_model, load_weights, save_weights
from companion.publishing import modelcard, plots, site
from companion.training import train
from tests.conftest import write_cartridges

matplotlib.use("Agg")


class DiskFull(OSError):
    def __init__(self):
        super().__init__(errno.ENOSPC, "No space left on device (simulated)")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if cio.TMP_SUFFIX in p.name]


def half_open(monkeypatch, fail_on: int = 1):
    """companion.io's ``open`` for writing: the ``fail_on``-th file written gets half of its
    bytes, then a full disk."""
    calls = {"n": 0}
    real = open

    class Half:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise DiskFull()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake(path, mode="r", *args, **kwargs):
        f = real(path, mode, *args, **kwargs)
        if "w" in mode:
            calls["n"] += 1
            if calls["n"] == fail_on:
                return Half(f)
        return f

    monkeypatch.setattr(cio, "open", fake, raising=False)
    return calls


# --- one writer at a time ------------------------------------------------------------------


def test_write_atomic_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "a.syx", b"old" * 100)
    half_open(monkeypatch)
    with pytest.raises(DiskFull):
        write_atomic(path, b"new" * 100)
    assert path.read_bytes() == b"old" * 100 and not temporaries(tmp_path)


def test_a_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "a.json", "{}")

    def no_rename(src, dst):
        raise DiskFull()

    monkeypatch.setattr(cio.os, "replace", no_rename)
    with pytest.raises(DiskFull):
        write_atomic(path, '{"new": 1}')
    assert path.read_text() == "{}" and not temporaries(tmp_path)


def test_save_npy_keeps_the_old_array(tmp_path, monkeypatch):
    path = save_npy(tmp_path / "train.ids.npy", np.arange(100))
    before = path.read_bytes()
    real = np.save

    def half_save(f, array, *a, **k):
        import io

        buf = io.BytesIO()
        real(buf, array, *a, **k)
        f.write(buf.getvalue()[:100])
        raise DiskFull()

    monkeypatch.setattr(np, "save", half_save)
    with pytest.raises(DiskFull):
        save_npy(path, np.arange(1000))
    assert path.read_bytes() == before and not temporaries(tmp_path)


def half_soundfile(monkeypatch):
    real = sf.write

    def half_write(file, data, samplerate, *a, **k):
        real(file, data[: len(data) // 2], samplerate, *a, **k)
        raise DiskFull()

    monkeypatch.setattr(sf, "write", half_write)


def test_write_audio_keeps_the_old_sound(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.wav", np.zeros(1000, np.float32), 22050)
    before = path.read_bytes()
    half_soundfile(monkeypatch)
    with pytest.raises(DiskFull):
        write_audio(path, np.full(5000, 0.5, np.float32), 22050)
    assert path.read_bytes() == before and not temporaries(tmp_path)


def test_interpolation_writer_keeps_the_old_steps(tmp_path, monkeypatch, fixture_voices):
    values = np.stack([v.values for v in fixture_voices[:3]])
    write_path(values, ["A", "B", "C"], tmp_path, wav=True)
    before = snapshot(tmp_path)
    half_soundfile(monkeypatch)
    with pytest.raises(DiskFull):
        write_path(values[::-1], ["C", "B", "A"], tmp_path, wav=True)
    after = snapshot(tmp_path)
    # the .syx steps were written anew before the sounds: each file is old or new, never half
    assert after.keys() == before.keys() and after["step1.wav"] == before["step1.wav"]
    assert not temporaries(tmp_path)


def test_figures_and_spectrogram_images_keep_the_old_file(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    png = tmp_path / "s.png"
    plots.save_spectrogram(np.zeros((8, 9)), png)
    fig = plt.figure()
    save_figure(fig, tmp_path / "f.png")
    before = snapshot(tmp_path)

    def half(target, *a, **k):
        Path(target).write_bytes(b"\x89PNG half")
        raise DiskFull()

    monkeypatch.setattr(plt, "imsave", half)
    monkeypatch.setattr(Figure, "savefig", lambda self, target, **k: half(target))
    with pytest.raises(DiskFull):
        plots.save_spectrogram(np.ones((8, 9)), png)
    with pytest.raises(DiskFull):
        save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    assert snapshot(tmp_path) == before and not temporaries(tmp_path)


def test_copies_of_the_site_source_keep_the_old_file(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "_layouts").mkdir(parents=True)
    (src / "_layouts" / "page.html").write_text("new layout " * 50)
    write_atomic(dst / "_layouts" / "page.html", "old layout")

    def half_copy(a, b, *args, **kwargs):
        Path(b).write_bytes(Path(a).read_bytes()[:20])
        raise DiskFull()

    monkeypatch.setattr(cio.shutil, "copy2", half_copy)
    with pytest.raises(DiskFull):
        site.copy_source(dst, src)
    assert (dst / "_layouts" / "page.html").read_text() == "old layout"
    assert not temporaries(dst)


def test_atomic_dir_puts_the_old_folder_back(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    with atomic_dir(folder) as tmp:
        (tmp / "a").write_text("old")
    real, calls = cio.os.replace, []

    def second_fails(src, dst):  # the old folder moved aside, then the new one cannot move in
        calls.append(dst)
        if len(calls) == 2:
            raise DiskFull()
        real(src, dst)

    monkeypatch.setattr(cio.os, "replace", second_fails)
    with pytest.raises(DiskFull):
        with atomic_dir(folder) as tmp:
            (tmp / "a").write_text("new")
    assert (folder / "a").read_text() == "old" and not temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("fail_on", [1, 2, 3, 4])  # three shards, then the index
def test_weights_keep_the_old_model_when_a_save_fails_at_any_file(tmp_path, monkeypatch, fail_on):
    monkeypatch.setattr(weights, "SHARD_BYTES", 4000)
    old = {f"w{i}": torch.full((800,), float(i)) for i in range(3)}  # 3200 bytes: one shard each
    save_weights(old, tmp_path)
    before = snapshot(tmp_path)
    new = {k: v + 10 for k, v in old.items()}
    half_open(monkeypatch, fail_on)
    with pytest.raises(DiskFull):
        save_weights(new, tmp_path)
    state = load_weights(tmp_path)
    assert all(torch.equal(state[k], old[k]) for k in old)
    assert snapshot(tmp_path) == before
    monkeypatch.undo()
    monkeypatch.setattr(weights, "SHARD_BYTES", 4000)
    save_weights(new, tmp_path)  # the next save succeeds and leaves only its own shards
    assert len(list(tmp_path.glob("model-*.safetensors"))) == 3
    assert torch.equal(load_weights(tmp_path)["w2"], new["w2"])


def test_site_assets_stay_when_a_section_fails(tmp_path, monkeypatch):
    pytest.importorskip("lameenc")
    src = tmp_path / "src"
    cells = []
    for k in range(3):
        write_audio(src / f"{k}.wav", np.full(2205, 0.1 * k, np.float32), 22050)
        plots.save_spectrogram(np.full((8, 9), -10.0 * k), src / f"{k}.png")
        cells.append({"label": f"c{k}", "wav": src / f"{k}.wav", "png": src / f"{k}.png"})
    manifest = {"demo": {"title": "t", "rows": [{"title": "r", "cells": cells}]}}
    out = tmp_path / "site"
    site.write_site(manifest, out)
    before = snapshot(out)
    real, calls = site.mp3_bytes, []

    def fails_on_the_third(wav):
        calls.append(wav)
        if len(calls) == 3:
            raise DiskFull()
        return real(wav)

    monkeypatch.setattr(site, "mp3_bytes", fails_on_the_third)
    manifest["demo"]["rows"][0]["cells"] = cells[::-1]
    with pytest.raises(DiskFull):
        site.write_site(manifest, out)
    assert snapshot(out) == before and not temporaries(out)


# --- ship: a model folder swapped whole ----------------------------------------------------


def test_ship_failing_half_way_leaves_the_old_model_folder(smoke_run, tmp_path, monkeypatch):
    data, run = smoke_run
    out = tmp_path / "default"
    modelcard.ship(run, data, out, hardware="test")
    (out / "NOTES.txt").write_text("a user's own file")
    load_model(out)
    before = snapshot(out)
    real, calls = shutil.copy2, []

    def half_copy(src, dst, *a, **k):  # the second file copied is cut short
        calls.append(src)
        if len(calls) == 2:
            Path(dst).write_bytes(Path(src).read_bytes()[:100])
            raise DiskFull()
        return real(src, dst, *a, **k)

    monkeypatch.setattr(modelcard.shutil, "copy2", half_copy)
    with pytest.raises(DiskFull):
        modelcard.ship(run, data, out, hardware="other")
    assert snapshot(out) == before and not temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default"]
    model, meta = load_model(out)
    assert meta["encoding"] == "numcat++"
    monkeypatch.undo()
    modelcard.ship(run, data, out, hardware="other")  # a whole ship replaces it, keeps NOTES
    assert "on\nother;" in (out / "MODEL_CARD.md").read_text()
    assert (out / "NOTES.txt").read_text() == "a user's own file"


def test_a_truncated_missing_or_bad_shard_is_one_line(smoke_run, tmp_path):
    _, run = smoke_run
    model = tmp_path / "m"
    model.mkdir()
    for f in [run / "model.yaml", *weights.shard_files(run)]:
        shutil.copy2(f, model / f.name)
    shard = weights.shard_files(model)[1]  # the first shard
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as e:
        load_model(model)
    assert str(shard) in str(e.value) and "\n" not in str(e.value)
    shard.unlink()
    with pytest.raises(ValueError, match="missing") as e:
        load_model(model)
    assert str(shard) in str(e.value) and "\n" not in str(e.value)
    (model / "model.index.json").write_text('{"shards": ')
    with pytest.raises(ValueError, match="model.index.json: not a valid weights index"):
        load_model(model)


def test_a_truncated_shard_of_an_index_without_checksums_is_one_line(tmp_path):
    """The shipped model's index predates checksums: safetensors' own check must catch it."""
    default = Path(weights.__file__).parent / "default"
    model = tmp_path / "m"
    shutil.copytree(default, model)
    assert "sha256" not in json.loads((model / "model.index.json").read_text())
    load_model(model)
    shard = weights.shard_files(model)[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(ValueError, match="truncated or corrupt") as e:
        load_model(model)
    assert str(shard) in str(e.value) and "\n" not in str(e.value)


# --- dataset builds: resume only into the same cache ---------------------------------------


def interrupt_after_first_chunk(monkeypatch):
    real = dataset.pool_map

    def interrupted(*args, **kwargs):
        for k, result in enumerate(real(*args, **kwargs)):
            if k == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(dataset, "pool_map", interrupted)


def build(db, out, **kwargs):
    args = {"notes": "single", "limit": 40, "processes": 1, "progress": False} | kwargs
    return dataset.build(db, "smoke", out, **args)


def same_dataset(a: Path, b: Path) -> None:
    for split in presets.SPLITS:
        for kind in dataset.ARRAYS:
            name = f"{split}.{kind}.npy"
            assert np.array_equal(np.load(a / name), np.load(b / name)), name
    assert (a / "stats.json").read_text() == (b / "stats.json").read_text()


@pytest.fixture(scope="module")
def other_db(tmp_path_factory) -> Path:
    """A database of other cartridges (other voices, other ids' contents)."""
    root = tmp_path_factory.mktemp("other-cartridges")
    write_cartridges(root, seed=7)
    db = tmp_path_factory.mktemp("other-db") / "presets.sqlite"
    presets.build(root, db, progress=False)
    return db


def test_other_database_contents_at_the_same_path_start_over(
    fixture_db, other_db, tmp_path, monkeypatch, capsys
):
    db = tmp_path / "presets.sqlite"
    shutil.copyfile(fixture_db, db)
    out = tmp_path / "data"
    with monkeypatch.context() as m:
        interrupt_after_first_chunk(m)
        with pytest.raises(KeyboardInterrupt):
            build(db, out)
    assert json.loads((out / "progress.json").read_text())["train"] > 0
    shutil.copyfile(other_db, db)  # rebuilt at the same path, with other voices
    capsys.readouterr()
    build(db, out)
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "starting it over" in notice[0]
    fresh = tmp_path / "fresh"
    build(other_db, fresh)
    same_dataset(out, fresh)  # no spectrogram of an old voice beside a new voice's parameters


@pytest.mark.parametrize("change", [{"limit": 48}, {"notes": "six"}])
def test_other_limit_or_notes_start_over(fixture_db, tmp_path, monkeypatch, capsys, change):
    out = tmp_path / "data"
    with monkeypatch.context() as m:
        interrupt_after_first_chunk(m)
        with pytest.raises(KeyboardInterrupt):
            build(fixture_db, out)
    capsys.readouterr()
    build(fixture_db, out, **change)
    assert "starting it over" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    build(fixture_db, fresh, **change)
    same_dataset(out, fresh)


def test_the_key_follows_voices_config_notes_and_limit(fixture_db, other_db):
    from companion.config import get_config

    def key(db, config="smoke", notes="single", limit=40):
        rows = presets.load(db, limit=limit)
        return dataset.build_key(rows, dataset._splits(db), get_config(config), notes, limit)

    base = key(fixture_db)
    assert base == key(fixture_db)
    others = [key(other_db), key(fixture_db, config="small"), key(fixture_db, notes="six"),
              key(fixture_db, limit=41)]  # fmt: skip
    assert len({base, *others}) == 5


def test_a_first_build_keeps_unrelated_files(fixture_db, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    np.save(out / "mine.npy", np.arange(5))
    (out / "notes.txt").write_text("mine")
    build(fixture_db, out)
    assert np.array_equal(np.load(out / "mine.npy"), np.arange(5))
    assert (out / "notes.txt").read_text() == "mine"
    build(fixture_db, out, limit=48)  # starting over deletes only the build's own files
    assert np.array_equal(np.load(out / "mine.npy"), np.arange(5))


def test_a_folder_with_a_foreign_config_yaml_is_refused(fixture_db, tmp_path):
    (tmp_path / "config.yaml").write_text("mine: true\n")
    with pytest.raises(ValueError, match="not a dataset's config.yaml"):
        build(fixture_db, tmp_path)
    assert (tmp_path / "config.yaml").read_text() == "mine: true\n"


def test_an_empty_validation_split_is_a_clear_error(fixture_db, smoke_run, tmp_path):
    with pytest.raises(ValueError, match="the valid split of these 1 voices is empty"):
        build(fixture_db, tmp_path / "one", limit=1)
    assert not (tmp_path / "one").exists()
    # a dataset from an older build with an empty validation split: training refuses it
    data = tmp_path / "old"
    shutil.copytree(smoke_run[0], data)
    for kind in dataset.ARRAYS:
        arr = np.load(data / f"valid.{kind}.npy")
        save_npy(data / f"valid.{kind}.npy", arr[:0])
    stats = json.loads((data / "stats.json").read_text())
    stats["splits"]["valid"] = 0
    write_atomic(data / "stats.json", json.dumps(stats))
    with pytest.raises(ValueError, match="the valid split is empty"):
        train.train("smoke", data, tmp_path / "run", epochs=1, progress=False)
    assert not (tmp_path / "run").exists()


# --- training runs: resume only what the run started ----------------------------------------


@pytest.fixture
def run_copy(smoke_run, tmp_path) -> tuple[Path, Path]:
    data, run = smoke_run
    shutil.copytree(run, tmp_path / "run")
    return data, tmp_path / "run"


def test_resume_of_a_finished_run_changes_nothing(run_copy, capsys):
    data, run = run_copy
    before = snapshot(run)
    capsys.readouterr()
    last = train.train("smoke", data, run, epochs=1, resume=True, progress=False)
    assert "finished run of 1 epochs" in capsys.readouterr().err
    assert snapshot(run) == before
    assert last == yaml.safe_load((run / "model.yaml").read_text())["final"] and last["epoch"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"encoding": "numcat"}, "started with encoding 'numcat\\+\\+', not 'numcat'"),
        ({"regression": "mlp"}, "started with regression 'flow', not 'mlp'"),
    ],
)
def test_resume_with_other_settings_is_one_line(run_copy, change, message):
    data, run = run_copy
    before = snapshot(run)
    with pytest.raises(ValueError, match=message) as e:
        train.train("smoke", data, run, epochs=2, resume=True, progress=False, **change)
    assert "\n" not in str(e.value) and snapshot(run) == before


def test_resume_with_other_data_or_config_is_one_line(run_copy, fixture_db, tmp_path):
    data, run = run_copy
    other = tmp_path / "other-data"
    build(fixture_db, other, limit=100)  # the same database, another limit: other data
    before = snapshot(run)
    with pytest.raises(ValueError, match="trained on other data") as e:
        train.train("smoke", other, run, epochs=2, resume=True, progress=False)
    assert "\n" not in str(e.value) and snapshot(run) == before
    moved = tmp_path / "moved"  # the same data elsewhere is the same data
    shutil.copytree(data, moved)
    train.train("smoke", moved, run, epochs=2, resume=True, progress=False)
    assert [m["epoch"] for m in train.read_metrics(run)] == [1, 2]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["config"]["model"]["flow_hidden"] = 64  # a run started with another config
    write_atomic(run / "config.yaml", yaml.safe_dump(saved, sort_keys=False))
    with pytest.raises(ValueError, match="differs in model.flow_hidden") as e:
        train.train("smoke", data, run, epochs=3, resume=True, progress=False)
    assert "\n" not in str(e.value)


def test_a_kill_between_metrics_line_and_checkpoint_gives_no_epoch_twice(run_copy, tmp_path):
    data, run = run_copy
    lines = train.read_metrics(run)
    assert [m["epoch"] for m in lines] == [1]
    # epoch 2's line was written, then the process died before epoch 2's checkpoint
    ghost = dict(lines[0], epoch=2, val_loss=123.0)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(ghost) + "\n")
    train.train("smoke", data, run, epochs=2, resume=True, progress=False)
    metrics = train.read_metrics(run)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[1]["val_loss"] != 123.0
    straight = tmp_path / "straight"  # and it is the epoch an uninterrupted run writes
    train.train("smoke", data, straight, epochs=2, progress=False)
    assert [m["val_loss"] for m in train.read_metrics(straight)] == [m["val_loss"] for m in metrics]


def test_a_checkpoint_that_fails_half_way_leaves_the_previous_one(run_copy, monkeypatch):
    data, run = run_copy
    pointer = (run / "checkpoints" / "latest.json").read_text()
    before = snapshot(run / "checkpoints")

    def half_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half")
        raise DiskFull()

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(DiskFull):
        train.train("smoke", data, run, epochs=2, resume=True, progress=False)
    assert (run / "checkpoints" / "latest.json").read_text() == pointer
    assert snapshot(run / "checkpoints") == before and not temporaries(run)
    monkeypatch.undo()
    train.train("smoke", data, run, epochs=2, resume=True, progress=False)
    assert [m["epoch"] for m in train.read_metrics(run)] == [1, 2]


def test_together_is_all_or_none(tmp_path, monkeypatch):
    """Three files together, the third failing: none of the new ones is left, the old file the
    first replaced is back byte for byte; without a failure all three appear."""
    old = write_atomic(tmp_path / "a.syx", b"old")
    half_open(monkeypatch, fail_on=3)
    with pytest.raises(DiskFull), cio.together():
        write_atomic(tmp_path / "a.syx", b"new a")
        write_atomic(tmp_path / "b.syx", b"new b")
        assert not (tmp_path / "b.syx").exists()  # nothing appears before the block ends
        write_atomic(tmp_path / "c.syx", b"new c")
    assert snapshot(tmp_path) == {"a.syx": b"old"} and old.read_bytes() == b"old"
    monkeypatch.undo()
    with cio.together():
        for name in "abc":
            write_atomic(tmp_path / f"{name}.syx", name.encode())
    assert snapshot(tmp_path) == {f"{n}.syx": n.encode() for n in "abc"}


def test_a_failed_rename_together_puts_the_old_files_back(tmp_path, monkeypatch):
    write_atomic(tmp_path / "a.syx", b"old a")
    real, calls = cio.os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise DiskFull()
        real(src, dst)

    monkeypatch.setattr(cio.os, "replace", second_fails)
    with pytest.raises(DiskFull), cio.together():
        write_atomic(tmp_path / "a.syx", b"new a")
        write_atomic(tmp_path / "b.syx", b"new b")
    assert snapshot(tmp_path) == {"a.syx": b"old a"}


def test_an_input_is_never_written_over(tmp_path):
    """What a command reads (directly, through a symbolic or a hard link, inside a folder it
    reads) is refused by every writer, and a folder swapped whole may not hold one."""
    (tmp_path / "in").mkdir()
    src = write_atomic(tmp_path / "in" / "a.syx", b"mine")
    (tmp_path / "sym.syx").symlink_to(src)
    (tmp_path / "hard.syx").hardlink_to(src)
    cio.forget_reads()
    try:
        cio.reads(tmp_path / "in")
        for out in (src, tmp_path / "sym.syx", tmp_path / "hard.syx"):
            with pytest.raises(ValueError, match="which this command reads|this command reads it"):
                write_atomic(out, b"new")
        with pytest.raises(ValueError, match="holds"):
            with atomic_dir(tmp_path):
                pass
        write_atomic(tmp_path / "in" / "b.syx", b"new file")  # beside it: fine
    finally:
        cio.forget_reads()
    assert src.read_bytes() == b"mine"
    write_atomic(tmp_path / "hard.syx", b"not an input any more")


def test_uninterrupted_holds_ctrl_c_until_the_end(tmp_path):
    import os
    import signal

    done = []
    with pytest.raises(KeyboardInterrupt):
        with cio.uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("written")
            write_atomic(tmp_path / "a.syx", b"whole")
            done.append("reported")
    assert done == ["written", "reported"] and (tmp_path / "a.syx").read_bytes() == b"whole"
