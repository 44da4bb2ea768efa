import shutil
import sqlite3

import pytest

from companion.data import presets
from companion.dx7.sysex import bank_message, parse_syx, read_voices
from companion.dx7.voice import INIT_VOICE

from .conftest import random_voice


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
