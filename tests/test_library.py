"""Whole-library tests: run whenever COMPANION_CARTRIDGES is set (CI sets it)."""

import warnings

import numpy as np
import pytest
from dexed import DexedSynth, Patch

from companion.data import presets
from companion.data.render import Renderer
from companion.dx7.params import ENCODINGS, TRANSPOSE, representation
from companion.dx7.sysex import bank_message, parse_syx, read_syx, single_voice_message
from companion.dx7.voice import INIT_VOICE

pytestmark = pytest.mark.library


@pytest.fixture(scope="module")
def scanned(library):
    """(relative path, size, contents) of every cartridge file."""
    out = []
    for path in presets.find_cartridges(library):
        rel = path.relative_to(library).as_posix()
        out.append((path, path.stat().st_size, read_syx(path, name=rel)))
    return out


def test_counts(scanned, library_db):
    readable = sum(len(c.voices) for _, _, c in scanned)
    skipped = sum(len(c.skipped) for _, _, c in scanned)
    unique = {v.params for _, _, c in scanned for _, v in c.voices}
    assert len(scanned) > 3600 and 100_000 < readable < 110_000
    assert 9_000 < skipped < 10_500
    # Counted independently of the database; 26,894 when the 4960-byte files were misread.
    assert len(unique) == 26_880
    info = presets.info(library_db)
    assert info["unique_voices"] == len(unique) and info["readable_voices"] == readable
    assert info["skipped_voices"] == skipped
    shares = {k: v / len(unique) for k, v in info["splits"].items()}
    assert abs(shares["train"] - 0.8) < 0.01 and abs(shares["test"] - 0.1) < 0.01
    assert {"Brass", "Keyboard", "Percussion", "Strings"} <= set(info["families"])
    assert info["files_without_voices"] < 30


def test_headerless_files_are_read_by_their_size(scanned):
    by_size = {}
    for _, size, contents in scanned:
        by_size.setdefault(size, []).append(contents)
    vced = by_size[4960]  # TX802 rips: 32 unpacked voices each, names at offset 145
    assert len(vced) == 4
    for contents in vced:
        assert contents.error is None and [m.kind for m in contents.messages] == [
            "headerless unpacked"
        ]
        positions = sorted([i for i, _ in contents.voices] + [s.index for s in contents.skipped])
        assert positions == list(range(32))
        names = [v.name for _, v in contents.voices]
        assert all(n.isprintable() and n.strip() for n in names), names
    assert sum(len(c.voices) + len(c.skipped) for c in vced) == 128
    # One voice of the four files is corrupt in the file itself: DX.RHODES7's pitch EG rate 3.
    assert [(s.index, s.param, s.value) for c in vced for s in c.skipped] == [
        (6, "pitch_eg_rate3", 127)
    ]
    (harmonica,) = by_size[5760]  # 45 packed voices, not a bank plus ignored bytes
    assert len(harmonica.voices) == 45 and harmonica.voices[32][1].name == "HARMON. 3 "
    for contents in by_size[4096]:
        assert [m.kind for m in contents.messages] == ["headerless packed"]


def test_every_skip_names_file_voice_parameter_value(scanned):
    for _, _, contents in scanned:
        for s in contents.skipped:
            assert s.file == contents.file and s.param and s.value is not None
            assert f"{s.param}={s.value}" in s.reason


def test_every_voice_round_trips_single_and_bank(scanned):
    for _, _, contents in scanned:
        voices = [v for _, v in contents.voices]
        for v in voices:
            assert parse_syx(single_voice_message(v)).voices == [(0, v)]
        for i in range(0, len(voices), 32):
            bank = voices[i : i + 32] + [INIT_VOICE] * max(0, 32 - len(voices[i : i + 32]))
            assert [v for _, v in parse_syx(bank_message(bank)).voices] == bank


def test_reader_agrees_with_dexed_load_bank(scanned):
    compared = 0
    for path, size, contents in scanned:
        if size != 4104:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dexed-py warns about stale checksums
            try:
                patches = Patch.load_bank(str(path))
            except ValueError:
                continue  # a file dexed-py does not accept
        for index, voice in contents.voices:
            assert patches[index].to_sysex()[:155] == voice.vced(), (path, index)
            compared += 1
    assert compared > 90_000


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encodings_round_trip_every_unique_voice(library_db, encoding):
    values = np.stack([v.values for _, v in presets.load(library_db)]).astype(np.int64)
    rep = representation(encoding)
    decoded = rep.decode(rep.encode(values), transpose=values[:, TRANSPOSE])
    assert np.array_equal(decoded, values)


def test_render_equals_dexed_py_render(library_db):
    rows = presets.load(library_db)
    rng = np.random.default_rng(0)
    ours, synth = Renderer(), DexedSynth(sample_rate=22050)
    for k in rng.choice(len(rows), 60, replace=False):
        voice = rows[k][1]
        synth.load_patch(voice.to_patch())
        theirs = synth.render(midi_note=60, velocity=85, note_duration=3.0, render_duration=4.0)
        assert np.array_equal(ours.render(voice), theirs), voice.display_name
