"""Every subcommand on bad input, as a user types it: a non-zero status, one line on stderr
naming the file and what is wrong, no traceback, and nothing left behind (no output, no
temporary, no empty output folder).

``render`` has its own table in test_render_cli.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from companion.data import presets
from companion.models.vae import default_model_dir

COMPANION = [sys.executable, "-m", "companion"]


def run(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMPANION, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a read-only one, or /sys when running as root
    (root writes through permission bits)."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder here that root cannot write in")


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def model_copies(tmp_path_factory) -> Path:
    """The shipped model with a shard missing, with a shard truncated, and whole."""
    root = tmp_path_factory.mktemp("models")
    src = default_model_dir()
    for name in ("whole", "missing-shard", "truncated-shard"):
        shutil.copytree(src, root / name)
    shards = sorted((root / "missing-shard").glob("model-*.safetensors"))
    shards[-1].unlink()
    last = sorted((root / "truncated-shard").glob("model-*.safetensors"))[-1]
    last.write_bytes(last.read_bytes()[:1000])
    return root


@pytest.fixture
def work(tmp_path, fixture_db, model_copies) -> Path:
    """A user's folder: a file and a folder in the way, a sound, a bank, a database."""
    (tmp_path / "afile").write_text("a file where a folder is expected")
    (tmp_path / "adir").mkdir()
    t = np.arange(22050 * 2) / 22050
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 261.6 * t), 22050)
    rows = presets.load(fixture_db, limit=2)
    presets.export([v for _, v in rows], tmp_path / "two.syx")
    shutil.copy(fixture_db, tmp_path / "p.sqlite")
    for name in ("missing-shard", "truncated-shard"):
        os.symlink(model_copies / name, tmp_path / name)
    return tmp_path


