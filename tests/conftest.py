"""Fixtures: voices and cartridge folders made by the project's own writer, and the shared
library when COMPANION_CARTRIDGES is set (CI sets it; there the library tests must not skip)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from companion.data import presets
from companion.dx7.sysex import bank_message, pack_voice, single_voice_message
from companion.dx7.voice import INIT_VOICE, PARAM_MAX, Voice


def random_voice(rng: np.random.Generator, name: str = "RANDOM") -> Voice:
    """A valid voice with every parameter drawn uniformly in its range."""
    return Voice.from_values(rng.integers(0, PARAM_MAX + 1), name)


def make_fixture_voices(n: int = 40, seed: int = 0) -> list[Voice]:
    """INIT VOICE, the all-minimum and all-maximum voices, and random valid voices."""
    rng = np.random.default_rng(seed)
    voices = [
        INIT_VOICE,
        Voice.from_values(np.zeros(145, int), "ALL MIN"),
        Voice.from_values(PARAM_MAX, "ALL MAX"),
    ]
    voices += [random_voice(rng, f"RND {i:03d}") for i in range(n - len(voices))]
    return voices


FIXTURE_VOICES = make_fixture_voices()

# The tests never see the user's own library (`companion library get` / `use`, or
# $COMPANION_LIBRARY): the data and config folders are fresh ones for the session, inherited by
# every command a test runs. They run with no library at all (COMPANION_LIBRARY=none), not the
# one program would generate from the model when it finds none (half a minute to build):
# tests/test_library_get.py tests that fallback. A test that wants a library makes one.
_HOME = Path(tempfile.mkdtemp(prefix="companion-tests-"))
os.environ["XDG_DATA_HOME"] = str(_HOME / "data")
os.environ["XDG_CONFIG_HOME"] = str(_HOME / "config")
os.environ["COMPANION_LIBRARY"] = "none"


def designed_voices(n: int = 32, seed: int = 3) -> list:
    """Voices that sound like instruments rather than noise: INIT VOICE with a modulator, its
    ratio, level, feedback, envelopes, velocity sensitivity and transpose drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        out.append(INIT_VOICE.replace(
            name=f"DESIGN {k:02d}", algorithm=int(rng.choice([0, 4, 15])),
            op2_output_level=int(rng.integers(40, 90)), op2_coarse=int(rng.integers(1, 6)),
            op1_coarse=int(rng.choice([1, 1, 2])), feedback=int(rng.integers(0, 8)),
            op1_eg_rate2=int(rng.integers(20, 90)), op1_eg_level3=int(rng.integers(0, 99)),
            op1_eg_rate4=int(rng.integers(30, 90)), op2_eg_rate2=int(rng.integers(20, 90)),
            op2_key_vel_sens=int(rng.integers(0, 8)),
            transpose=int(rng.choice([12, 24, 24, 36]))))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def fixture_voices() -> list[Voice]:
    return FIXTURE_VOICES


def packed_data(voices: list[Voice]) -> bytes:
    """Headerless packed data: the 128-byte bank records of ``voices``, back to back."""
    return b"".join(pack_voice(v) for v in voices)


def vced_data(voices: list[Voice]) -> bytes:
    """Headerless unpacked data: the 155 single-voice (VCED) bytes of ``voices``, back to back."""
    return b"".join(v.vced() for v in voices)


def write_cartridges(root: Path, seed: int = 1) -> dict:
    """A small cartridge folder holding every kind of file the library has.

    Returns what a reader should find: unique voice count, readable and skipped counts.
    """
    rng = np.random.default_rng(seed)
    bank_a = [random_voice(rng, f"A {i:02d}") for i in range(32)]
    bank_b = bank_a[:8] + [random_voice(rng, f"B {i:02d}") for i in range(24)]  # 8 duplicates
    bank_b[:8] = [Voice(v.params, f"RENAMED {i}") for i, v in enumerate(bank_b[:8])]
    brass = [random_voice(rng, f"BRASS {i:02d}") for i in range(32)]
    (root / "!Instruments" / "Brass").mkdir(parents=True)
    (root / "Author").mkdir()
    (root / "Author" / "bank_a.syx").write_bytes(bank_message(bank_a))
    (root / "Author" / "BANK_B.SYX").write_bytes(bank_message(bank_b))
    (root / "!Instruments" / "Brass" / "brass.syx").write_bytes(bank_message(brass))
    single = random_voice(rng, "SINGLE")
    (root / "single.syx").write_bytes(single_voice_message(single))
    # headerless 4096-byte bank of the brass voices under other names: all duplicates
    (root / "headerless.syx").write_bytes(bank_message(brass)[6:-2])
    corrupt = bytearray(bank_message([random_voice(rng, f"C {i:02d}") for i in range(32)]))
    corrupt[6 + 3 * 128 + 0] = 120  # voice 3: OP6 EG rate 1 out of range
    (root / "corrupt.syx").write_bytes(bytes(corrupt))
    (root / "garbage.syx").write_bytes(rng.integers(0, 128, 300, dtype=np.uint8).tobytes())
    (root / "empty.syx").write_bytes(b"")
    (root / "notes.txt").write_text("not a cartridge")
    return {
        "unique": 32 + 24 + 32 + 1 + 31,
        "readable": 32 * 4 + 1 + 31,
        "skipped": 1,
        "files": 8,
        "files_without_voices": 2,
        "brass": brass,
        "bank_a": bank_a,
    }


@pytest.fixture(scope="session")
def cartridges(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cartridges")
    return root, write_cartridges(root)


@pytest.fixture(scope="session")
def fixture_db(cartridges, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("db") / "presets.sqlite"
    presets.build(cartridges[0], db, progress=False)
    return db


def library_dir() -> Path | None:
    path = os.environ.get("COMPANION_CARTRIDGES")
    return Path(path) if path else None


@pytest.fixture(scope="session")
def library() -> Path:
    """The shared cartridge library; skipped without COMPANION_CARTRIDGES, except in CI."""
    path = library_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must set COMPANION_CARTRIDGES: the library tests may not skip there")
        pytest.skip("set COMPANION_CARTRIDGES to run the whole-library tests")
    if not path.is_dir():
        pytest.fail(f"COMPANION_CARTRIDGES={path} is not a folder")
    return path


@pytest.fixture(scope="session")
def library_db(library, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("library") / "presets.sqlite"
    presets.build(library, db, progress=False)
    return db


@pytest.fixture(scope="session")
def smoke_run(fixture_db, tmp_path_factory) -> tuple[Path, Path]:
    """A smoke dataset of the fixture voices and a NumCat++ model trained on it for 1 epoch."""
    from companion.data import dataset
    from companion.training import train

    data = tmp_path_factory.mktemp("smoke-data")
    dataset.build(fixture_db, "smoke", data, limit=120, processes=1, progress=False)
    run = tmp_path_factory.mktemp("smoke-run")
    train.train("smoke", data, run, encoding="numcat++", epochs=1, progress=False)
    return data, run
