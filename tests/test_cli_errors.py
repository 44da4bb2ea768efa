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
    "program a device as input": (
        ["program", "/dev/zero", "--out-dir", "out"],
        "/dev/zero: not a regular file (a device or a pipe)",
    ),
    "render a device": (
        ["render", "/dev/zero", "-o", "x.wav"],
        "/dev/zero: not a regular file (a device or a pipe)",
    ),
    "interpolate a device": (
        ["interpolate", "/dev/zero", "two.syx", "--naive", "--out-dir", "path"],
        "/dev/zero: not a regular file (a device or a pipe)",
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
        # six notes a voice: ~6 s of work, so the signal comes in the middle of it (with one
        # note the build could end first and the signal meet the interpreter's exit)
        args = ["dataset", "build", "--db", fixture_db, "--config", "smoke", "--out", out,
                "--processes", "1", "--notes", "six"]  # fmt: skip
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


def test_interrupt_inside_compiled_code_still_exits_130(tmp_path, fixture_db):
    """Ctrl-C that lands while code made by exec() of a string runs (numba compiles that way;
    CPython then marks the interrupt unhandled and would end the process by SIGINT, status -2,
    after our message): the status is still 130."""
    (tmp_path / "slow_info.py").write_text(
        "import sys\nfrom companion import cli\n"
        "cli._presets_info = lambda args: exec('import time\\nwhile True: time.sleep(0.01)')\n"
        "if __name__ == '__main__':\n"
        f"    sys.exit(cli.main(['presets', 'info', '--db', {str(fixture_db)!r}]))\n")
    proc = subprocess.Popen([sys.executable, "-m", "slow_info"], cwd=tmp_path, text=True,
                            stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and err.startswith("companion: interrupted; "), err


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


# --- a command never writes over what it reads --------------------------------------------


@pytest.fixture
def owned(work, model_copies) -> Path:
    """The `work` folder with what a user owns beside it: a cartridge folder, a model folder,
    a dataset folder, and the inputs of an interpolation in its own output folder."""
    (work / "carts").mkdir()
    shutil.copy(work / "two.syx", work / "carts" / "a.syx")
    shutil.copytree(model_copies / "whole", work / "model")
    (work / "ds").mkdir()
    (work / "ds" / "config.yaml").write_text("name: smoke\n")
    (work / "d").mkdir()
    shutil.copy(work / "two.syx", work / "d" / "step1.syx")
    shutil.copy(work / "two.syx", work / "d" / "path.syx")
    (work / "o").mkdir()
    return work


LINKS = ("the same path", "a symbolic link", "a hard link")

# (argv with OUT where the output goes, the input OUT is or links to, where OUT is made)
READ_CASES = {
    "presets export -o its database": (
        ["presets", "export", "--db", "p.sqlite", "--split", "train", "--limit", "32", "-o",
         "OUT"],
        "p.sqlite", "x.sqlite"),
    "presets build --db one of its cartridges": (
        ["presets", "build", "--cartridges", "carts", "--db", "OUT"], "carts/a.syx", "x.syx"),
    "render -o its .syx": (["render", "two.syx", "-o", "OUT"], "two.syx", "x.wav"),
    "interpolate over its inputs": (
        ["interpolate", "d/step1.syx", "d/path.syx", "--naive", "--out-dir", "OUT"],
        "d/step1.syx", "e/step1.syx"),
    "generate -o a file of its model": (
        ["generate", "--model", "model", "-o", "OUT"], "model/model.yaml", "x.syx"),
    "program over its library": (
        ["program", "tone.wav", "--library", "p.sqlite", "--overwrite", "--out-dir", "o",
         "--candidates", "1", "--quality", "fast", "--note", "60"],  # fmt: skip
        "p.sqlite", "o/tone.syx"),
    "program over its model": (
        ["program", "tone.wav", "--model", "model", "--overwrite", "--out-dir", "o"],
        "model/model.yaml", "o/tone.syx"),
}


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("case", list(READ_CASES))
def test_an_output_is_never_an_input(owned, case, link):
    """Every writing subcommand, its output on one of its inputs (the path itself, or a link
    to it): refused in one line before any work, the input intact, nothing written."""
    args, victim, made = READ_CASES[case]
    victim = owned / victim
    if link == "the same path":
        if case.startswith(("render", "program")):  # render: a .syx is not an audio name;
            return  # program: it chooses its names (tested in test_program); links below
        out = victim
    else:
        out = owned / made
        out.parent.mkdir(exist_ok=True)
        (os.symlink if link == "a symbolic link" else os.link)(victim, out)
    if case.startswith("interpolate"):
        target = owned / "d" if link == "the same path" else out.parent
        args = [str(target) if a == "OUT" else a for a in args]
    else:
        args = [str(out) if a == "OUT" else a for a in args]
    before, content = snapshot(owned), victim.read_bytes()
    proc = run(args, owned)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "which this command reads" in lines[0] or (
        "this command reads it" in lines[0]), proc.stderr
    assert victim.read_bytes() == content and snapshot(owned) == before


@pytest.mark.parametrize("args, folder", [
    (["train", "--config", "smoke", "--data", "ds", "--out", "ds"], "ds"),
    (["evaluate", "--run", "model", "--data", "ds", "--out", "model"], "model"),
    (["evaluate", "--data", "ds", "--out", "ds"], "ds"),
    (["evaluate-latent", "--run", "model", "--data", "ds", "--out", "model"], "model"),
    (["evaluate-ood", "--run", "model", "--data", "ds", "--out-dir", "o", "--out", "ds"], "ds"),
    (["ship", "--run", "model", "--data", "ds", "--out", "model"], "model"),
    (["program", "tone.wav", "--model", "model", "--out-dir", "model"], "model"),
    (["program", "tone.wav", "--library", "carts", "--out-dir", "carts"], "carts"),
])  # fmt: skip
def test_an_output_folder_is_never_an_input_folder(owned, args, folder):
    before = snapshot(owned)
    proc = run(args, owned)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"companion: error: {folder}: is the folder this command reads "
        f"(--{args[args.index(folder) - 1].lstrip('-')}); write its outputs elsewhere"
    ], proc.stderr
    assert snapshot(owned) == before


def test_ship_never_replaces_a_folder_holding_its_run(owned):
    """ship replaces its --out folder whole: a folder that holds the run is refused."""
    before = snapshot(owned)
    proc = run(["ship", "--run", "model", "--data", "ds", "--out", "."], owned)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "holds model" in proc.stderr and "which this command reads" in proc.stderr
    assert snapshot(owned) == before


# --- a full disk ----------------------------------------------------------------------------

# Where a tmpfs cannot be mounted (not root, no CAP_SYS_ADMIN), a full disk is simulated: every
# file written through companion.io counts against FAKE_DISK_BYTES and the write past it fails
# with ENOSPC. Here and in CI (root) the real file system is used; the test says which ran.
_FAKE_DISK = """
import errno, os, sys
import companion.io as io
left, real, disk = [int(os.environ["FAKE_DISK_BYTES"])], io._fsync, os.environ["FAKE_DISK"]
def fsync(path):
    if str(path).startswith(disk):
        left[0] -= os.path.getsize(path)
        if left[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real(path)
io._fsync = fsync
from companion.cli import main
sys.exit(main())
"""


class Disk:
    """A folder on a file system of ``size`` bytes: a tmpfs, or the simulation above."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size
        path.mkdir()
        self.real = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                    str(path)], capture_output=True).returncode == 0  # fmt: skip
        if not self.real and os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail("CI runs as root: a tmpfs must mount there")

    def run(self, args, cwd: Path) -> subprocess.CompletedProcess:
        if self.real:
            return run(args, cwd)
        env = {**os.environ, "FAKE_DISK_BYTES": str(self.size), "FAKE_DISK": str(self.path)}
        return subprocess.run([sys.executable, "-c", _FAKE_DISK, *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, env=env)  # fmt: skip

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir())

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path):
    disks = []

    def make(size: int) -> Disk:
        disks.append(Disk(tmp_path / f"disk{len(disks)}", size))
        return disks[-1]

    yield make
    for d in disks:
        d.close()


def _full_line(proc, path: Path) -> None:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines() == [f"companion: error: {path}: no space left on device"]


def test_full_disk_export_writes_all_banks_or_none(work, disk):
    d = disk(12 * 1024)  # the first 4,104-byte bank fits, the second does not
    proc = d.run(["presets", "export", "--db", "p.sqlite", "--split", "train", "-o",
                  d.path / "x.syx"], work)  # fmt: skip
    _full_line(proc, d.path / "x-002.syx")
    assert d.files() == []


@pytest.mark.parametrize("command", ["generate", "render"])
def test_full_disk_one_file(work, disk, command):
    d = disk(4 * 1024)
    out = d.path / ("new.syx" if command == "generate" else "c4.wav")
    args = ["generate", "-o", out] if command == "generate" else ["render", "two.syx", "-o", out]
    _full_line(d.run(args, work), out)
    assert d.files() == []


def test_full_disk_index(work, disk, fixture_db):
    """The index cannot be written beside its database: one line, from `index build` (also
    with --force) and from `program --library`."""
    d = disk(fixture_db.stat().st_size + 16 * 1024)
    shutil.copy(fixture_db, d.path / "p.sqlite")
    index = d.path / "p.index.npz"
    for args in (["index", "build", "--db", d.path / "p.sqlite", "--processes", "1"],
                 ["index", "build", "--db", d.path / "p.sqlite", "--force"],
                 ["program", "tone.wav", "--out-dir", "o", "--library", d.path / "p.sqlite",
                  "--quality", "fast", "--note", "60"]):  # fmt: skip
        proc = d.run(args, work)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.splitlines()[-1] == f"companion: error: {index}: no space left on device"
        assert len([x for x in proc.stderr.splitlines() if x.startswith("companion: error")]) == 1
        assert d.files() == ["p.sqlite"]


def test_full_disk_program_keeps_what_is_done(work, disk):
    """Two inputs, room for the outputs of one: the first is written and reported, the second
    is one line, none of its files is left (its .syx was written before its .wav failed)."""
    shutil.copy(work / "tone.wav", work / "tone2.wav")
    args = ["--wav", "--quality", "fast", "--candidates", "1", "--note", "60"]
    proc = run(["program", "tone.wav", "--out-dir", "sized", *args], work)
    assert proc.returncode == 0, proc.stderr
    size = sum(-(-p.stat().st_size // 4096) * 4096 for p in (work / "sized").iterdir())
    d = disk(size * 3 // 2)
    proc = d.run(["program", "tone.wav", "tone2.wav", "--out-dir", d.path, *args], work)
    _full_line(proc, d.path / "tone2.wav")
    assert len(proc.stdout.splitlines()) == 1 and "tone.syx" in proc.stdout
    assert d.files() == ["tone.syx", "tone.wav"]


# --- signals --------------------------------------------------------------------------------


def _start(args, cwd=None) -> subprocess.Popen:
    """The command in a process group of its own, as a shell runs it (Ctrl-C goes to all)."""
    return subprocess.Popen([*COMPANION, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def _ours(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (a forked worker keeps its parent's)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


@pytest.fixture(scope="module")
def pool_db(tmp_path_factory) -> Path:
    """A database of 2,048 random voices: its index build keeps 2 workers busy for seconds, so
    that a signal lands while they render (the 120 fixture voices take under a second)."""
    from companion.dx7.sysex import bank_message

    from .conftest import random_voice

    root = tmp_path_factory.mktemp("pool-cartridges")
    rng = np.random.default_rng(7)
    for b in range(64):
        voices = [random_voice(rng, f"P{b:02d} {i:02d}") for i in range(32)]
        (root / f"bank{b:02d}.syx").write_bytes(bank_message(voices))
    db = tmp_path_factory.mktemp("pool-db") / "p.sqlite"
    presets.build(root, db, progress=False)
    return db


def _building(db: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`index build` of a copy of ``db`` over 2 workers, returned once the workers render."""
    copy = tmp_path / "building" / "p.sqlite"
    copy.parent.mkdir()
    shutil.copy(db, copy)
    proc = _start(["index", "build", "--db", copy, "--processes", "2"])
    deadline = time.monotonic() + 60
    while len(_ours(str(copy))) < 3:  # the command and its 2 workers
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(0.5)
    return proc, copy


@pytest.mark.parametrize("sig, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])  # fmt: skip
def test_signal_to_the_group_during_a_pool(pool_db, tmp_path, sig, status, word):
    """Ctrl-C (SIGINT to the whole group: the workers get it too) or SIGTERM while the index
    is built over 2 worker processes: one last line, no worker's traceback, the status."""
    proc, db = _building(pool_db, tmp_path)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == status, err
    lines = err.splitlines()
    assert "Traceback" not in err and not any("ForkPoolWorker" in x for x in lines), err
    assert lines[-1].startswith(f"companion: {word}; ")
    assert not db.with_name("p.index.npz").exists()


def test_kill_9_leaves_no_workers(pool_db, tmp_path):
    """`kill -9` of a command with workers: they exit with it, silently."""
    proc, db = _building(pool_db, tmp_path)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while _ours(str(db)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(str(db)) == []
    assert proc.stderr.read().count("Traceback") == 0


def test_interrupted_program_reports_exactly_what_is_on_disk(work):
    """Ctrl-C while a batch is written (.syx, .wav, .png each): every input reported above the
    last line has all its files, and no other file is there."""
    for i in range(6):
        shutil.copy(work / "tone.wav", work / f"t{i}.wav")
    out = work / "out"
    proc = _start(["program", *[f"t{i}.wav" for i in range(6)], "--out-dir", out, "--wav",
                   "--png", "--quality", "fast", "--candidates", "1", "--note", "60"],
                  cwd=work)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "t0.syx").exists():  # not its temporary, .t0.*.tmp.syx
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.splitlines()[-1].startswith("companion: interrupted; the voices printed")
    reported = {f"t{i}" for i in range(6) if f"t{i}.syx" in stdout}
    assert reported  # the first was on disk before the signal
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}{end}" for name in reported for end in (".syx", ".wav", ".png"))


def test_a_batch_goes_on_past_inputs_too_short(work):
    """1- and 10-sample inputs: a line each naming the file; the others are programmed."""
    sf.write(work / "one.wav", np.full(1, 0.5, np.float32), 22050)
    sf.write(work / "ten.wav", np.full(10, 0.5, np.float32), 22050)
    proc = run(["program", "one.wav", "ten.wav", "tone.wav", "--out-dir", "out", "--quality",
                "fast", "--candidates", "1", "--note", "60"], work)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == 2 and "one.wav" in errors[0] and "ten.wav" in errors[1], proc.stderr
    assert "tone.syx" in proc.stdout and (work / "out" / "tone.syx").is_file()


# --- smaller: one line, or one line of warning -------------------------------------------


def _cli(args, cwd) -> tuple[int, list[str], str]:
    proc = run(args, cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr.splitlines(), proc.stdout


def test_index_damaged_is_rebuilt(work):
    """A truncated or foreign .index.npz is stale: said in a line, built again, used."""
    assert run(["index", "build", "--db", "p.sqlite", "--processes", "1"], work).returncode == 0
    index = work / "p.index.npz"
    whole = index.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"PK\x03\x04 not a zip"):
        index.write_bytes(damaged)
        code, err, out = _cli(["index", "build", "--db", "p.sqlite", "--processes", "1"], work)
        assert code == 0 and "unreadable, damaged or truncated (BadZipFile)" in err[0], err
        assert "p.index.npz: 120 voices" in out  # built again, whole (its bytes may differ)
        with np.load(index) as f:
            assert "meta" in f.files
    index.write_bytes(whole[:1000])
    code, err, out = _cli(["program", "tone.wav", "--out-dir", "o", "--library", "p.sqlite",
                           "--quality", "fast", "--note", "60"], work)  # fmt: skip
    assert code == 0 and "unreadable" in err[0] and "tone.syx" in out, err


def test_library_of_no_voices_names_the_folder(work, tmp_path):
    (work / "rnd").mkdir()
    for i in range(3):
        (work / "rnd" / f"r{i}.syx").write_bytes(np.random.default_rng(i).bytes(5000))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([*COMPANION, "program", "tone.wav", "--library", "rnd", "--out-dir",
                           "o"], cwd=work, capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "companion: error: rnd: no readable DX7 voice in its 3 .syx files")


def test_render_odd_syx_files(work, fixture_voices):
    from companion.dx7.sysex import pack_voice, single_voice_message

    code, err, _ = _cli(["render", "tone.wav", "-o", "x.wav"], work)  # an audio file
    assert code == 1 and err == [
        "companion: error: tone.wav: not a .syx file (no DX7 voice data; it looks like a WAV "
        "audio file)"]
    data = b"".join(pack_voice(v) for v in fixture_voices[:31])
    short = bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00]) + data + bytes([-sum(data) & 0x7F, 0xF7])
    (work / "short.syx").write_bytes(short)
    code, err, out = _cli(["render", "short.syx", "--index", "30", "-o", "x.wav"], work)
    assert code == 0 and err == [
        "companion: warning: short.syx: bank at byte 0: holds 31 voices, a bank has 32"], err
    bad = bytearray(single_voice_message(fixture_voices[5]))
    bad[-2] = (bad[-2] + 1) & 0x7F
    (work / "bad.syx").write_bytes(bytes(bad))
    code, err, out = _cli(["render", "bad.syx", "-o", "y.wav"], work)
    assert code == 0 and len(err) == 1 and err[0].startswith("companion: warning: bad.syx: ")
    assert "checksum" in err[0] and (work / "y.wav").is_file()


