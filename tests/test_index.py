"""The retrieval index on a fixture database (the project's own cartridge writer, the real
Dexed engine, a real SQLite file)."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from companion import cli
from companion.data import presets
from companion.data.render import Play, Renderer
from companion.dx7.voice import INIT_VOICE
from companion.matching.index import NO_PITCH, SUFFIX, Index, fit_pca, index_path, offset_groups

SAME = 0.01  # RMS log10 units (0.1 dB): a voice's own render against its stored coordinates


@pytest.fixture(scope="module")
def built(fixture_db, tmp_path_factory):
    """A copy of the fixture database with its index built beside it."""
    db = tmp_path_factory.mktemp("index") / "presets.sqlite"
    shutil.copyfile(fixture_db, db)
    return db, Index.open(db)


@pytest.fixture(scope="module")
def renders(built):
    db, _ = built
    renderer = Renderer()
    return {vid: renderer.render(v, 60, 85) for vid, v in presets.load(db)}


def test_index_beside_database(built):
    db, index = built
    assert index.path == db.with_name("presets" + SUFFIX) == index_path(db)
    assert len(index) == presets.info(db)["unique_voices"]
    assert sorted(index.ids.tolist()) == [vid for vid, _ in presets.load(db)]
    assert index.meta["note"] == 60 and index.meta["velocity"] == 85


def test_every_voice_finds_itself(built, renders):
    """A voice's render at the library's own key and velocity is its stored start: it comes
    first, at that key and velocity (voices that sound the same tie: those whose first
    0.37 s is silent, a slow attack's, all do)."""
    _, index = built
    first = heard = 0
    for vid, audio in renders.items():
        if np.abs(audio[:8192]).max() < 1e-3:
            continue
        heard += 1
        hits = index.query(audio, len(index))
        assert hits[0].distance < SAME, (vid, hits[:5])
        ties = {h.id: h for h in hits if h.distance < SAME}
        assert vid in ties, (vid, hits[:5])
        assert (ties[vid].key, ties[vid].velocity) == (60, 85)
        first += hits[0].id == vid
    assert heard >= 0.5 * len(renders) and first >= 0.9 * heard


def test_distances_sorted_and_k(built, renders):
    _, index = built
    audio = next(a for a in renders.values() if np.abs(a).max() > 1e-3)
    hits = index.query(audio, 10)
    assert len(hits) == 10
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    # a sound without a pitch: every voice, at every grid key, each once
    hits = index.near(audio, Play(), [], 10_000)
    assert len(hits) == len({h.id for h in hits}) == len(index)


def test_split_restricts(built, renders):
    db, index = built
    con = sqlite3.connect(db)
    split_of = dict(con.execute("SELECT id, split FROM voices"))
    con.close()
    n_train = sum(s == "train" for s in split_of.values())
    for audio in list(renders.values())[:20]:
        hits = index.near(audio, Play(), [], len(index), split="train")  # every voice, key
        assert len(hits) == n_train
        assert {split_of[h.id] for h in hits} == {"train"}
    with pytest.raises(ValueError, match="unknown split"):
        index.query(audio, 3, split="holdout")


def test_exclude_ids(built, renders):
    _, index = built
    vid, audio = next((i, a) for i, a in renders.items() if index.query(a, 1)[0].id == i)
    hits = index.query(audio, 5, exclude_ids=[vid])
    assert vid not in [h.id for h in hits] and len(hits) == 5
    assert hits == [h for h in index.query(audio, 6) if h.id != vid]


def test_voices_from_database(built):
    db, index = built
    ids = [int(index.ids[3]), int(index.ids[0])]
    assert [v.params for v in index.voices(ids)] == [
        v.params for v in (dict(presets.load(db))[i] for i in ids)
    ]


def test_pitch_offsets_are_the_voices_own(built, tmp_path):
    """Every voice's pitch is read where the library plays it: INIT VOICE sounds its key, a
    voice transposed an octave down 12 semitones below it, one with a ratio of 3 19 above;
    rows are sorted by offset, voices without a pitch last."""
    from companion.dx7.sysex import single_voice_message

    voices = [INIT_VOICE, INIT_VOICE.replace(transpose=12), INIT_VOICE.replace(op1_coarse=3)]
    (tmp_path / "carts").mkdir()
    for k, v in enumerate(voices):
        (tmp_path / "carts" / f"{k}.syx").write_bytes(single_voice_message(v))
    db = tmp_path / "designed.sqlite"
    presets.build(tmp_path / "carts", db, progress=False)
    index = Index.open(db)
    offsets = {v.params: index.offsets[k] for k, v in enumerate(index.voices(index.ids))}
    assert [round(float(offsets[v.params]), 1) for v in voices] == [0.0, -12.0, 19.0]
    _, fixture = built
    groups = offset_groups(fixture.offsets)
    assert (np.diff(groups) >= 0).all()  # sorted: the voices at one key are a few slices
    assert (groups[np.isnan(fixture.offsets)] == NO_PITCH).all()


def test_a_start_warped_to_the_grid_is_near_the_voice_there():
    """A note played 3 semitones above a grid key, its frequencies warped down by 3
    semitones, comes much nearer to the voice's start at the grid key than unwarped."""
    from companion.matching.index import embed_start, start_power

    r = Renderer()
    organ = INIT_VOICE.replace(op2_output_level=70, op2_coarse=2, algorithm=0)
    at60 = embed_start(start_power(r.render(organ, 60)))
    up = start_power(r.render(organ, 63))

    def rms(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2)))

    assert rms(embed_start(up, 2 ** (-3 / 12)), at60) < 0.3 * rms(embed_start(up), at60)


