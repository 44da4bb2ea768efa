import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from companion.data import presets
from companion.dx7.sysex import bank_message, parse_syx, read_voices
from companion.dx7.voice import INIT_VOICE

from .conftest import packed_data, random_voice


def dump(db):
    con = sqlite3.connect(db)
    tables = {
        t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
        for t in ("voices", "sources", "files", "skipped", "warnings")
    }
    con.close()
    return tables


def test_counts(fixture_db, cartridges):
    expected = cartridges[1]
    info = presets.info(fixture_db)
    assert info["unique_voices"] == expected["unique"]
    assert info["readable_voices"] == expected["readable"]
    assert info["skipped_voices"] == expected["skipped"]
    assert info["skipped_reasons"] == {"op6_eg_rate1 out of range": 1}
    assert info["files"] == expected["files"]
    assert info["files_without_voices"] == expected["files_without_voices"]
    assert sum(info["splits"].values()) == expected["unique"]
    assert info["families"] == {"Brass": 32}


def test_rows_keep_every_name_and_source(fixture_db, cartridges):
    con = sqlite3.connect(fixture_db)
    renamed = cartridges[1]["bank_a"][0]
    vid, name, n = con.execute(
        "SELECT id, name, n_sources FROM voices WHERE params = ?", (renamed.params,)
    ).fetchone()
    names = sorted(r[0] for r in con.execute("SELECT name FROM sources WHERE voice_id=?", (vid,)))
    # Two names, one each: the first seen wins (files in path order, "BANK_B" before "bank_a").
    assert n == 2 and names == ["A 00      ", "RENAMED 0 "] and name == "RENAMED 0 "
    brass = cartridges[1]["brass"][0]
    files = {
        r[0]
        for r in con.execute(
            "SELECT s.file FROM sources s JOIN voices v ON v.id = s.voice_id WHERE v.params = ?",
            (brass.params,),
        )
    }
    assert files == {"!Instruments/Brass/brass.syx", "headerless.syx"}
    assert con.execute("SELECT file, position, param, value FROM skipped").fetchall() == [
        ("corrupt.syx", 3, "op6_eg_rate1", 120)
    ]


def test_build_is_idempotent_and_split_stable(cartridges, fixture_db, tmp_path):
    again = tmp_path / "again.sqlite"
    presets.build(cartridges[0], again, progress=False)
    assert dump(again) == dump(fixture_db)
    # Add a cartridge that sorts first: ids move, splits do not.
    root = tmp_path / "more"
    shutil.copytree(cartridges[0], root)
    import numpy as np

    rng = np.random.default_rng(99)
    new = [random_voice(rng, f"NEW {i}") for i in range(32)]
    (root / "0_first.syx").write_bytes(bank_message(new))
    bigger = tmp_path / "bigger.sqlite"
    presets.build(root, bigger, progress=False)
    before = {
        r[0]: r[1] for r in sqlite3.connect(fixture_db).execute("SELECT hash, split FROM voices")
    }
    after = {r[0]: r[1] for r in sqlite3.connect(bigger).execute("SELECT hash, split FROM voices")}
    assert len(after) == len(before) + 32
    assert all(after[h] == s for h, s in before.items())


def test_split_proportions_follow_the_hash():
    import numpy as np

    rng = np.random.default_rng(3)
    splits = [presets.split_of(random_voice(rng).params) for _ in range(3000)]
    share = {s: splits.count(s) / len(splits) for s in presets.SPLITS}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.02


def test_failed_build_leaves_no_file(tmp_path):
    db = tmp_path / "p.sqlite"
    with pytest.raises(ValueError, match="cartridge folder not found"):
        presets.build(tmp_path / "nope", db)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .syx files"):
        presets.build(tmp_path / "empty", db)
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"]


