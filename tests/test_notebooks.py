"""Notebooks: each .ipynb is in sync with its percent-format .py, and runs at smoke scale."""

import json
from pathlib import Path

import jupytext
import papermill
import pytest

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:1] == ["01_dataset"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(path):
    paired = path.with_suffix(".py")
    assert paired.exists(), f"{paired.name} missing: run `jupytext --sync {path}`"
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(jupytext.read(path)) == cells(jupytext.read(paired)), (
        f"{path.name} and {paired.name} differ: run `jupytext --sync {path}`"
    )


def test_dataset_notebook_runs(cartridges, tmp_path):
    out = tmp_path / "01.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS[0]),
        str(out),
        cwd=str(NOTEBOOKS[0].parent),
        progress_bar=False,
        parameters={
            "cartridges": str(cartridges[0]),
            "data_dir": str(tmp_path / "data"),
            "config": "smoke",
            "limit": 40,
            "notes": "six",
        },
    )
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert "unique_voices          120" in text and "image/png" in text
    assert (tmp_path / "data" / "dataset-smoke-six-40" / "stats.json").exists()
