"""Notebooks: each .ipynb is in sync with its percent-format .py, and runs at smoke scale."""

import json
import subprocess
from pathlib import Path

import jupytext
import pytest
import soundfile as sf

from companion.publishing.site_check import check_site

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_dataset", "02_train", "03_evaluate", "04_programming", "05_interpolation",
        "06_out_of_domain", "07_site", "08_explorer"]  # fmt: skip


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(path):
    paired = path.with_suffix(".py")
    assert paired.exists(), f"{paired.name} missing: run `jupytext --sync {path}`"
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(jupytext.read(path)) == cells(jupytext.read(paired)), (
        f"{path.name} and {paired.name} differ: run `jupytext --sync {path}`"
    )


def test_make_reproduce_smoke(cartridges, tmp_path):
    """`make reproduce CONFIG=smoke`: dataset, the table's five models, the tables, the
    programming table and the multi-note example, interpolation, other instruments, the site
    (opened in Chromium) and the explorer, each notebook reading what the one before wrote."""
    data, figures, site_dir = tmp_path / "data", tmp_path / "figures", tmp_path / "site"
    executed = tmp_path / "executed"
    proc = subprocess.run(
        ["make", "-C", str(ROOT), "reproduce", "CONFIG=smoke", f"DATA={data}",
         f"FIGURES={figures}", f"SITE={site_dir}", f"CARTRIDGES={cartridges[0]}",
         f"NOTEBOOKS_OUT={executed}"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = {p.stem[:2]: json.dumps(json.loads(p.read_text())["cells"])
            for p in executed.glob("*.ipynb")}  # fmt: skip
    assert sorted(text) == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert "unique_voices          120" in text["01"]
    for layout in ("single", "six"):
        assert (data / f"dataset-smoke-{layout}-64" / "stats.json").exists()
    assert text["02"].count("2 epochs") == 5
    for name in ("single-numonly", "single-numcat", "single-numcat++", "six-numcat++",
                 "single-numcat++-mlp"):  # fmt: skip
        assert (data / "runs" / f"smoke-{name}" / "model.yaml").exists()
    assert "not run" not in text["03"]
    for row in (
        "Num only",
        "NumCat",
        "NumCat++",
        "NumCat++, six notes",
        "NumCat++, MLP regression",
    ):
        assert f"| {row} | " in text["03"]
    for table in ("main", "notes", "interpolation", "generate", "ood"):
        # a published table names its models and data, never a path of the machine
        assert str(tmp_path) not in (figures / f"table_{table}.md").read_text(), table
    assert "run smoke-single-numonly (smoke config, 2 epochs" in text["03"]
    prog = data / "04_programming"
    n = len(list(prog.glob("*_program-best.syx")))
    assert n >= 3 and len(list(prog.glob("*_program-fast.syx"))) == n
    assert "numonly SC" in text["04"] and "numcat++ SC" in text["04"]
    assert "program fast SC" in text["04"] and "program best SC" in text["04"]
    assert len([p for p in prog.glob("*.wav") if "_vel" not in p.name]) == 6 * n  # 6 columns
    assert len(list(prog.glob("*_vel127_six-note.wav"))) == 1
    interp = data / "05_interpolation"
    for k, mode in [(1, "latent"), (1, "naive"), (2, "latent"), (2, "naive")]:
        assert len(list((interp / f"example{k}" / mode).glob("step*.syx"))) == 7
    assert "| latent prior |" in text["05"] and (interp / "generated.syx").exists()
    assert (data / "06_out_of_domain" / "faust-clarinet_program.syx").exists()
    # one player per sound that notebooks 04-06 handed to the site (their site.json), each a
    # file they wrote; the site must show every one of them
    manifest = {}
    for folder in (prog, interp, data / "06_out_of_domain"):
        manifest.update(json.loads((folder / "site.json").read_text()))
    cells = [c for sec in manifest.values() for row in sec["rows"] for c in row["cells"]]
    assert all(Path(c["wav"]).is_file() and Path(c["png"]).is_file() for c in cells)
    assert {p.resolve() for p in interp.rglob("step*.wav")} <= {Path(c["wav"]).resolve()
                                                                 for c in cells}  # fmt: skip
    # recordings like a user's, programmed from the files alone, and --variants
    recordings = manifest["recordings"]["rows"]
    assert len(recordings) == 2 and all(len(r["cells"]) == 6 for r in recordings)
    assert all("the voice plays it at key" in r["note"] for r in recordings)
    assert "SC as printed" in text["04"] and "SC an octave up" in text["04"]
    recorded = sf.info(prog / "recordings" / f"{recordings[0]['key']}.wav")
    assert (recorded.samplerate, recorded.channels) == (44100, 2)
    assert len(manifest["variants"]["rows"][0]["cells"]) >= 3  # the recording, >= 2 others
    players = len(cells)
    assert f"'players': {players}" in text["07"] and "built 4 pages" in text["07"]
    report = check_site(site_dir / "_site", tmp_path / "screenshot.png")
    assert sum(r["players"] for r in report.values()) == players
    for page, r in report.items():
        assert not (r["console_errors"] or r["bad_urls"] or r["bad_audio"] or r["bad_images"]), page
    assert "application/vnd.jupyter.widget-view+json" in text["08"]
    # every executed notebook is a page of the site (checked in Chromium above), with its
    # outputs, and no local path of this machine nor a traceback in it
    pages = sorted((site_dir / "_site" / "notebooks").glob("*.html"))
    assert [p.stem[:2] for p in pages] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    for p in pages:
        page = p.read_text()
        assert str(tmp_path) not in page and "Traceback" not in page, p.name
    assert "unique_voices" in pages[0].read_text() and "data:image/" in pages[2].read_text()
    assert {f"notebooks/{p.name}" for p in pages} | {"notebooks.html"} <= set(report)
