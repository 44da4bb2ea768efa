"""The one table writer: a pandas DataFrame to Markdown, CSV, LaTeX and YAML files, each written
atomically (companion.io), so a table on disk is always a whole one.

Markdown is what the notebooks, the site and the README show: a caption paragraph, the table,
note paragraphs, then optional sections (``### title`` and a table each). CSV holds the numbers
behind the table at full precision; YAML a summary (by default the table's rows).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import yaml

from companion.io import write_atomic

FORMATS = ("md", "csv", "tex", "yaml")
MISSING = "-"  # a NaN cell (a metric with no defined value, e.g. SC of a silent original)


def cell(value, digits: int = 3) -> str:
    """A table cell as text: floats to ``digits`` decimals, NaN as MISSING, the rest as is."""
    if isinstance(value, numbers.Integral):  # bools and ints before floats: 3, not 3.000
        return str(value)
    if isinstance(value, numbers.Real):
        return MISSING if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|"})


def md_text(text: str) -> str:
    """Text as it reads in a Markdown table cell: a voice named ``BRASS\\1`` or ``*PIANO*``
    prints as it is, not as an escape or emphasis (backslashes, backquotes, ``*_[]<>|``
    escaped)."""
    return str(text).translate(_MD_SPECIAL)


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub pipe table of ``frame`` (index left out), cells formatted by ``cell``.

    Written here rather than with ``DataFrame.to_markdown``, which needs the ``tabulate``
    package; a pipe table of formatted cells is a header, a rule and one line per row.
    """
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(md_text(cell(v, digits)) for v in row) + " |")
    return "\n".join(lines)


def latex(frame: pd.DataFrame, digits: int = 3) -> str:
    """A LaTeX tabular of ``frame`` (first column left, the others right, \\hline rules so
    that no package is needed), cells formatted by ``cell`` and escaped, through pandas'
    Styler."""
    text = frame.map(lambda v: cell(v, digits))
    style = text.style.hide(axis="index").format(escape="latex")
    style = style.format_index(escape="latex", axis=1)
    style = style.set_table_styles([{"selector": rule, "props": ":hline;"}
                                    for rule in ("toprule", "midrule", "bottomrule")])  # fmt: skip
    return style.to_latex(column_format="l" + "r" * (len(frame.columns) - 1))


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values (YAML cannot write numpy scalars)."""
    return [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]  # fmt: skip


def write_table(path: str | Path, frame: pd.DataFrame | None, *,
                formats: Iterable[str] = ("md", "csv"), caption: str = "",
                notes: Iterable[str] = (), sections: Mapping[str, pd.DataFrame] | None = None,
                data: pd.DataFrame | None = None, summary=None,
                digits: int = 3) -> list[Path]:  # fmt: skip
    """Write a table as ``PATH.md``, ``PATH.csv``, ``PATH.tex`` and / or ``PATH.yaml``.

    Args:
        path: the files' path without extension, e.g. ``figures/table_main``.
        frame: the table as read (Markdown, LaTeX); None for a Markdown page of sections only.
        formats: any of FORMATS.
        caption: the paragraph above the table (Markdown).
        notes: paragraphs below it (Markdown).
        sections: more tables below the notes, each under ``### title`` (Markdown only).
        data: the numbers behind the table, for the CSV (default: ``frame``), written whole
            at full precision, NaN as an empty field.
        summary: what the YAML holds (default: ``frame``'s rows as a list of mappings).
        digits: decimals of float cells in Markdown and LaTeX.

    Returns:
        The paths written, in the order of ``formats``.
    """
    path = Path(path)
    formats = list(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"{path}: unknown table format(s) {sorted(unknown)}; use {FORMATS}")
    data = frame if data is None else data
    written = []
    for fmt in formats:
        out = path.with_name(f"{path.name}.{fmt}")
        if fmt == "md":
            parts = [caption] if caption else []
            parts += [markdown(frame, digits)] if frame is not None else []
            parts += list(notes)
            for title, table in (sections or {}).items():
                parts += [f"### {title}", markdown(table, digits)]
            text = "\n\n".join(parts) + "\n"
        elif fmt == "csv":
            text = data.to_csv(index=False)
        elif fmt == "tex":
            text = latex(frame, digits)
        else:
            text = yaml.safe_dump(_records(frame) if summary is None else summary,
                                  sort_keys=False, allow_unicode=True)  # fmt: skip
        written.append(write_atomic(out, text))
    return written
