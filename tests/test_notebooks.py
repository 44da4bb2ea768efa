"""Notebooks: each .ipynb is in sync with its percent-format .py, and runs at smoke scale."""

import json
from pathlib import Path

import jupytext
import papermill
import pytest

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:4] == [
        "01_dataset", "02_train", "03_evaluate", "04_programming"]  # fmt: skip


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
    common = {"cartridges": str(cartridges[0]), "data_dir": str(tmp_path / "data"),
              "config": "smoke", "limit": 40, "notes": "six"}  # fmt: skip
    text = run_notebook(NOTEBOOKS[0], tmp_path / "01.ipynb", **common)
    assert "unique_voices          120" in text and "image/png" in text
    assert (tmp_path / "data" / "dataset-smoke-six-40" / "stats.json").exists()
    text = run_notebook(NOTEBOOKS[1], tmp_path / "02.ipynb", **common, epochs=2,
                        representation="numcat")  # fmt: skip
    assert "2 epochs" in text and "image/png" in text
    assert (tmp_path / "data" / "runs" / "smoke-six-numcat" / "model.yaml").exists()
    figures = tmp_path / "figures"
    text = run_notebook(NOTEBOOKS[2], tmp_path / "03.ipynb", **common, representation="numcat",
                        test_voices=3, figures_dir=str(figures))  # fmt: skip
    assert "| numcat, six notes, flow |" in text and "not run" in text and "image/png" in text
    assert (figures / "table_main.md").exists() and (figures / "table_main_voices.csv").exists()


def test_programming_notebook(cartridges, smoke_run, tmp_path):
    data, run = smoke_run
    # notebook 04 reads <data_dir>/dataset-<config>-<notes>-<limit>: point it at the fixture's
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset-smoke-single-120").symlink_to(data)
    out = tmp_path / "programming"
    text = run_notebook(NOTEBOOKS[3], tmp_path / "04.ipynb", data_dir=str(tmp_path / "data"),
                        limit=120, model=str(run), n_voices=3, out_dir=str(out))  # fmt: skip
    assert "network SC" in text and "image/png" in text
    assert len(list(out.glob("*_program.syx"))) == 3 and len(list(out.glob("*.wav"))) == 9