def test_cartridges_from_environment(cartridges, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CARTRIDGES", str(cartridges[0]))
    assert presets.build(None, tmp_path / "env.sqlite", progress=False)["unique_voices"] == 120
    monkeypatch.delenv("COMPANION_CARTRIDGES")
    with pytest.raises(ValueError, match="COMPANION_CARTRIDGES"):
        presets.build(None, tmp_path / "x.sqlite")


def test_export_banks(fixture_db, tmp_path):
    rows = presets.load(fixture_db, limit=40)
    paths = presets.export([v for _, v in rows], tmp_path / "out.syx")
    assert [p.name for p in paths] == ["out-001.syx", "out-002.syx"]
    back = read_voices(paths[0]) + read_voices(paths[1])
    assert back[:40] == [v for _, v in rows] and back[40:] == [INIT_VOICE] * 24
    one = presets.export([rows[0][1]], tmp_path / "one.syx")
    assert [p.name for p in one] == ["one.syx"] and len(parse_syx(one[0].read_bytes()).voices) == 32


def test_load_by_split_and_ids(fixture_db):
    test = presets.load(fixture_db, split="test")
    assert test and all(presets.split_of(v.params) == "test" for _, v in test)
    picked = presets.load(fixture_db, ids=[5, 2])
    assert [i for i, _ in picked] == [5, 2]
    with pytest.raises(ValueError, match="no voice with id 99999"):
        presets.load(fixture_db, ids=[99999])
    with pytest.raises(ValueError, match="unknown split"):
        presets.load(fixture_db, split="dev")


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a preset database"):
        presets.info(bad)
    with pytest.raises(ValueError, match="not found"):
        presets.info(tmp_path / "missing.sqlite")


def test_checksum_flag_is_recorded_per_message(tmp_path):
    # One file, a good bank then a bank with a wrong checksum: only the second is flagged.
    rng = np.random.default_rng(7)
    good = [random_voice(rng, f"GOOD {i}") for i in range(32)]
    bad = [random_voice(rng, f"BAD {i}") for i in range(32)]
    broken = bytearray(bank_message(bad))
    broken[-2] ^= 0x01
    root = tmp_path / "carts"
    root.mkdir()
    (root / "two.syx").write_bytes(bank_message(good) + bytes(broken))
    (root / "raw.syx").write_bytes(packed_data(good[:4]))  # headerless: no checksum at all
    db = tmp_path / "p.sqlite"
    summary = presets.build(root, db, progress=False)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT file, position, checksum_ok FROM sources ORDER BY 1, 2").fetchall()
    con.close()
    assert rows == [("raw.syx", i, None) for i in range(4)] + [
        ("two.syx", i, int(i < 32)) for i in range(64)
    ]
    assert summary["checksum_bad_sources"] == 32 and summary["checksum_warnings"] == 1


@pytest.mark.parametrize("name", ["x#1.sqlite", "x?mode=rwc.sqlite", "a#b?c%23.sqlite"])
def test_database_path_with_uri_characters_opens_read_only(fixture_db, tmp_path, name):
    db = tmp_path / name
    shutil.copyfile(fixture_db, db)
    assert presets.info(db)["unique_voices"] == presets.info(fixture_db)["unique_voices"]
    con = presets.connect(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con.execute("CREATE TABLE t(a)")
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no stray "x" or "a"
    built = tmp_path / "built" / name
    presets.build(fixture_db_root(fixture_db), built, progress=False)
    assert presets.info(built)["unique_voices"] == presets.info(fixture_db)["unique_voices"]
    assert [p.name for p in built.parent.iterdir()] == [name]


def fixture_db_root(db) -> str:
    """The cartridge folder a database was built from (its meta table says)."""
    return presets.info(db)["cartridges"]


@pytest.mark.parametrize(
    "content",
    [b"my notes\n", b"", b"SQLite other"],
    ids=["text", "empty", "other-sqlite"],
)
def test_build_refuses_to_replace_a_file_that_is_not_a_preset_database(
    cartridges, tmp_path, content
):
    target = tmp_path / "notes.txt"
    if content == b"SQLite other":  # a real SQLite database, not ours
        con = sqlite3.connect(target)
        con.execute("CREATE TABLE notes(text)")
        con.commit()
        con.close()
        content = target.read_bytes()
    else:
        target.write_bytes(content)
    with pytest.raises(ValueError, match=r"notes.txt: exists and is not a preset database") as e:
        presets.build(cartridges[0], target, progress=False)
    assert "\n" not in str(e.value)
    assert target.read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_build_replaces_a_preset_database_and_refuses_folders(cartridges, fixture_db, tmp_path):
    db = tmp_path / "p.sqlite"
    shutil.copyfile(fixture_db, db)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "cart.syx").write_bytes(bank_message([INIT_VOICE] * 32))
    assert presets.build(tmp_path / "other", db, progress=False)["unique_voices"] == 1
    with pytest.raises(ValueError, match="is a folder"):
        presets.build(cartridges[0], tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="p.sqlite is a file, not a folder"):
        presets.build(cartridges[0], db / "x.sqlite", progress=False)


def test_build_removes_stale_temporaries_of_its_own(cartridges, tmp_path):
    db = tmp_path / "presets.sqlite"
    old = time.time() - 120
    stale = [
        tmp_path / ".presets.sqlite.k3j2x9.tmp",  # what a build killed by SIGKILL left before
        tmp_path / ".presets.a8b7c6.tmp.sqlite",  # companion.io.atomic_path's name
        tmp_path / ".presets.a8b7c6.tmp.sqlite-journal",  # SQLite's journal beside it
    ]
    fresh = tmp_path / ".presets.sqlite.now123.tmp"  # a build running now keeps its file
    other = tmp_path / ".other.sqlite.k3j2x9.tmp"  # another database's: not ours
    for p in [*stale, fresh, other]:
        p.write_bytes(b"half a database")
    for p in [*stale, other]:
        os.utime(p, (old, old))
    presets.build(cartridges[0], db, progress=False)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([db.name, fresh.name, other.name])


def test_build_killed_by_sigkill_leaves_nothing_the_next_build_keeps(cartridges, tmp_path):
    # A real SIGKILL while the temporary database is open: the target is not replaced, and the
    # next build (once the leftover is a minute old) removes the leftover.
    db = tmp_path / "presets.sqlite"
    script = (
        "import os, signal, sqlite3, sys\n"
        "from companion.data import presets\n"
        "real = sqlite3.connect\n"
        "def connect(path, *a, **k):\n"
        "    con = real(path, *a, **k)\n"
        "    if '.tmp' in os.path.basename(str(path)):\n"
        "        con.executescript(presets.SCHEMA)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return con\n"
        "sqlite3.connect = connect\n"
        "presets.build(sys.argv[1], sys.argv[2], progress=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(cartridges[0]), str(db)])
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir()]
    assert left and not db.exists() and all(".tmp" in p.name for p in left)
    for p in left:
        os.utime(p, (time.time() - 120,) * 2)
    presets.build(cartridges[0], db, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [db.name]
