"""Atomic writes: the one helper every writer of the project goes through.

A file is written to a temporary name in its own folder, then renamed over the target, so a
reader sees the old file or the new one, never half of one; a failure part-way (an exception, a
full disk, Ctrl-C) leaves the old file and no temporary behind. One permission policy: new
files get 0666 less the process umask, as ``open()`` would give them (``mkstemp`` makes 0600).

``atomic_path`` (a temporary path for any writer) and ``atomic_dir`` (a folder swapped in
whole) are the primitives; ``write_atomic`` (bytes or text), ``save_npy``, ``write_audio``,
``save_figure`` and ``copy_atomic`` are the writers built on them that the project uses.

Two rules hold here for every command, in one place:
- a file the running command reads (``reads``: its audio, voices, database, model, library) is
  never written over, through a symbolic or a hard link either: ``check_output`` refuses it in
  one line, and every writer calls it before it writes;
- files that belong together (``together``: a bank split over several files, a voice with its
  render and picture) appear all or none, and a write that fails names the user's file (a full
  disk: "FILE: no space left on device"), never the temporary.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK
TMP_SUFFIX = ".tmp"


# What the running command reads: (st_dev, st_ino) -> the path as the user named it. Inodes,
# not names: a symbolic link or a hard link to an input is that input.
_READS: dict[tuple[int, int], str] = {}
_READ_FOLDERS: dict[str, str] = {}  # real path -> as named: a folder swapped whole holds none

_GROUP: list | None = None  # (temporary, path) of the files of a ``together`` block


def safe_stem(name: str) -> str:
    """A file stem from a user's file name (an upload's): letters, digits, '-', '_' and '.'
    only, never empty."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem)
    return keep.strip("._") or "sound"


def reads(*paths: str | os.PathLike | None) -> None:
    """Record the files and folders (everything in them) the running command reads.

    None and paths that do not exist are ignored (the command reports those itself).
    """
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        files = [p]
        if p.is_dir():
            _READ_FOLDERS[os.path.realpath(p)] = str(p)
            files = [f for f in p.rglob("*") if f.is_file()]
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            _READS.setdefault((st.st_dev, st.st_ino), str(f))


def forget_reads() -> None:
    """A new command begins: nothing is recorded as read."""
    _READS.clear()
    _READ_FOLDERS.clear()


def check_output(path: str | os.PathLike, folder: bool = False) -> None:
    """Refuse an output that would replace a file the command reads (``folder``: a folder
    swapped in whole, which must hold none of them).

    Raises:
        ValueError: one line naming the output and the input.
    """
    path = Path(path)
    try:
        st = path.stat()  # follows a symbolic link to what it points at
    except OSError:
        st = None
    named = _READS.get((st.st_dev, st.st_ino)) if st is not None else None
    if named is None and folder:
        real = os.path.realpath(path)
        named = next((n for r, n in _READ_FOLDERS.items()
                      if r == real or r.startswith(real + os.sep)), None)  # fmt: skip
        if named is None:
            named = next((n for (dev, ino), n in _READS.items()
                          if os.path.realpath(n).startswith(real + os.sep)), None)  # fmt: skip
    if named is None:
        return
    if os.path.realpath(named) == os.path.realpath(path) and Path(named) == path:
        raise ValueError(f"{path}: this command reads it; writing there would destroy it, "
                         "choose another output")  # fmt: skip
    what = "holds" if folder else "is the same file as"
    raise ValueError(f"{path}: {what} {named}, which this command reads; writing there would "
                     "destroy it, choose another output")  # fmt: skip


def check_outputs(paths) -> None:
    """``check_output`` of several paths, before any work: one line for the first refused."""
    for p in paths:
        check_output(p)


def _name_user_path(e: OSError, path: Path) -> None:
    """Make the OSError of a failed write name the user's ``path``, not our temporary."""
    name = None if e.filename is None else Path(os.fsdecode(e.filename)).name
    if name is None or name.startswith(f".{path.stem}."):
        e.filename = str(path)


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
    check_output(path)
    _check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f"{TMP_SUFFIX}{path.suffix}"
        )
    except OSError as e:
        _name_user_path(e, path)
        raise
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, FILE_MODE)
        if _GROUP is not None:  # a ``together`` block renames its files when it ends
            _GROUP.append((tmp, path))
        else:
            os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _name_user_path(e, path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def together() -> Iterator[None]:
    """The files written in this block (through any writer here) appear together when it ends,
    or none of them if it fails part-way; a file it replaces comes back then. Nested blocks
    join the outer one."""
    global _GROUP
    if _GROUP is not None:
        yield
        return
    _GROUP = group = []
    try:
        try:
            yield
        finally:
            _GROUP = None
        _commit(group)
    except BaseException:
        for tmp, _ in group:
            tmp.unlink(missing_ok=True)
        raise


def _commit(group: list[tuple[Path, Path]]) -> None:
    """Rename every temporary of ``group`` in place, or undo the ones done and raise."""
    done: list[tuple[Path, Path | None]] = []  # (path, the old file kept aside or None)
    try:
        for tmp, path in group:
            old = None
            if path.is_file():
                old = path.with_name(f".{path.name}.{os.getpid()}.old{TMP_SUFFIX}")
                try:
                    os.link(path, old)  # a second name for the old file, until all is in place
                except OSError:  # a file system without hard links: it cannot come back
                    old = None
            done.append((path, old))
            os.replace(tmp, path)
    except BaseException:
        for path, old in reversed(done):
            if old is not None:
                os.replace(old, path)
            else:
                path.unlink(missing_ok=True)
        raise
    for _, old in done:
        if old is not None:
            old.unlink(missing_ok=True)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the end of this block (short work that must be whole: files
    written and the line that reports them), then act as they would have. Outside the main
    thread, a plain block. (Python handlers, not a signal mask: the mask is per thread, and a
    pool's threads would take the signal for the process.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if caught:
            handler = before[caught[0]]
            if callable(handler):
                handler(caught[0], None)  # Ctrl-C's KeyboardInterrupt, or the command's own
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


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
        try:
            sf.write(tmp, audio, sample_rate, subtype=subtype, format=fmt, **kwargs)
        except sf.LibsndfileError as e:  # libsndfile says "System error." for a full disk
            raise OSError(errno.ENOSPC if _full(path.parent) else errno.EIO,
                          os.strerror(errno.ENOSPC) if _full(path.parent) else str(e),
                          str(path)) from None  # fmt: skip
    return path


def _full(folder: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system of ``folder`` has less than ``margin`` bytes left."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize < margin


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
    check_output(path, folder=True)
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
    except OSError as e:  # a full disk: name the file as it would have been, not our temporary
        shutil.rmtree(tmp, ignore_errors=True)
        if e.filename is not None and Path(os.fsdecode(e.filename)).is_relative_to(tmp):
            e.filename = str(path / Path(os.fsdecode(e.filename)).relative_to(tmp))
        raise
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