def test_pca_of_many_voices_keeps_their_distances():
    """The projection keeps the directions the features span (synthetic features of rank 40
    in 500 dimensions, 300 voices, 200 of them fitted, up to 60 components asked for): their
    distances are kept, and no direction they lack is."""
    rng = np.random.default_rng(0)
    features = (rng.standard_normal((300, 40)) @ rng.standard_normal((40, 500))).astype(np.float32)
    mean, comps = fit_pca(features, k=60, fit=200)
    assert comps.shape == (40, 500)
    np.testing.assert_allclose(comps @ comps.T, np.eye(40), atol=1e-4)
    coords = (features - mean) @ comps.T
    d_full = np.linalg.norm(features[:50, None] - features[None, :50], axis=-1)
    d_proj = np.linalg.norm(coords[:50, None] - coords[None, :50], axis=-1)
    np.testing.assert_allclose(d_proj, d_full, rtol=1e-3, atol=1e-3)


def test_written_atomically(built):
    db, index = built
    left = [p.name for p in db.parent.iterdir() if p.name.startswith(".")]
    assert left == []
    reopened = Index.open(db, build=False)
    np.testing.assert_array_equal(reopened.coords, index.coords)


def test_stale_index_is_rebuilt(cartridges, tmp_path, capsys):
    root, _ = cartridges
    db = tmp_path / "presets.sqlite"
    presets.build(root, db, progress=False)
    first = Index.open(db)
    assert "building the retrieval index" in capsys.readouterr().err
    Index.open(db)
    assert capsys.readouterr().err == ""  # up to date: no rebuild

    # the database changes at the same path: one voice gone
    con = sqlite3.connect(db)
    con.execute("DELETE FROM sources WHERE voice_id = (SELECT MAX(id) FROM voices)")
    con.execute("DELETE FROM voices WHERE id = (SELECT MAX(id) FROM voices)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="stale: database changed"):
        Index.open(db, build=False)
    second = Index.open(db)
    assert "database changed" in capsys.readouterr().err
    assert len(second) == len(first) - 1
    assert Index.open(db, build=False).meta["db_hash"] == second.meta["db_hash"]

    third = Index.open(db, velocity=100)  # another velocity: stale too
    assert "velocity 85 -> 100" in capsys.readouterr().err
    assert third.velocity == 100
    assert not np.array_equal(third.coords, second.coords)


def test_damaged_index_is_rebuilt(fixture_db, tmp_path, capsys):
    db = tmp_path / "presets.sqlite"
    shutil.copyfile(fixture_db, db)
    index_path(db).write_bytes(b"not an index")
    with pytest.raises(ValueError, match="unreadable"):
        Index.open(db, build=False)
    assert len(Index.open(db, processes=1)) == presets.info(db)["unique_voices"]
    assert "unreadable" in capsys.readouterr().err


def test_bad_database(tmp_path):
    with pytest.raises(ValueError, match="preset database not found"):
        Index.open(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"x" * 200)
    with pytest.raises(ValueError, match="not a preset database"):
        Index.open(junk)
    with pytest.raises(ValueError, match="note must be"):
        Index.open(junk, note=200)


def test_cartridge_folder(cartridges, tmp_path, monkeypatch, capsys):
    root, expected = cartridges
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index = Index.open(root)
    assert len(index) == expected["unique"]
    assert index.db.is_relative_to(tmp_path / "cache")
    assert "reading the cartridges" in capsys.readouterr().err
    again = Index.open(root)
    assert capsys.readouterr().err == "" and len(again) == len(index)


def test_cli_index_build(fixture_db, tmp_path, capsys):
    db = tmp_path / "presets.sqlite"
    shutil.copyfile(fixture_db, db)
    assert cli.main(["index", "build", "--db", str(db), "--processes", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{presets.info(db)['unique_voices']} voices" in out and "MB" in out
    assert index_path(db).is_file()
    assert cli.main(["index", "build", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "companion: error:" in capsys.readouterr().err
