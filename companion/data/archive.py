"""Cartridge archives read safely, and the content hash that names a set of cartridges.

A .zip of DX7 cartridges comes from the network (``companion library get``) or from a user
(the app's upload). Either is read the same way: only .syx files (and a top-level LICENSE)
are kept, no member may land outside the folder it is unpacked into (absolute paths, ``..``,
links), and the unpacked size is capped before anything is written, so that a zip bomb is
refused in one line. The standard library's zipfile reads the archive; what it does not do
(this filtering and the cap) is written here.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_UNPACKED = 512 << 20  # bytes; the public DX7 collection's .syx files are 15.6 MB
MAX_MEMBERS = 200_000


def is_syx(name: str) -> bool:
    """A cartridge by its name (.syx in any case)."""
    return name.lower().endswith(".syx")


def content_hash(files: dict[str, str]) -> str:
    """The SHA-256 (hex) of the text of one line ``<sha256 of the file>  <path>\\n`` a file,
    sorted by path (Python's string order). ``files``: path (inside the collection, "/"
    separated) -> the SHA-256 (hex) of its bytes."""
    text = "".join(f"{files[p]}  {p}\n" for p in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def folder_hashes(root: str | os.PathLike) -> dict[str, str]:
    """Every .syx file under ``root`` (any depth): its path relative to ``root`` -> SHA-256."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and is_syx(p.name)}  # fmt: skip


def _member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath | None:
    """A member's path, or None for what is not kept as a file (folders); ValueError for one
    that would land outside the folder or is a link."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"{archive}: member {info.filename!r} points outside its folder; refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(f"{archive}: member {info.filename!r} is a link; refused")
    return None if info.is_dir() else path


def extract(archive: str | os.PathLike, dest: str | os.PathLike, strip_top: bool = True,
            max_bytes: int = MAX_UNPACKED) -> list[str]:  # fmt: skip
    """Unpack the .syx files of a zip (and a LICENSE at its top) into ``dest``.

    Args:
        archive: the .zip file.
        dest: an existing, empty folder.
        strip_top: drop the one folder every member is under (a GitHub archive's
            ``<repo>-<commit>/``), so that paths are those inside the repository.
        max_bytes: refuse the archive if what would be kept unpacks to more.

    Returns:
        The kept files' paths relative to ``dest`` ("/" separated), sorted.

    Raises:
        ValueError: not a zip, damaged, a member outside the folder or a link, too large
            unpacked, or too many members; one line naming the archive. Nothing is written
            before the checks pass; on a damaged member what was written stays in ``dest``
            (the caller's temporary folder).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{archive}: not a readable zip archive ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"{archive}: {len(infos)} members, more than {MAX_MEMBERS}; refused")
        paths = [(info, _member_path(info, archive)) for info in infos]
        files = [(info, p) for info, p in paths if p is not None]
        top = {p.parts[0] for _, p in files if len(p.parts) > 1}
        strip = strip_top and len(top) == 1 and all(len(p.parts) > 1 for _, p in files)
        kept = []
        for info, p in files:
            rel = PurePosixPath(*p.parts[1:]) if strip else p
            if is_syx(rel.name) or (len(rel.parts) == 1 and rel.name.upper().startswith("LICENSE")):
                kept.append((info, rel))
        size = sum(info.file_size for info, _ in kept)
        if size > max_bytes:
            raise ValueError(f"{archive}: unpacks to {size / 2**20:.0f} MiB of cartridges, more "
                             f"than the {max_bytes / 2**20:.0f} MiB allowed; refused")  # fmt: skip
        for info, rel in kept:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                # zipfile stops at the declared size and checks the CRC: a member that claims
                # to be small cannot unpack to more
                out.write_bytes(zf.read(info))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
                if isinstance(e, OSError) and e.filename is not None:
                    raise
                raise ValueError(f"{archive}: member {info.filename!r} is damaged ({e})") from None
    return sorted(rel.as_posix() for _, rel in kept)
