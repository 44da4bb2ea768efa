"""The retrieval index on a fixture database (the project's own cartridge writer, the real
Dexed engine, a real SQLite file)."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from companion import cli
from companion.data import presets
from companion.data.render import Renderer
from companion.matching.index import EMBEDDING, SUFFIX, Index, fit_pca, index_path

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
    _, index = built
    first = 0
    for vid, audio in renders.items():
        hits = index.query(audio, 5)
        assert hits[0][1] < SAME, (vid, hits)
        # voices that sound the same (silent ones) tie; the voice itself is among the ties
        ties = {i for i, d in hits if d < SAME}
        assert vid in ties, (vid, hits)
        first += hits[0][0] == vid
    assert first >= 0.9 * len(renders)  # only identical-sounding voices may come first instead


def test_distances_sorted_and_k(built, renders):
    _, index = built
    hits = index.query(next(iter(renders.values())), 10)
    assert len(hits) == 10
    assert [d for _, d in hits] == sorted(d for _, d in hits)
    assert len(index.query(next(iter(renders.values())), 10_000)) == len(index)


def test_split_restricts(built, renders):
    db, index = built
    con = sqlite3.connect(db)
    split_of = dict(con.execute("SELECT id, split FROM voices"))
    con.close()
    n_train = sum(s == "train" for s in split_of.values())
    for audio in list(renders.values())[:20]:
        hits = index.query(audio, len(index), split="train")
        assert len(hits) == n_train
        assert {split_of[i] for i, _ in hits} == {"train"}
    with pytest.raises(ValueError, match="unknown split"):
        index.query(audio, 3, split="holdout")


def test_exclude_ids(built, renders):
    _, index = built
    vid, audio = next((i, a) for i, a in renders.items() if index.query(a, 1)[0][0] == i)
    hits = index.query(audio, 5, exclude_ids=[vid])
    assert vid not in [i for i, _ in hits] and len(hits) == 5
    assert hits == [h for h in index.query(audio, 6) if h[0] != vid]


def test_voices_from_database(built):
    db, index = built
    ids = [int(index.ids[3]), int(index.ids[0])]
    assert [v.params for v in index.voices(ids)] == [
        v.params for v in (dict(presets.load(db))[i] for i in ids)
    ]


def test_embed_pads_short_audio(built, renders):
    _, index = built
    audio = next(iter(renders.values()))
    e = index.embedding(audio)
    assert e.shape == (64 * 173,) == (index.embedding.dim,) and e.dtype == np.float32
    assert index.embed(audio).shape == (index.components.shape[0],)
    padded = np.zeros_like(audio)
    padded[:40000] = audio[:40000]
    np.testing.assert_allclose(index.embed(audio[:40000]), index.embed(padded), atol=1e-4)
    assert index.embedding(np.concatenate([audio, audio])).shape == e.shape  # cut to 4 s


def _exhaustive(features: dict, audio: np.ndarray) -> list[int]:
    """Every voice of ``features`` ({id: full-resolution log-mel}) by L2 distance to
    ``audio``'s, nearest first."""
    e = EMBEDDING(audio)
    d = {vid: float(np.sum((f - e) ** 2)) for vid, f in features.items()}
    return sorted(d, key=lambda vid: (d[vid], vid))


def test_top1_is_the_exhaustive_nearest_voice(built, renders):
    """With fewer voices than components the projection loses nothing: a query's top 1 is the
    voice an exhaustive search over full-resolution log-mel finds (queries: renders of the
    voices at another key, so that they are not in the library)."""
    db, index = built
    con = sqlite3.connect(db)
    train = {i for i, s in con.execute("SELECT id, split FROM voices") if s == "train"}
    con.close()
    features = {vid: EMBEDDING(a) for vid, a in renders.items() if vid in train}
    renderer = Renderer()
    agree = total = 0
    for _, v in list(presets.load(db))[:30]:
        query = renderer.render(v, 62, 85)
        if np.abs(query).max() < 1e-3:
            continue
        truth = _exhaustive(features, query)[0]
        agree += index.query(query, 1, split="train")[0][0] == truth
        total += 1
    assert total >= 20 and agree == total


def test_pca_of_many_voices_keeps_their_distances():
    """More voices than components: the subspace iteration finds the directions they span
    (synthetic features of rank 40 in 500 dimensions, 300 voices, 60 components kept)."""
    rng = np.random.default_rng(0)
    features = (rng.standard_normal((300, 40)) @ rng.standard_normal((40, 500))).astype(np.float32)
    mean, comps = fit_pca(features, k=60, fit=200)
    assert comps.shape == (60, 500)
    np.testing.assert_allclose(comps @ comps.T, np.eye(60), atol=1e-4)
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


def test_a_recording_is_compared_as_the_library_render_would_be():
    """as_render: a project render read as itself is its own embedding; a note played an
    octave up, or held 1 s after 0.2 s of silence, comes much nearer to the render at C4
    held 3 s than its plain embedding does."""
    from companion.data.render import Play, Renderer
    from companion.dx7.voice import INIT_VOICE
    from companion.matching.index import EMBEDDING, as_render

    r = Renderer()
    organ = INIT_VOICE.replace(op2_output_level=60, op2_coarse=2, op1_eg_rate4=70)
    ref = r.render(organ)
    assert np.allclose(as_render(ref, Play()), EMBEDDING(ref), atol=1e-5)

    def rms(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2)))

    target = EMBEDDING(ref)
    up = r.render(organ, 72)
    assert rms(as_render(up, Play(note=72), key=72), target) < 0.4 * rms(EMBEDDING(up), target)
    late = Play(60, 85, 1.0, round(0.2 * 22050), round(2.7 * 22050))
    short = r.play(organ, late)
    assert rms(as_render(short, late), target) < 0.4 * rms(EMBEDDING(short), target)
