"""The DX7 library program matches against: found without asking, fetched once, remembered.

Where a library comes from, in this order (``find``):

1. ``--library DB_OR_DIR`` (the caller's argument);
2. ``$COMPANION_LIBRARY``;
3. a folder set once with ``companion library use DIR`` (remembered in the user's config
   folder, ``library.json``);
4. the library ``companion library get`` made (the user's data folder, ``library/``);
5. none of them: a library the model generates (``generated``): 4,096 voices sampled from its
   latent prior, written as banks and indexed at the first ``program`` that needs it (about
   half a minute on two cores, once per model). It matches better than the network's answer
   alone, far worse than real voices (bench/program_quality.py).

``--library none`` or ``$COMPANION_LIBRARY=none`` asks for no library at all.

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

import numpy as np
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
NONE = "none"  # --library none / $COMPANION_LIBRARY=none: no library, not even a generated one
GENERATED = "generated from the model"  # Found.how of the fallback
# the fallback's size and seed: bench/program_quality.py's "generated library" row measures
# exactly this recipe (4,096 voices: 0.90x the SC of no library, figures/table_program.md)
GENERATED_VOICES, GENERATED_SEED = 4096, 0


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
        if self.path is None and self.how:
            return (f"no library ({self.how} none): only the network proposes, which matches "
                    "far less well")
        if self.path is None:
            return (f"no library found: program generates {GENERATED_VOICES:,} voices from the "
                    "model at its first run (half a minute, once), which matches far less well "
                    "than real voices; " + GET_HINT + ", or `companion library use DIR` names "
                    "your cartridges")
        if self.how == GENERATED:
            return (f"library: {self.path} ({GENERATED_VOICES:,} voices {GENERATED}, since no "
                    f"library was found; {GET_HINT})")
        return f"library: {self.path} (from {self.how})"

    def short(self) -> str:
        """The end of program's output line: the library, or the command that gets one."""
        if self.path is None:
            return "no library (`companion library get` fetches one)"
        if self.how == GENERATED:
            return f"library {GENERATED} (`companion library get` fetches real voices)"
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
    """The library to match against, in the order of this module's docstring, up to the
    generated one (``or_generated`` adds it). ``Found(None, how)``: ``how`` asked for none;
    ``Found(None)``: none was found."""
    env = os.environ.get("COMPANION_LIBRARY") or None
    for value, how in ((explicit, "--library"), (env, "$COMPANION_LIBRARY")):
        if value is not None:
            return Found(None, how) if str(value) == NONE else Found(Path(value), how)
    for path, how in ((used(), "companion library use"), (got(), "companion library get")):
        if path is not None:
            return Found(path, how)
    return Found(None)


def _build(folder: Path, progress: bool, meta: dict) -> dict:
    """A library folder's preset database (of its cartridges/), its retrieval index, then its
    library.json (``meta`` and the voice count), the mark of a complete library: what ``get``
    and ``generated`` both make, inside their ``atomic_dir``. Returns presets.build's summary."""
    from companion.matching.index import Index

    summary = presets.build(folder / "cartridges", folder / "presets.sqlite", progress=progress)
    Index.open(folder / "presets.sqlite", progress=progress)
    write_atomic(folder / "library.json",
                 json.dumps({**meta, "voices": summary["unique_voices"]}, indent=1) + "\n")
    return summary


def or_generated(found: Found, model_dir=None, progress: bool = False, log=None) -> Found:
    """``found``, or where none was found (not where none was asked for), the library the
    model generates (``generated``); ``found`` as it is if the model cannot generate voices
    (an MLP regression has no latent prior to sample)."""
    if found.path is not None or found.how:
        return found
    path = generated(model_dir, progress=progress, log=log)
    return Found(path, GENERATED) if path is not None else found


def generated(model_dir=None, n: int = GENERATED_VOICES, seed: int = GENERATED_SEED,
              progress: bool = False, log=None, build: bool = True) -> Path | None:  # fmt: skip
    """The preset database of ``n`` voices sampled from the model's latent prior (duplicates
    dropped), built once per model save in ``data_dir()/generated/<weights digest>-<n>-<seed>``:
    cartridges/ (32-voice banks), presets.sqlite, its retrieval index and library.json, all
    renamed into place together (``io.atomic_dir``).

    Args:
        model_dir: the model (None: the shipped default).
        log: a function given one line before the build (default: print to stderr).
        build: False: only the one already built.

    Returns:
        The database, or None for a model without a flow regression (or not built).
    """
    from companion.models import default_model_dir, index_digest

    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    folder = data_dir() / "generated" / f"{index_digest(model_dir)[:16]}-{n}-{seed}"
    if (folder / "library.json").is_file() and (folder / "presets.sqlite").is_file():
        return folder / "presets.sqlite"
    if not build:
        return None
    from companion.latent.interpolate import Latent  # torch: only to build one

    try:
        latent = Latent(model_dir)
    except ValueError:  # an MLP regression: no prior to sample
        return None
    log = log or (lambda line: print(f"companion: {line}", file=sys.stderr, flush=True))
    log(f"no library found: generating {n:,} voices from the model and indexing them into "
        f"{folder} (half a minute, once); {GET_HINT}")  # fmt: skip
    from companion.dx7.voice import Voice

    values = np.unique(latent.sample(n, seed), axis=0)
    voices = [Voice.from_values(v, f"GEN {k:04d}") for k, v in enumerate(values)]
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder) as tmp:
        (tmp / "cartridges").mkdir()
        presets.export(voices, tmp / "cartridges" / "generated.syx")
        _build(tmp, progress, {"generated_from": str(model_dir.resolve()),
                               "weights": index_digest(model_dir), "sampled": n, "seed": seed})
    return folder / "presets.sqlite"


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
            summary = _build(tmp, progress, {
                "repo": src.repo, "commit": src.commit, "url": src.url, "sha256": src.sha256,
                "files": len(kept),
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })  # fmt: skip
    finally:
        zip_path.unlink(missing_ok=True)  # verified and unpacked, or refused: not kept
        shutil.rmtree(downloads, ignore_errors=True)
    log(f"{target}: {summary['unique_voices']} voices, ready in "
        f"{time.perf_counter() - t0:.0f} s; program uses it without --library")  # fmt: skip
    return target / "presets.sqlite"
