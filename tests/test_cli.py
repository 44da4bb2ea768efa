"""The command line as a user types it: outputs, and one-line errors with a non-zero status."""

import json
import subprocess
import sys

from companion.dx7.sysex import read_voices


def run(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "companion", *map(str, args)], capture_output=True, text=True
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_presets_build_info_export(cartridges, tmp_path):
    db = tmp_path / "p.sqlite"
    out = run("presets", "build", "--cartridges", cartridges[0], "--db", db)
    assert "120 unique voices" in out.stdout
    info = json.loads(run("presets", "info", "--db", db, "--json").stdout)
    assert info["unique_voices"] == 120 and info["readable_voices"] == 160
    assert info["skipped_voices"] == 1 and set(info["splits"]) == {"train", "valid", "test"}
    assert "unique voices   120" in run("presets", "info", "--db", db).stdout
    run(
        "presets",
        "export",
        "--db",
        db,
        "--split",
        "train",
        "--limit",
        "3",
        "-o",
        tmp_path / "t.syx",
    )
    assert len(read_voices(tmp_path / "t.syx")) == 32
    run("presets", "export", "--db", db, "--ids", "1", "2", "-o", tmp_path / "ids.syx")
    assert [v.display_name for v in read_voices(tmp_path / "ids.syx")[:2]] == [
        "BRASS 00",
        "BRASS 01",
    ]


def test_render(fixture_db, tmp_path):
    import soundfile as sf

    run("presets", "export", "--db", fixture_db, "--ids", "3", "4", "-o", tmp_path / "two.syx")
    out = run(
        "render", tmp_path / "two.syx", "--index", "1", "--note", "48", "-o", tmp_path / "a.flac"
    )
    assert "BRASS 03" in out.stdout
    audio, rate = sf.read(tmp_path / "a.flac")
    assert rate == 22050 and audio.shape == (88200,)
    bad = run(
        "render", tmp_path / "two.syx", "--index", "40", "-o", tmp_path / "b.wav", check=False
    )
    assert bad.returncode == 1 and "holds 32 voices" in bad.stderr
    assert not (tmp_path / "b.wav").exists()


def test_dataset_build(fixture_db, tmp_path):
    out = run(
        "dataset",
        "build",
        "--db",
        fixture_db,
        "--config",
        "smoke",
        "--out",
        tmp_path / "ds",
        "--limit",
        "20",
    )
    summary = json.loads(out.stdout)
    assert sum(summary["splits"].values()) == 20 and summary["min_db"] == -120


def test_export_unknown_id(fixture_db, tmp_path):
    proc = run(
        "presets",
        "export",
        "--db",
        fixture_db,
        "--ids",
        "99999",
        "-o",
        tmp_path / "x.syx",
        check=False,
    )
    assert proc.returncode == 1 and "no voice with id 99999" in proc.stderr
    assert not (tmp_path / "x.syx").exists()