def test_odd_audio_gets_a_warning(work):
    t = np.arange(22050 * 2) / 22050
    x = 0.3 * np.sin(2 * np.pi * 261.6 * t)
    sf.write(work / "cancel.wav", np.stack([x, -x], 1), 22050)
    sf.write(work / "quiet.wav", x * 10 ** (-90 / 20) / 0.3, 22050, subtype="FLOAT")
    args = ["--out-dir", "o", "--quality", "fast", "--candidates", "1", "--note", "60"]
    code, err, out = _cli(["program", "cancel.wav", "quiet.wav", "tone.wav", *args], work)
    assert code == 0 and len(err) == 2, err
    assert err[0].startswith("companion: warning: cancel.wav: its 2 channels cancel")
    assert err[1].startswith("companion: warning: quiet.wav: nearly silent (peak -90 dBFS)")
    assert len(out.splitlines()) == 3


def test_dash_file_name_hints_double_dash(work):
    shutil.copy(work / "tone.wav", work / "-dash.wav")
    code, err, _ = _cli(["program", "-dash.wav", "--out-dir", "o"], work)
    assert code == 2 and len(err) == 1 and "a file named -dash.wav? put -- before it" in err[0]


def test_presets_build_is_quiet_when_not_a_terminal(work, cartridges):
    code, err, out = _cli(["presets", "build", "--cartridges", cartridges[0], "--db", "q.sqlite"],
                          work)  # fmt: skip
    assert code == 0 and err == [] and "q.sqlite" in out
