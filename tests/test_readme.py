"""The README's results are the tables': written from figures/*.csv, never typed twice."""

from pathlib import Path

import pandas as pd
import pytest

from companion.publishing import readme

ROOT = Path(__file__).parents[1]


def test_readme_results_are_the_tables():
    text = (ROOT / "README.md").read_text()
    block = text.split(readme.BEGIN, 1)[1].split(readme.END, 1)[0]
    assert readme.BEGIN + block + readme.END == readme.results_block(ROOT / "figures"), (
        "README.md's results differ from figures/*.csv: run `make readme`")


def test_a_changed_table_changes_the_readme(tmp_path):
    """The block follows the tables: a number changed in a CSV shows, and update() writes it
    between the markers only."""
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in ("table_program.csv", "table_recordings.csv", "table_main.csv",
                 "table_far_sounds.csv", "table_far_sounds_sounds.csv"):
        (figures / name).write_bytes((ROOT / "figures" / name).read_bytes())
    t = pd.read_csv(figures / "table_recordings.csv")
    t.loc[t["method"] == "recording, as program read it", "SC"] = 0.123456
    t.to_csv(figures / "table_recordings.csv", index=False)
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n\n{readme.BEGIN}\nold\n{readme.END}\n\noutro\n")
    assert readme.update(doc, figures)
    new = doc.read_text()
    assert new.startswith("intro\n\n") and new.endswith("\n\noutro\n")
    assert "| recording, as program read it | 0.123 |" in new and "old" not in new
    assert not readme.update(doc, figures)  # nothing left to change
    doc.write_text("no markers\n")
    with pytest.raises(ValueError, match="no results markers"):
        readme.update(doc, figures)


def test_the_best_quality_recordings_show_where_they_were_measured(tmp_path):
    """The `--quality best` recordings paragraph comes from its own table, and is left out
    where that table was never made."""
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in ("table_program.csv", "table_recordings.csv", "table_main.csv",
                 "table_far_sounds.csv", "table_far_sounds_sounds.csv"):
        (figures / name).write_bytes((ROOT / "figures" / name).read_bytes())
    assert "At `--quality best`" not in readme.results_block(figures)
    t = pd.read_csv(ROOT / "figures" / "table_recordings_best.csv")
    t.loc[t["method"] == "recording, as program read it", "SC"] = 0.111111
    t.loc[t["method"] == "exhaustive top 16 + selection", "six other keys: SC"] = 0.987654
    t.to_csv(figures / "table_recordings_best.csv", index=False)
    block = readme.results_block(figures)
    assert "the recording SC 0.111 (" in block and "against 0.988 for the best of 16" in block
