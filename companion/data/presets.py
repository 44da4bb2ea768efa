"""The preset database: every unique DX7 voice of a cartridge folder in one SQLite file.

One row per unique voice, keyed by its 145 sound parameters (the name is not part of the key),
with every name and file it came with, an instrument family for voices under
``!Instruments/<Family>/``, and a train / valid / test split decided by a hash of the key, so
that adding cartridges never moves a voice to another split.

The file is written through ``companion.io`` (a temporary beside it, then a rename); a build
refuses to replace a file that is not a preset database, and removes temporaries that a
killed build left behind.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import os
import sqlite3
from pathlib import Path

from tqdm import tqdm

from companion.dx7.sysex import BANK_SIZE, bank_message, read_syx
from companion.dx7.voice import INIT_VOICE, Voice
from companion.io import atomic_path, clean_stale, together, write_atomic

SPLITS = ("train", "valid", "test")
SPLIT_PERCENT = (80, 10, 10)
FAMILY_ROOT = "!Instruments"

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE voices(
    id INTEGER PRIMARY KEY,          -- 1.. in order of first appearance (files sorted by path)
    hash TEXT NOT NULL UNIQUE,       -- sha1 of the 145 parameter bytes: stable across builds
    params BLOB NOT NULL UNIQUE,     -- the 145 sound parameters, VCED order
    name TEXT NOT NULL,              -- the most frequent of its names (10 characters)
    split TEXT NOT NULL,
    family TEXT,                     -- from !Instruments/<Family>/, the most frequent one
    n_sources INTEGER NOT NULL
);
CREATE TABLE sources(
    voice_id INTEGER NOT NULL REFERENCES voices(id),
    file TEXT NOT NULL,              -- relative to the cartridge folder
    position INTEGER NOT NULL,       -- voice index inside the file
    name TEXT NOT NULL,
    checksum_ok INTEGER              -- its message's checksum: 1 matched, 0 wrong or missing,
                                     -- NULL headerless data (no checksum)
);
CREATE TABLE files(path TEXT PRIMARY KEY, voices INTEGER, skipped INTEGER, error TEXT);
CREATE TABLE skipped(file TEXT, position INTEGER, param TEXT, value INTEGER, reason TEXT);
CREATE TABLE warnings(file TEXT, message TEXT);
CREATE INDEX sources_voice ON sources(voice_id);
CREATE INDEX voices_split ON voices(split);
"""


def split_of(params: bytes) -> str:
    """The split of a voice, from a hash of its parameters: the same wherever it is built."""
    bucket = int.from_bytes(hashlib.sha256(params).digest()[:8], "big") % 100
    edge = 0
    for split, percent in zip(SPLITS, SPLIT_PERCENT):
        edge += percent
        if bucket < edge:
            return split
    raise AssertionError("split percentages must add up to 100")


def cartridge_dir(path: str | os.PathLike | None) -> Path:
    """The cartridge folder: the argument, else $COMPANION_CARTRIDGES; a clear error if neither."""
    path = path or os.environ.get("COMPANION_CARTRIDGES")
    if not path:
        raise ValueError("no cartridge folder: pass --cartridges DIR or set COMPANION_CARTRIDGES")
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: cartridge folder not found")
    return path


