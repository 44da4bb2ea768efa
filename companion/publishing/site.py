"""The demo site's data: audio players and spectrograms from the results of the notebooks.

A manifest names, per section of the site, rows of cells, each cell a sound (.wav) and its
spectrogram (.png) on disk. ``write_site`` checks that every file is there (a missing one is
an error naming it, and nothing is written), encodes the sounds as mono mp3 (lameenc),
copies the images, and writes site/_data/<section>.yml, which the Jekyll pages loop over:

    {"programming": {"title": ..., "intro": ..., "columns": [...],
                     "rows": [{"title": "000348 ACCORDION2", "note": "harmonic",
                               "cells": [{"label": "original", "wav": PATH, "png": PATH}]}]}}

File names on the site are built from the row and cell names as strings ("000348" stays
"000348").
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from companion.io import atomic_dir, copy_atomic, write_atomic

MP3_KBPS = 96


def slug(text: str) -> str:
    """A file-name-safe form: letters, digits, '-' and '_' only ("numcat++" -> "numcatpp")."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text).replace("+", "p")).strip("-") or "x"


def mp3_bytes(wav: str | Path) -> bytes:
    """A sound file as mono mp3 (MP3_KBPS kbit/s), through lameenc."""
    import lameenc

    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    pcm = (np.clip(audio.mean(axis=1), -1.0, 1.0) * 32767).astype("<i2")
    enc = lameenc.Encoder()
    enc.set_bit_rate(MP3_KBPS)
    enc.set_in_sample_rate(sr)
    enc.set_channels(1)
    enc.set_quality(2)
    return enc.encode(pcm.tobytes()) + enc.flush()


def check_manifest(manifest: dict) -> None:
    """Every cell's wav and png exist; else a ValueError naming the first missing file."""
    for name, section in manifest.items():
        for row in section["rows"]:
            for cell in row["cells"]:
                for key in ("wav", "png"):
                    path = Path(cell[key])
                    if not path.is_file():
                        raise ValueError(f"{path}: missing ({key} of '{cell['label']}' in row "
                                         f"'{row['title']}' of section '{name}')")  # fmt: skip


def write_site(manifest: dict, site_dir: str | Path) -> dict:
    """Assets and _data/<section>.yml for every section of the manifest; returns counts
    {"sections", "rows", "players", "images"}."""
    check_manifest(manifest)
    site = Path(site_dir)
    counts = {"sections": 0, "rows": 0, "players": 0, "images": 0}
    for name, section in manifest.items():
        audio_dir, img_dir = site / "assets" / "audio" / name, site / "assets" / "img" / name
        rows = []
        # each section's assets are built in new folders swapped in for the old ones at the
        # end: a failure part-way leaves the previous site's assets
        with atomic_dir(audio_dir) as audio_tmp, atomic_dir(img_dir) as img_tmp:
            for row in section["rows"]:
                cells = []
                for cell in row["cells"]:
                    stem = f"{slug(row.get('key', row['title']))}_{slug(cell['label'])}"
                    write_atomic(audio_tmp / f"{stem}.mp3", mp3_bytes(cell["wav"]))
                    shutil.copyfile(cell["png"], img_tmp / f"{stem}.png")
                    cells.append({"label": str(cell["label"]),
                                  "audio": f"assets/audio/{name}/{stem}.mp3",
                                  "image": f"assets/img/{name}/{stem}.png"})  # fmt: skip
                rows.append({"title": str(row["title"]), "note": str(row.get("note", "")),
                             "cells": cells})  # fmt: skip
                counts["rows"] += 1
                counts["players"] += len(cells)
                counts["images"] += len(cells)
        data = {"title": section["title"], "intro": section.get("intro", ""),
                "columns": [str(c) for c in section.get("columns", [])], "rows": rows}  # fmt: skip
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        write_atomic(site / "_data" / f"{name}.yml", text.encode())
        counts["sections"] += 1
    return counts


def write_tables(tables: dict[str, str | Path], site_dir: str | Path) -> None:
    """Copy Markdown tables (figures/table_*.md) to site/_includes/tables/ for the tables page."""
    out = Path(site_dir) / "_includes" / "tables"
    out.mkdir(parents=True, exist_ok=True)
    for name, path in tables.items():
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: missing (table '{name}')")
        write_atomic(out / f"{slug(name)}.md", path.read_bytes())


SOURCE = Path(__file__).parents[2] / "site"  # the repository's Jekyll source
GENERATED = ("_data", "_site", ".jekyll-cache", "assets/audio", "assets/img", "_includes/tables",
             "notebooks", "notebooks.html")  # the last two: companion.publishing.notebook_pages


def copy_source(dst: str | Path, src: str | Path = SOURCE) -> Path:
    """The Jekyll source (layouts, pages, style) without generated data, into ``dst`` (for a
    site built elsewhere than site/, e.g. from a smoke run). Returns dst."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        return dst
    skip = {src / g for g in GENERATED}
    for path in sorted(src.rglob("*")):
        if any(path == s or s in path.parents for s in skip) or path.is_dir():
            continue
        copy_atomic(path, dst / path.relative_to(src))
    return dst


def build(site_dir: str | Path) -> Path:
    """``jekyll build`` of site_dir into site_dir/_site (Debian's jekyll); returns that folder."""
    import subprocess

    site_dir = Path(site_dir)
    if shutil.which("jekyll") is None:
        raise ValueError("jekyll is not installed: apt-get install jekyll (make setup-site)")
    out = site_dir / "_site"
    proc = subprocess.run(["jekyll", "build", "--quiet", "-s", str(site_dir), "-d", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise ValueError(f"{site_dir}: jekyll build failed: {proc.stderr.strip()[-500:]}")
    return out
