"""The demo site: generated from a manifest, built by Jekyll, opened in headless Chromium."""

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

from companion.data.render import Renderer
from companion.publishing import site
from companion.publishing.plots import save_spectrogram, spectrogram_png
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


def _executed(path, cells):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, path)


def test_executed_notebooks_become_pages(tmp_path):
    """Executed notebooks -> pages of the site in its layout: outputs kept (text, tables,
    plots), local folders named as a reader knows them, no traceback published."""
    import nbformat.v4 as v4

    from companion.publishing import notebook_pages

    executed, data = tmp_path / "executed", tmp_path / "run" / "data"
    executed.mkdir()
    buf = io.BytesIO()
    save_spectrogram(np.zeros((16, 16)), buf)
    png = buf.getvalue()
    code = v4.new_code_cell(f'data_dir = "{data}"\nprint(data_dir)', outputs=[
        v4.new_output("stream", name="stdout", text=f"{data}/presets.sqlite: 120 voices\n"),
        v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode(),
                                            "text/plain": "<Figure>"}),
        v4.new_output("execute_result", data={"text/html": "<table><tr><td>{{ 1 }}</td></tr>"
                                              "</table>"}, execution_count=1),
    ])  # fmt: skip
    _executed(executed / "01_dataset.ipynb", [v4.new_markdown_cell("# 01 · Dataset\ntext"), code])
    widget = v4.new_code_cell("panel", outputs=[v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2,
                                                     "version_minor": 0}})])  # fmt: skip
    _executed(executed / "08_explorer.ipynb", [v4.new_markdown_cell("# 08 · Explorer"), widget])
    out = site.copy_source(tmp_path / "site")
    for name in ("main", "notes", "interpolation", "generate", "ood"):  # the tables page's
        (tmp_path / f"{name}.md").write_text(f"table {name}\n")
    site.write_tables({n: tmp_path / f"{n}.md" for n in ("main", "notes", "interpolation",
                                                         "generate", "ood")}, out)  # fmt: skip
    pages = notebook_pages.write_pages(executed, out, {str(data): "data"})
    assert [p.name for p in pages] == ["01_dataset.html", "08_explorer.html", "notebooks.html"]
    first = pages[0].read_text()
    assert first.startswith('---\nlayout: default\ntitle: "01 · Dataset"\n---\n')
    assert "data/presets.sqlite: 120 voices" in first and str(tmp_path) not in first
    assert "data:image/png;base64," in first and "<script" not in first
    assert "make app" in pages[1].read_text()
    built = site.build(out)
    page = (built / "notebooks" / "01_dataset.html").read_text()
    assert "{{ 1 }}" in page and ">Notebooks</a>" in page  # Jekyll left the notebook's text
    assert "08 · Explorer" in (built / "notebooks.html").read_text()
    # a traceback is never published
    error = v4.new_code_cell("1/0", outputs=[v4.new_output("error", ename="ZeroDivisionError",
                                                            evalue="", traceback=["..."])])
    _executed(executed / "02_train.ipynb", [error])
    with pytest.raises(ValueError, match="02_train.ipynb: an output holds a traceback"):
        notebook_pages.write_pages(executed, out)


def test_a_dense_plot_is_embedded_lighter():
    """A notebook's 200-dpi spectrogram grid (megabytes of PNG) is embedded at a width that
    reads, several times lighter, and still an image of the same aspect."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from companion.publishing.notebook_pages import MAX_WIDTH, lighter

    fig, axes = plt.subplots(3, 3, figsize=(10, 9))
    rng = np.random.default_rng(0)
    for ax in axes.flat:
        ax.imshow(rng.normal(size=(128, 200)).cumsum(1), aspect="auto", origin="lower")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=200)
    plt.close(fig)
    png = buf.getvalue()
    mime, small = lighter(png)
    img = Image.open(io.BytesIO(small))
    assert mime in ("image/png", "image/jpeg") and img.format == mime.split("/")[1].upper()
    assert img.width == MAX_WIDTH and abs(img.height / img.width - 1800 / 2000) < 0.01
    assert len(small) < len(png) / 3