def find_cartridges(root: Path) -> list[Path]:
    """Every .syx file (any case) under ``root``, sorted by relative path."""
    files = [p for p in root.rglob("*") if p.suffix.lower() == ".syx" and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def family_of(relpath: str) -> str | None:
    parts = relpath.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == FAMILY_ROOT else None


def _most_common(items: list) -> object:
    counts = collections.Counter(x for x in items if x is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(x for x in items if counts.get(x) == best)  # ties: first seen


def check_target(db: str | os.PathLike) -> Path:
    """Where a build may write: a new file, or a preset database it replaces.

    Raises:
        ValueError: a folder, a path under a file, or an existing file that is not a preset
            database (never replaced: it may be someone's notes).
    """
    db = Path(db)
    for parent in reversed(db.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{db}: {parent} is a file, not a folder")
    if db.is_dir():
        raise ValueError(f"{db}: is a folder, expected a database file name")
    if db.exists():
        try:
            connect(db).close()
        except ValueError:
            raise ValueError(
                f"{db}: exists and is not a preset database; not replaced "
                "(remove it or choose another --db)"
            ) from None
    return db


def build(cartridges: str | os.PathLike | None, db: str | os.PathLike, progress=True) -> dict:
    """Read every cartridge and write the database atomically (a temporary file, then rename).

    Corrupt voices and unreadable files are recorded in the database, never raised. The
    cartridges are read before the temporary file is made, so that it lives for seconds only;
    temporaries of this database older than a minute (a build killed by SIGKILL) are removed.

    Returns:
        The ``info`` summary of the new database.
    """
    db = check_target(db)
    root = cartridge_dir(cartridges)
    files = find_cartridges(root)
    if not files:
        raise ValueError(f"{root}: no .syx files found")
    tables = _read(root, files, progress)
    clean_stale(db.parent, db.name)
    try:
        with atomic_path(db) as tmp:
            con = sqlite3.connect(tmp)
            try:
                con.executescript(SCHEMA)
                _write(con, tables)
                con.commit()
            finally:
                con.close()
    except (OSError, sqlite3.Error) as e:
        full = getattr(e, "errno", None) == errno.ENOSPC or "disk is full" in str(e)
        why = "no space left on device" if full else getattr(e, "strerror", None) or e
        raise ValueError(f"{db}: {why}" if full else f"{db}: cannot write ({why})") from None
    return info(db)


def _read(root: Path, files: list[Path], progress: bool) -> dict[str, list[tuple]]:
    """Every cartridge, as the rows of each table."""
    ids: dict[bytes, int] = {}
    seen: dict[int, list[tuple[str, str | None]]] = collections.defaultdict(list)
    sources, file_rows, skipped, warnings = [], [], [], []
    for path in tqdm(files, desc="cartridges", unit="file", disable=not progress):
        rel = path.relative_to(root).as_posix()
        contents = read_syx(path, name=rel)
        for position, voice in contents.voices:
            vid = ids.setdefault(voice.params, len(ids) + 1)
            seen[vid].append((voice.name, family_of(rel)))
            ok = contents.checksum_ok(position)  # its own message's, not the file's
            sources.append((vid, rel, position, voice.name, None if ok is None else int(ok)))
        skipped += [(s.file, s.index, s.param, s.value, s.reason) for s in contents.skipped]
        warnings += [(rel, w) for w in contents.warnings]
        file_rows.append((rel, len(contents.voices), len(contents.skipped), contents.error))
    rows = []
    for params, vid in ids.items():
        names, families = zip(*seen[vid])
        rows.append(
            (
                vid,
                hashlib.sha1(params).hexdigest(),
                params,
                _most_common(list(names)),
                split_of(params),
                _most_common(list(families)),
                len(names),
            )
        )
    meta = [("schema", "2"), ("cartridges", str(root)), ("files", str(len(files)))]
    return {
        "voices": rows,
        "sources": sources,
        "files": file_rows,
        "skipped": skipped,
        "warnings": warnings,
        "meta": meta,
    }


def _write(con: sqlite3.Connection, tables: dict[str, list[tuple]]) -> None:
    for table, rows in tables.items():
        if rows:
            marks = ",".join("?" * len(rows[0]))
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def connect(db: str | os.PathLike) -> sqlite3.Connection:
    """Open an existing database read-only; a one-line error if it is missing or not ours."""
    db = Path(db)
    if not db.is_file():
        raise ValueError(
            f"{db}: preset database not found (build it with `companion presets build`)"
        )
    # A URI built by hand breaks on '#' or '?' in the path (SQLite reads them as the start
    # of a fragment or query, opens another file read-write and creates it); as_uri escapes.
    uri = db.absolute().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise ValueError(f"{db}: cannot open ({e})") from None
    try:
        if con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() is None:
            raise sqlite3.DatabaseError("no schema version")
    except sqlite3.DatabaseError as e:
        con.close()
        raise ValueError(f"{db}: not a preset database ({e})") from None
    return con


def info(db: str | os.PathLike) -> dict:
    """Counts of a database (what ``companion presets info`` prints)."""
    con = connect(db)
    one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    splits = dict(con.execute("SELECT split, COUNT(*) FROM voices GROUP BY split"))
    families = dict(
        con.execute(
            "SELECT family, COUNT(*) FROM voices WHERE family IS NOT NULL "
            "GROUP BY family ORDER BY 1"
        )
    )
    reasons = dict(
        con.execute(
            "SELECT param || ' out of range', COUNT(*) FROM skipped GROUP BY param ORDER BY 2 DESC"
        )
    )
    out = {
        "unique_voices": one("SELECT COUNT(*) FROM voices"),
        "readable_voices": one("SELECT COUNT(*) FROM sources"),
        "skipped_voices": one("SELECT COUNT(*) FROM skipped"),
        "skipped_reasons": reasons,
        "files": one("SELECT COUNT(*) FROM files"),
        "files_without_voices": one("SELECT COUNT(*) FROM files WHERE error IS NOT NULL"),
        "checksum_warnings": one("SELECT COUNT(*) FROM warnings WHERE message LIKE '%checksum%'"),
        # readable voices whose own message had a wrong or missing checksum (kept)
        "checksum_bad_sources": one("SELECT COUNT(*) FROM sources WHERE checksum_ok = 0"),
        "splits": {s: splits.get(s, 0) for s in SPLITS},
        "families": families,
        "cartridges": one("SELECT value FROM meta WHERE key = 'cartridges'"),
    }
    con.close()
    return out


def load(
    db: str | os.PathLike, split: str | None = None, ids=None, limit: int | None = None
) -> list[tuple[int, Voice]]:
    """Voices of a database as (id, Voice), ordered by id.

    Args:
        split: only this split (train / valid / test).
        ids: only these ids (an unknown id is an error).
        limit: at most this many.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    con = connect(db)
    sql, args = "SELECT id, params, name FROM voices", []
    if split is not None:
        sql, args = sql + " WHERE split = ?", [split]
    sql += " ORDER BY id"
    if limit is not None and ids is None:
        sql, args = sql + " LIMIT ?", [*args, limit]
    rows = con.execute(sql, args).fetchall()
    con.close()
    if ids is not None:
        wanted = [int(i) for i in ids]
        by_id = {r[0]: r for r in rows}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise ValueError(f"{db}: no voice with id {', '.join(map(str, missing[:5]))}")
        rows = [by_id[i] for i in wanted]
    rows = rows[:limit] if limit is not None else rows
    return [(vid, Voice(params, name)) for vid, params, name in rows]


def export(voices: list[Voice], out: str | os.PathLike) -> list[Path]:
    """Write voices as 32-voice banks: ``FILE.syx`` for up to 32 voices, else FILE-001.syx ...

    The last bank is filled up with INIT VOICE. All the files are written, or none.
    """
    if not voices:
        raise ValueError("no voices to export")
    out = Path(out)
    chunks = [voices[i : i + BANK_SIZE] for i in range(0, len(voices), BANK_SIZE)]
    paths = []
    with together():  # every bank or none
        for n, chunk in enumerate(chunks, 1):
            path = out if len(chunks) == 1 else out.with_name(f"{out.stem}-{n:03d}{out.suffix}")
            bank = list(chunk) + [INIT_VOICE] * (BANK_SIZE - len(chunk))
            paths.append(write_atomic(path, bank_message(bank)))
    return paths
