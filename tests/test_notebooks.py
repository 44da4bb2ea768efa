"""Notebooks: each .ipynb is in sync with its percent-format .py, and runs at smoke scale."""

import json
from pathlib import Path

import jupytext
import papermill
import pytest

from companion.site_check import check_site

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))


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


def run_notebook(path: Path, out: Path, **parameters) -> str:
    papermill.execute_notebook(str(path), str(out), cwd=str(path.parent), progress_bar=False,
                               parameters=parameters)  # fmt: skip
    return json.dumps(json.loads(out.read_text())["cells"])


def test_notebooks_run_in_order(cartridges, tmp_path):
    """The smoke reproduction: dataset, the table's five models, the table, the programming
    table, each notebook reading what the one before it wrote."""
    data, figures, out = tmp_path / "data", tmp_path / "figures", tmp_path / "programming"
    common = {"data_dir": str(data), "config": "smoke", "limit": 40}
    text = run_notebook(NOTEBOOKS[0], tmp_path / "01.ipynb", **common,
                        cartridges=str(cartridges[0]))  # fmt: skip
    assert "unique_voices          120" in text and "image/png" in text
    for layout in ("single", "six"):
        assert (data / f"dataset-smoke-{layout}-40" / "stats.json").exists()
    text = run_notebook(NOTEBOOKS[1], tmp_path / "02.ipynb", **common, epochs=2)
    assert text.count("2 epochs") == 5 and "image/png" in text
    for name in ("single-numonly", "single-numcat", "single-numcat++", "six-numcat++",
                 "single-numcat++-mlp"):  # fmt: skip
        assert (data / "runs" / f"smoke-{name}" / "model.yaml").exists()
    text = run_notebook(NOTEBOOKS[2], tmp_path / "03.ipynb", **common, test_voices=3,
                        figures_dir=str(figures))  # fmt: skip
    assert "not run" not in text and "image/png" in text
    for row in (
        "Num only",
        "NumCat",
        "NumCat++",
        "NumCat++, six notes",
        "NumCat++, MLP regression",
    ):
        assert f"| {row} | " in text
    assert (figures / "table_main.md").exists() and (figures / "table_notes.md").exists()
    text = run_notebook(NOTEBOOKS[3], tmp_path / "04.ipynb", **common, n_voices=3,
                        out_dir=str(out))  # fmt: skip
    assert "numonly SC" in text and "numcat++ SC" in text and "program SC" in text
    assert len(list(out.glob("*_program.syx"))) == 3
    assert len([p for p in out.glob("*.wav") if "_vel" not in p.name]) == 15  # 3 x 5 columns
    assert len(list(out.glob("*_numcatpp.png"))) == 3
    assert "velocity | one-note log-mel dist. (dB) | six-note" in text
    assert len(list(out.glob("*_vel127_six-note.wav"))) == 1
    interp, ood_dir = tmp_path / "interpolation", tmp_path / "ood"
    text = run_notebook(NOTEBOOKS[4], tmp_path / "05.ipynb", **common, pairs=3, voices=8,
                        out_dir=str(interp), figures_dir=str(figures))  # fmt: skip
    for k, mode in [(1, "latent"), (1, "naive"), (2, "latent"), (2, "naive")]:
        assert len(list((interp / f"example{k}" / mode).glob("step*.syx"))) == 7
        assert (interp / f"example{k}" / mode / "step7.png").exists()
    assert "| latent |" in text and "| latent prior |" in text
    assert (interp / "generated.syx").exists() and (figures / "interpolation.png").exists()
    text = run_notebook(NOTEBOOKS[5], tmp_path / "06.ipynb", **common, out_dir=str(ood_dir),
                        sources="gm-piano,faust-subtractive", figures_dir=str(figures))  # fmt: skip
    assert "| gm-piano | program |" in text and "image/png" in text
    assert (ood_dir / "faust-subtractive_retrieval.syx").exists()
    site_dir = tmp_path / "site"
    text = run_notebook(NOTEBOOKS[6], tmp_path / "07.ipynb", config="smoke",
                        data_dir=str(data), figures_dir=str(figures), site_dir=str(site_dir),
                        programming_dir=str(out), interpolation_dir=str(interp),
                        ood_dir=str(ood_dir))  # fmt: skip
    # 3 voices x 5 + 3 x 3 velocities + 4 paths x 7 steps + 2 sources x 4
    assert "'players': 60" in text and "built 4 pages" in text
    report = check_site(site_dir / "_site", tmp_path / "screenshot.png")
    assert sum(r["players"] for r in report.values()) == 60
    for page, r in report.items():
        assert not (r["console_errors"] or r["bad_urls"] or r["bad_audio"] or r["bad_images"]), page
    text = run_notebook(NOTEBOOKS[7], tmp_path / "08.ipynb", **common)
    assert "application/vnd.jupyter.widget-view+json" in text
