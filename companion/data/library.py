"""The DX7 library program matches against: found without asking, fetched once, remembered.

Where a library comes from, in this order (``find``):

1. ``--library DB_OR_DIR`` (the caller's argument);
2. ``$COMPANION_LIBRARY``;
3. a folder set once with ``companion library use DIR`` (remembered in the user's config
   folder, ``library.json``);
4. the library ``companion library get`` made (the user's data folder, ``library/``).

A folder the user chose (``use``) comes before the downloaded one: it is the later, more
particular choice (the issue that asked for this listed them the other way round; a user who
downloads the collection and then points at their own cartridges means their own).

``get`` downloads a pinned commit of the public collection (``PUBLIC``), through pooch (a
temporary file renamed when complete: a download that stops half-way leaves nothing, and the
next run starts it again), keeps only its .syx files and LICENSE, checks their content hash
(``companion.data.archive.content_hash``), and builds the preset database and the retrieval
index beside them, all in a temporary folder renamed into place at the end: the library
appears complete or not at all. The source's URL and hash are settings
(``$COMPANION_LIBRARY_URL``, ``$COMPANION_LIBRARY_SHA256`` or the command's options) so that a
mirror, or a test's own archive, can stand in.

Folders are platformdirs' (on Linux ``$XDG_DATA_HOME/companion`` and
``$XDG_CONFIG_HOME/companion``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import platformdirs

from companion.data import archive, presets
from companion.io import atomic_dir, safe_stem, write_atomic

APP = "companion"


@dataclasses.dataclass(frozen=True)
class Source:
    """A pinned collection of cartridges: where to download it and what its .syx files hash
    to (``archive.content_hash``)."""

    repo: str
    commit: str
    sha256: str
    files: int  # .syx files in it, for the messages
    url: str = ""  # default: GitHub's archive of the commit

    def __post_init__(self):
        if not self.url:
            object.__setattr__(self, "url", f"https://github.com/{self.repo}/archive/"
                                             f"{self.commit}.zip")  # fmt: skip


# the public collection the project is developed with (../shared/data/dx7-patch-library is a
# subset of it): 3,874 .syx files, 15,592,428 bytes, the three under __MACOSX/ included
PUBLIC = Source(
    repo="visualizersdotnl/Yamaha-DX7-patch-library",
    commit="6b17188f645b0a23950a8bbaba3c9b04bda817dc",
    sha256="6c01821b40e03634be7b1fcdd66eccb4b482f9c647b6a939c7e6bea6ca172928",
    files=3874,
)
GET_HINT = "`companion library get` downloads the public DX7 collection (15 MB, once)"


def source(url: str | None = None, sha256: str | None = None) -> Source:
    """``PUBLIC``, with the URL and hash given here or in $COMPANION_LIBRARY_URL /
    $COMPANION_LIBRARY_SHA256 instead of its own (a mirror, or a test's archive)."""
    url = url or os.environ.get("COMPANION_LIBRARY_URL") or PUBLIC.url
    sha256 = (sha256 or os.environ.get("COMPANION_LIBRARY_SHA256") or PUBLIC.sha256).lower()
    return dataclasses.replace(PUBLIC, url=url, sha256=sha256)


def data_dir() -> Path:
    return platformdirs.user_data_path(APP)


def got_dir() -> Path:
    """Where ``get`` puts the library: cartridges/, presets.sqlite, its index, library.json."""
    return data_dir() / "library"


def config_file() -> Path:
    return platformdirs.user_config_path(APP) / "library.json"


@dataclasses.dataclass(frozen=True)
class Found:
    """A library and how it was found. path: a preset database or a cartridge folder (None:
    none). how: "--library", "$COMPANION_LIBRARY", "companion library use" or "companion
    library get" ("" when none)."""

    path: Path | None
    how: str = ""

    def describe(self) -> str:
        """One line for the user."""
        if self.path is None:
            return ("no library: only the network proposes, which matches far less well; "
                    + GET_HINT + ", or `companion library use DIR` names your cartridges")
        return f"library: {self.path} (from {self.how})"

    def short(self) -> str:
        """The end of program's output line: the library, or the command that gets one."""
        if self.path is None:
            return "no library (`companion library get` fetches one)"
        return f"library {self.path.name if self.how == '--library' else self.path}"


def got() -> Path | None:
    """The database of the library ``get`` made, if it is complete."""
    meta = got_dir() / "library.json"
    db = got_dir() / "presets.sqlite"
    return db if meta.is_file() and db.is_file() else None


def used() -> Path | None:
    """The folder or database ``use`` remembered (None: none, or it is gone)."""
    try:
        path = Path(json.loads(config_file().read_text())["library"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.exists() else None


def find(explicit: str | os.PathLike | None = None) -> Found:
    """The library to match against, in the order of this module's docstring."""
    if explicit is not None:
        return Found(Path(explicit), "--library")
    if os.environ.get("COMPANION_LIBRARY"):
        return Found(Path(os.environ["COMPANION_LIBRARY"]), "$COMPANION_LIBRARY")
    for path, how in ((used(), "companion library use"), (got(), "companion library get")):
        if path is not None:
            return Found(path, how)
    return Found(None)


def use(folder: str | os.PathLike) -> Path:
    """Remember ``folder`` (cartridges) or a preset database as the library; returns it,
    absolute.

    Raises:
        ValueError: it does not exist, or is a folder without .syx files.
    """
    path = Path(folder).expanduser().resolve()
    if not path.exists():
        raise ValueError(f"{folder}: no such folder or preset database")
    if path.is_dir() and not presets.find_cartridges(path):
        raise ValueError(f"{folder}: no .syx files in it")
    if path.is_file():
        presets.connect(path).close()  # a ValueError naming it if it is not a preset database
    config_file().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(config_file(), json.dumps({"library": str(path)}, indent=1) + "\n")
    return path


def from_uploads(files: list[tuple[str, bytes]]) -> Path:
    """A cartridge folder made of a user's uploaded files (the app): .syx files as they are,
    zips through ``archive.extract`` (only their .syx files, safely, capped), in the user's data
    folder under a name from their content (the same upload is unpacked once).

    Args:
        files: (file name, bytes) of each upload.

    Returns:
        The folder, ready for program's library.

    Raises:
        ValueError: a file that is neither .syx nor .zip, an unsafe or damaged zip, or no
            .syx file in all of them; one line naming the file.
    """
    h = hashlib.sha256()
    for name, content in files:
        if not (archive.is_syx(name) or name.lower().endswith(".zip")):
            raise ValueError(f"{name}: not a .syx cartridge or a .zip of them")
        h.update(f"{name}\0{len(content)}\0".encode())
        h.update(content)
    folder = data_dir() / "uploads" / h.hexdigest()[:16]
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder) as tmp:
        for k, (name, content) in enumerate(files):
            stem = safe_stem(name)
            if archive.is_syx(name):
                write_atomic(tmp / f"{k:03d}-{stem}.syx", content)
                continue
            zip_path = tmp / f".upload-{k}.zip"
            zip_path.write_bytes(content)
            (tmp / f"{k:03d}-{stem}").mkdir()
            try:
                archive.extract(zip_path, tmp / f"{k:03d}-{stem}", strip_top=False)
            except ValueError as e:  # it names our temporary file: the user's name instead
                raise ValueError(str(e).replace(str(zip_path), name)) from None
            finally:
                zip_path.unlink()
        if not presets.find_cartridges(tmp):
            raise ValueError(f"{', '.join(n for n, _ in files)}: no .syx cartridge in them")
    return folder


def _download(src: Source, folder: Path, progress: bool) -> Path:
    """The archive, downloaded into ``folder`` (pooch: into a temporary file, renamed when
    complete). Raises ValueError in one line when it cannot be."""
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")  # our own line says what is downloaded
    try:
        return Path(pooch.retrieve(src.url, known_hash=None, fname=f"{src.commit}.zip",
                                   path=folder, progressbar=progress))  # fmt: skip
    except (requests.RequestException, OSError) as e:
        why = type(e).__name__ if isinstance(e, requests.ConnectionError) else str(e)
        raise ValueError(
            f"{src.url}: cannot download ({why.splitlines()[0][:160]}); without a network, "
            "give your own cartridges: `companion library use DIR` or --library DIR"
        ) from None


def get(src: Source | None = None, progress: bool = False, log=None) -> Path:
    """Download, verify and build the library (see the module docstring); nothing when it is
    already there with the same content hash.

    Args:
        src: the collection (default: ``source()``).
        progress: progress bars on stderr.
        log: a function given one line at each step (default: print to stderr).

    Returns:
        The library's preset database.

    Raises:
        ValueError: the download failed, the content hash differs (nothing kept), or the
            archive is unsafe; one line.
    """
    src = src or source()
    log = log or (lambda line: print(f"companion: {line}", file=sys.stderr, flush=True))
    target = got_dir()
    meta_file = target / "library.json"
    if got() is not None:
        try:
            if json.loads(meta_file.read_text()).get("sha256") == src.sha256:
                log(f"{target}: the library is there already ({src.commit[:7]}); nothing to do")
                return target / "presets.sqlite"
        except (OSError, ValueError):
            pass  # unreadable: fetched again
    downloads = data_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"downloading {src.url}")
    zip_path = _download(src, downloads, progress)
    try:
        with atomic_dir(target) as tmp:
            carts = tmp / "cartridges"
            carts.mkdir()
            kept = archive.extract(zip_path, carts)
            found = archive.content_hash(archive.folder_hashes(carts))
            if found != src.sha256:
                raise ValueError(
                    f"{src.url}: its {sum(map(archive.is_syx, kept))} .syx files hash to "
                    f"{found[:12]}..., not the expected {src.sha256[:12]}...; refused, nothing "
                    "kept"
                )
            log(f"verified {sum(map(archive.is_syx, kept))} cartridges; building the preset "
                "database and the retrieval index")  # fmt: skip
            summary = presets.build(carts, tmp / "presets.sqlite", progress=progress)
            from companion.matching.index import Index

            Index.open(tmp / "presets.sqlite", progress=progress)
            write_atomic(tmp / "library.json", json.dumps({
                "repo": src.repo, "commit": src.commit, "url": src.url, "sha256": src.sha256,
                "files": len(kept), "voices": summary["unique_voices"],
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=1) + "\n")  # fmt: skip
    finally:
        zip_path.unlink(missing_ok=True)  # verified and unpacked, or refused: not kept
        shutil.rmtree(downloads, ignore_errors=True)
    log(f"{target}: {summary['unique_voices']} voices, ready in "
        f"{time.perf_counter() - t0:.0f} s; program uses it without --library")  # fmt: skip
    return target / "presets.sqlite"
