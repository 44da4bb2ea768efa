"""The one table writer: what it writes reads back as the frame it was given."""

import numpy as np
import pandas as pd
import pytest
import yaml

from companion.evaluation.tables import latex, markdown, write_table


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"row": ["Num only", "A & B | C", "not measured"],
                         "voices": [32, 7, 0], "sc": [0.12345, np.nan, 1.0],
                         "pitch (cents)": [-3.21, 1200.0, np.nan]})  # fmt: skip


def test_every_format_reads_back(frame, tmp_path):
    paths = write_table(tmp_path / "t", frame, formats=("md", "csv", "tex", "yaml"),
                        caption="Caption.", notes=["A note."])  # fmt: skip
    assert [p.name for p in paths] == ["t.md", "t.csv", "t.tex", "t.yaml"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    back = pd.DataFrame(yaml.safe_load((tmp_path / "t.yaml").read_text()))
    pd.testing.assert_frame_equal(back, frame)
    md = (tmp_path / "t.md").read_text().split("\n\n")
    assert md[0] == "Caption." and md[2] == "A note.\n"
    assert md[1].splitlines() == [
        "| row | voices | sc | pitch (cents) |",
        "|---|---|---|---|",
        "| Num only | 32 | 0.123 | -3.210 |",
        "| A & B \\| C | 7 | - | 1200.000 |",
        "| not measured | 0 | 1.000 | - |",
    ]
    assert not list(tmp_path.glob(".*"))  # no temporary left


def test_markdown_cells_parse_as_the_numbers(frame):
    rows = [line.split(" | ") for line in markdown(frame, digits=4).splitlines()[2:]]
    assert float(rows[0][2]) == pytest.approx(0.12345, abs=5e-5)
    assert [r[1] for r in rows] == ["32", "7", "0"]


def test_latex_escapes_and_rules(frame):
    tex = latex(frame)
    assert tex.startswith("\\begin{tabular}{lrrr}\n\\hline\n")
    assert "A \\& B | C & 7 & - & 1200.000 \\\\" in tex
    assert tex.count("\\hline") == 3 and tex.rstrip().endswith("\\end{tabular}")


def test_sections_and_separate_data(frame, tmp_path):
    data = pd.DataFrame({"row": ["x"], "value": [0.5]})
    write_table(tmp_path / "s", None, formats=("md", "csv"), caption="Head.",
                sections={"first": frame.head(1), "second": frame.tail(1)}, data=data)  # fmt: skip
    md = (tmp_path / "s.md").read_text()
    assert md.startswith("Head.\n\n### first\n\n| row |") and "\n### second\n\n" in md
    assert (tmp_path / "s.csv").read_text() == "row,value\nx,0.5\n"


def test_unknown_format_writes_nothing(frame, tmp_path):
    with pytest.raises(ValueError, match="unknown table format"):
        write_table(tmp_path / "t", frame, formats=("md", "xlsx"))
    assert list(tmp_path.iterdir()) == []


def test_csv_is_full_precision(tmp_path):
    x = 0.1 + 0.2  # not 0.3: the CSV keeps every digit
    write_table(tmp_path / "p", pd.DataFrame({"x": [x]}), formats=("csv",))
    assert float((tmp_path / "p.csv").read_text().split()[1]) == x
