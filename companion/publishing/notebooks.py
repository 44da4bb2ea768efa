"""Where the notebooks keep their work, so that each finds what the one before it made.

    <data>/presets.sqlite                              notebook 01
    <data>/dataset-<config>-<notes>-<limit|all>/       notebook 01 (one per note layout)
    <data>/runs/<config>-<notes>-<representation>[-mlp]/   notebook 02 (one per table row)

A table row is written ``representation[/six][/mlp]``: ``numcat++/six`` is the six-note
model, ``numcat++/mlp`` the MLP regression baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from companion.dx7.params import ENCODINGS

ALL_ROWS = "numonly,numcat,numcat++,numcat++/six,numcat++/mlp"


@dataclass(frozen=True)
class Row:
    """One model of the paper's table: its preset representation, note layout and regression."""

    representation: str
    notes: str = "single"
    regression: str = "flow"

    @classmethod
    def parse(cls, text: str) -> Row:
        rep, *flags = text.strip().split("/")
        unknown = set(flags) - {"six", "mlp"}
        if rep not in ENCODINGS or unknown:
            raise ValueError(f"bad table row {text!r}: write representation[/six][/mlp] with "
                             f"a representation among {', '.join(ENCODINGS)}")  # fmt: skip
        return cls(rep, "six" if "six" in flags else "single", "mlp" if "mlp" in flags else "flow")

    def run_dir(self, data: str | Path, config: str) -> Path:
        mlp = "-mlp" if self.regression == "mlp" else ""
        return Path(data) / "runs" / f"{config}-{self.notes}-{self.representation}{mlp}"


def parse_rows(text: str) -> list[Row]:
    """``"numonly,numcat++/six"`` -> [Row("numonly"), Row("numcat++", "six")]."""
    return [Row.parse(t) for t in text.split(",") if t.strip()]


def dataset_dir(data: str | Path, config: str, notes: str, limit: int | None) -> Path:
    return Path(data) / f"dataset-{config}-{notes}-{limit or 'all'}"
