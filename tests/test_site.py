"""The demo site: generated from a manifest, built by Jekyll, opened in headless Chromium."""

import json

import pytest
import soundfile as sf

from companion.data.render import Renderer
from companion.publishing import site
from companion.publishing.plots import spectrogram_png
from companion.publishing.site_check import check_site

from .conftest import FIXTURE_VOICES

TABLES = ("main", "notes", "interpolation", "generate", "ood")


def _manifest(tmp_path, n_rows=2):
    renderer, cells = Renderer(), []
    for k, voice in enumerate(FIXTURE_VOICES[: n_rows * 2]):
        wav = tmp_path / f"v{k}.wav"
        audio = renderer.render(voice)
        sf.write(wav, audio, 22050)
        cells.append({"label": "original" if k % 2 == 0 else "numcat++", "wav": str(wav),
                      "png": str(spectrogram_png(audio, tmp_path / f"v{k}.png"))})  # fmt: skip
    rows = [{"key": f"{k:06d}", "title": f"{k:06d} VOICE", "note": "harmonic",
             "cells": cells[2 * k : 2 * k + 2]} for k in range(n_rows)]  # fmt: skip
    return {"programming": {"title": "Programming", "intro": "Test.",
                            "columns": ["original", "NumCat++"], "rows": rows}}  # fmt: skip


def test_missing_file_is_refused_and_nothing_written(tmp_path):
    manifest = _manifest(tmp_path, 1)
    manifest["programming"]["rows"][0]["cells"][1]["png"] = str(tmp_path / "gone.png")
    out = tmp_path / "site"
    with pytest.raises(ValueError, match="gone.png: missing .png of 'numcat\\+\\+'"):
        site.write_site(manifest, out)
    assert not out.exists()


def test_site_builds_and_plays_in_chromium(tmp_path):
    manifest = _manifest(tmp_path)
    out = site.copy_source(tmp_path / "site")
    counts = site.write_site(manifest, out)
    assert counts == {"sections": 1, "rows": 2, "players": 4, "images": 4}
    assert (out / "assets" / "audio" / "programming" / "000001_numcatpp.mp3").exists()
    data = (out / "_data" / "programming.yml").read_text()
    assert "title: 000000 VOICE" in data or "title: '000000 VOICE'" in data
    for name in TABLES:
        (tmp_path / f"{name}.md").write_text(f"| row | {name} |\n|---|---|\n| a | 1.0 |\n")
    site.write_tables({n: tmp_path / f"{n}.md" for n in TABLES}, out)
    built = site.build(out)
    assert (built / "index.html").exists() and (built / "tables.html").exists()
    shot = tmp_path / "screenshot.png"
    report = check_site(built, shot)
    print(json.dumps(report, indent=1))
    assert set(report) >= {"index.html", "interpolation.html", "out-of-domain.html", "tables.html"}
    for page, r in report.items():
        assert not r["console_errors"] and not r["bad_urls"], page
        assert not r["bad_audio"] and not r["bad_images"], page
    assert report["index.html"]["players"] == 4 and report["index.html"]["images"] == 4
    assert "<table>" in (built / "tables.html").read_text()
    assert shot.stat().st_size > 10_000
