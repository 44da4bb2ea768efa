"""Atomic writes: the one helper every writer of the project goes through.

A file is written to a temporary name in its own folder, then renamed over the target, so a
reader sees the old file or the new one, never half of one; a failure part-way (an exception, a
full disk, Ctrl-C) leaves the old file and no temporary behind. One permission policy: new
files get 0666 less the process umask, as ``open()`` would give them (``mkstemp`` makes 0600).

``atomic_path`` (a temporary path for any writer) and ``atomic_dir`` (a folder swapped in
whole) are the primitives; ``write_atomic`` (bytes or text), ``save_npy``, ``write_audio``,
``save_figure`` and ``copy_atomic`` are the writers built on them that the project uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK
TMP_SUFFIX = ".tmp"


def _check_parent(path: Path, folder: bool = False) -> None:
    """Create the parent folder; a clear error when a file stands where a folder must be, or
    (``folder`` False) a folder where the file must be."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{path}: {parent} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file, expected a folder")
    if not folder and path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a file name")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends
    without an exception, removed otherwise. The temporary keeps ``path``'s extension so that
    writers which choose a format by extension (soundfile, matplotlib, numpy) still work.

    Yields:
        Path of the temporary file (``.NAME.XXXX.tmp.EXT`` in the same folder).
    """
    path = Path(path)
    _check_parent(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f"{TMP_SUFFIX}{path.suffix}"
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a file written by another library to the disk before it is renamed in place, so
    that a power cut cannot leave the new name pointing at empty blocks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def save_npy(path: str | os.PathLike, array) -> Path:
    """``np.save`` of ``array`` to ``path`` (which should end in .npy) atomically."""
    import numpy as np

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return path


def write_audio(path: str | os.PathLike, audio, sample_rate: int, subtype: str | None = None,
                **kwargs) -> Path:  # fmt: skip
    """A sound file through soundfile, atomically; the format follows ``path``'s extension
    (.wav, .flac, .mp3 ...), the subtype defaults to the format's (16-bit PCM for WAV).

    Args:
        audio: (T,) or (T, channels) floats in [-1, 1].
        sample_rate: Hz.
    """
    import soundfile as sf

    path = Path(path)
    fmt = kwargs.pop("format", None) or path.suffix.lstrip(".").upper()
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype=subtype, format=fmt, **kwargs)
    return path


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (bytes and modification time)."""
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)
    return dst


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)`` atomically; the format follows ``path``'s extension."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or None)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return path


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; swapped in for ``path`` when the block ends
    without an exception (the old folder, if any, is removed only after the new one is in
    place), removed otherwise. Used where several files must change together (a model folder).

    Yields:
        Path of the temporary folder.
    """
    path = Path(path)
    _check_parent(path, folder=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync(f)
        os.chmod(tmp, DIR_MODE)
        old = None
        if path.exists():
            # two renames, not one: POSIX cannot swap a non-empty folder in one step. Between
            # them ``path`` is briefly missing, never half-written; on failure the old goes back.
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old.",
                                        suffix=TMP_SUFFIX))  # fmt: skip
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale(folder: str | os.PathLike, name: str, older_than_s: float = 60.0) -> list[Path]:
    """Remove temporaries of ours (``.NAME.*.tmp*``) left in ``folder`` by a killed writer.

    Only files older than ``older_than_s`` seconds go, so a writer running now in another
    process keeps its temporary. Returns the paths removed.
    """
    folder = Path(folder)
    stem = Path(name).stem
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    ours = set(folder.glob(f".{name}.*{TMP_SUFFIX}*")) | set(folder.glob(f".{stem}.*{TMP_SUFFIX}*"))
    for p in ours:
        try:
            if now - p.stat().st_mtime >= older_than_s:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
        except FileNotFoundError:
            pass
    return removed