# (argv, text the error line must hold). Paths are relative to the `work` folder; UNWRITABLE
# is replaced by a folder that cannot be written in.
CASES = {
    # an output under an existing file
    "presets build --db under a file": (
        ["presets", "build", "--cartridges", "adir", "--db", "afile/x.sqlite"],
        "afile/x.sqlite: afile is a file, not a folder",
    ),
    "presets export -o under a file": (
        ["presets", "export", "--db", "p.sqlite", "--ids", "1", "-o", "afile/x.syx"],
        "afile is a file, not a folder",
    ),
    "presets export -o a folder": (
        ["presets", "export", "--db", "p.sqlite", "--ids", "1", "-o", "adir"],
        "adir: is a folder, expected a file name",
    ),
    "dataset build --out under a file": (
        ["dataset", "build", "--db", "p.sqlite", "--config", "smoke", "--out", "afile/ds"],
        "afile/ds: afile is a file, not a folder",
    ),
    "dataset build --out a file": (
        ["dataset", "build", "--db", "p.sqlite", "--config", "smoke", "--out", "afile"],
        "afile: is a file, expected a folder",
    ),
    "train --out under a file": (
        ["train", "--config", "smoke", "--data", "adir", "--out", "afile/run"],
        "afile is a file, not a folder",
    ),
    "program --out-dir under a file": (
        ["program", "tone.wav", "--out-dir", "afile/out"],
        "afile/out: afile is a file, not a folder",
    ),
    "evaluate --out under a file": (
        ["evaluate", "--data", "adir", "--out", "afile/figures"],
        "afile is a file, not a folder",
    ),
    "interpolate --out-dir under a file": (
        ["interpolate", "two.syx", "two.syx", "--naive", "--out-dir", "afile/path"],
        "afile is a file, not a folder",
    ),
    "generate -o under a file": (
        ["generate", "-o", "afile/new.syx"],
        "afile/new.syx: afile is a file, not a folder",
    ),
    "evaluate-latent --out under a file": (
        ["evaluate-latent", "--data", "adir", "--out", "afile/figures"],
        "afile is a file, not a folder",
    ),
    "sounds --out-dir under a file": (
        ["sounds", "gm-piano", "--out-dir", "afile/sounds"],
        "afile is a file, not a folder",
    ),
    "evaluate-ood --out under a file": (
        ["evaluate-ood", "--data", "adir", "--out-dir", "ood", "--out", "afile/figures"],
        "afile is a file, not a folder",
    ),
    "ship --out under a file": (
        ["ship", "--run", "adir", "--data", "adir", "--out", "afile/model"],
        "afile is a file, not a folder",
    ),
    # an output folder that cannot be written: refused before any computing
    "program --out-dir unwritable": (
        ["program", "tone.wav", "--out-dir", "UNWRITABLE/out"],
        "cannot write in",
    ),
    "presets export -o unwritable": (
        ["presets", "export", "--db", "p.sqlite", "--ids", "1", "-o", "UNWRITABLE/x.syx"],
        "cannot write in",
    ),
    "dataset build --out unwritable": (
        ["dataset", "build", "--db", "p.sqlite", "--config", "smoke", "--out", "UNWRITABLE/ds"],
        "cannot write in",
    ),
    # inputs that are not what they should be
    "program a folder as input": (
        ["program", "adir", "--out-dir", "out"],
        "adir: is a folder, expected an audio file",
    ),
    "program a missing input": (
        ["program", "missing.wav", "--out-dir", "out"],
        "missing.wav: no such file",
    ),
    "program a model with a shard missing": (
        ["program", "tone.wav", "--out-dir", "out", "--model", "missing-shard"],
        "missing",
    ),
    "program a model with a shard truncated": (
        ["program", "tone.wav", "--out-dir", "out", "--model", "truncated-shard"],
        "truncated",
    ),
    "generate a model with a shard truncated": (
        ["generate", "-o", "new.syx", "--model", "truncated-shard"],
        "truncated",
    ),
    "presets info a missing database": (
        ["presets", "info", "--db", "missing.sqlite"],
        "missing.sqlite: preset database not found",
    ),
    "presets build a missing cartridge folder": (
        ["presets", "build", "--cartridges", "nowhere", "--db", "x.sqlite"],
        "nowhere: cartridge folder not found",
    ),
    "dataset build a missing database": (
        ["dataset", "build", "--db", "missing.sqlite", "--out", "ds", "--config", "smoke"],
        "preset database not found",
    ),
    "dataset build an unknown config": (
        ["dataset", "build", "--db", "p.sqlite", "--out", "ds", "--config", "giant"],
        "unknown config 'giant'",
    ),
    "sounds an unknown source": (
        ["sounds", "gm-kazoo", "--out-dir", "sounds"],
        "unknown source 'gm-kazoo'",
    ),
    # numbers out of range (argparse's own errors are one line too)
    "sounds --note 300": (
        ["sounds", "gm-piano", "--out-dir", "sounds", "--note", "300"],
        "--note: must be 0..127, got 300",
    ),
    "sounds --velocity 0": (
        ["sounds", "gm-piano", "--out-dir", "sounds", "--velocity", "0"],
        "--velocity: must be 1..127, got 0",
    ),
    "dataset build --limit -5": (
        [
            "dataset",
            "build",
            "--db",
            "p.sqlite",
            "--config",
            "smoke",
            "--out",
            "ds",
            "--limit",
            "-5",
        ],  # fmt: skip
        "--limit: must be >= 0, got -5",
    ),
    "train --epochs 0": (
        ["train", "--config", "smoke", "--data", "adir", "--out", "run", "--epochs", "0"],
        "--epochs: must be >= 1, got 0",
    ),
    "program --candidates 0": (
        ["program", "tone.wav", "--out-dir", "out", "--candidates", "0"],
        "--candidates must be at least 1",
    ),
    "program one key per input without --together": (
        ["program", "tone.wav", "--out-dir", "out", "--note", "48,60"],
        "--note: one value, or with --together one per input (1), got 2",
    ),
    "program --note not a key": (
        ["program", "tone.wav", "--out-dir", "out", "--note", "C4"],
        "not a MIDI note or auto: 'C4'",
    ),
    "program --hold 0": (
        ["program", "tone.wav", "--out-dir", "out", "--hold", "0"],
        "--hold must be 0..60 s, got 0.0",
    ),
    "program --variants 40": (
        ["program", "tone.wav", "--out-dir", "out", "--variants", "40"],
        "--variants must be 0..32, got 40",
    ),
    "a missing subcommand": ([], "required: command"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line(work, case):
    args, message = CASES[case]
    if any("UNWRITABLE" in a for a in args):
        ro = str(unwritable_folder(work))
        args = [a.replace("UNWRITABLE", ro) for a in args]
    before = snapshot(work)
    proc = run(args, work)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("companion") and " error: " in lines[0]
    assert message in lines[0]
    assert snapshot(work) == before  # no output, no temporary, no empty folder


def test_ship_refuses_a_dataset_of_other_spectrograms(work, smoke_run, model_copies):
    data, _ = smoke_run  # the smoke config; the shipped model was trained on another
    before = snapshot(work)
    proc = run(["ship", "--run", model_copies / "whole", "--data", data, "--out", "m"], work)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"companion: error: {model_copies / 'whole'}: trained on other spectrograms than {data}"
    ]
    assert snapshot(work) == before


def test_closed_pipe_is_quiet(fixture_db, tmp_path):
    """`companion presets info ... | head -1`: the reader goes away before the output comes."""
    proc = subprocess.Popen([*COMPANION, "presets", "info", "--db", str(fixture_db), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()  # before the command writes: its write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait() == 1
    assert err == ""


def test_version():
    from importlib.metadata import version

    proc = subprocess.run([*COMPANION, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"companion {version('companion')}"


@pytest.mark.parametrize("command", ["dataset build", "train"])
def test_interrupt_says_how_to_go_on(command, fixture_db, smoke_run, tmp_path):
    """Ctrl-C (SIGINT) in the middle of the work: status 130 and a last line that fits the
    command, not a traceback."""
    out = tmp_path / "out"
    if command == "dataset build":
        args = ["dataset", "build", "--db", fixture_db, "--config", "smoke", "--out", out,
                "--processes", "1"]  # fmt: skip
        expected = "run the same `dataset build` again to continue where it stopped"
    else:
        args = ["train", "--config", "smoke", "--data", smoke_run[0], "--out", out,
                "--epochs", "50"]  # fmt: skip
        expected = "`companion train --resume` with the same arguments continues"
    proc = subprocess.Popen([*COMPANION, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())):  # the work has begun
        assert proc.poll() is None and time.monotonic() < deadline, "it ended before the signal"
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"companion: interrupted; {expected}")


def test_make_reproduce_without_cartridges(tmp_path):
    """`make reproduce` with no cartridge folder stops at once, in one line, before the
    set-up and the notebooks (which would fail deep inside notebook 01)."""
    root = Path(__file__).parents[1]
    env = {k: v for k, v in os.environ.items() if k != "COMPANION_CARTRIDGES"}
    proc = subprocess.run(["make", "-C", str(root), "--no-print-directory", "reproduce",
                           f"CARTRIDGES={tmp_path / 'nowhere'}", f"DATA={tmp_path / 'data'}",
                           f"NOTEBOOKS_OUT={tmp_path / 'nb'}"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and f"CARTRIDGES='{tmp_path / 'nowhere'}' is not a folder" in lines[0]
    assert list(tmp_path.iterdir()) == []
