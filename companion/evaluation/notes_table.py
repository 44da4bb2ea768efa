"""Every row of the main table played at other notes and velocities than the one it was judged
on: the six notes the six-note model hears, and velocities 20 / 64 / 127 at note 60 (the
paper's dynamics example). One-note models see only (60, 85); this shows what they miss.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from companion.config import SIX_NOTES
from companion.data.render import Renderer
from companion.dx7.voice import Voice
from companion.evaluation.metrics import convergence_of, log_mae_of, stft
from companion.io import write_atomic

# (MIDI note, velocity) columns: the six notes, then the dynamics at note 60.
PAIRS = ((40, 85), (50, 85), (60, 85), (70, 85), (60, 20), (60, 42), (60, 64), (60, 127))
SIX = [PAIRS.index(p) for p in SIX_NOTES]


def measure_notes(preds: dict, values: np.ndarray, renderer: Renderer,
                  progress: bool = True) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """Audio distances of every row's voices to the originals at every pair of PAIRS.

    Args:
        preds: row name -> (N, 145) voices, or None for a row not run.
        values: (N, 145) the original voices.

    Returns:
        row name -> {"log_stft_mae": (len(PAIRS), N), "sc": (len(PAIRS), N)} (NaN SC where
        the original is silent at that pair).
    """
    # the originals' |STFT| once (1024 / 256, as metrics.py), then each row against them
    targets = [[stft(a) for a in renderer.render_notes(Voice.from_values(v), PAIRS)]
               for v in values]  # fmt: skip
    out = {}
    for name, pred in preds.items():
        if pred is None:
            continue
        log = np.full((len(PAIRS), len(values)), np.nan)
        sc = np.full_like(log, np.nan)
        for i in tqdm(range(len(values)), desc=f"notes {name[:14]}", disable=not progress):
            audio = renderer.render_notes(Voice.from_values(pred[i]), PAIRS)
            for j, a in enumerate(audio):
                s, s_hat = targets[i][j], stft(a)
                log[j, i], sc[j, i] = log_mae_of(s, s_hat), convergence_of(s, s_hat)
        out[name] = {"log_stft_mae": log, "sc": sc}
    return out


def write_notes_tables(notes: dict, n: int, head: str, out: Path) -> dict:
    """figures/table_notes.{md,csv,yaml}: mean per row and pair, plus the mean of the six
    notes; returns the summary (row -> metric -> column -> value)."""
    cols = [f"{p[0]}/{p[1]}" for p in PAIRS] + ["six notes"]
    summary, rows_csv = {}, [["row", "metric", *cols]]
    lines = [f"{head} The voices at other (MIDI note / velocity) pairs than the 60 / 85 they "
             f"were inferred from; first {n} test voices, means.", ""]  # fmt: skip
    for metric, title in (("log_stft_mae", "log STFT MAE"), ("sc", "spectral convergence")):
        lines += [f"### {title}", "", "| row | " + " | ".join(cols) + " |",
                  "|" + "---|" * (len(cols) + 1)]  # fmt: skip
        for name, per in notes.items():
            vals = np.nanmean(per[metric], axis=1)
            six = float(np.nanmean(per[metric][SIX]))
            summary.setdefault(name, {})[metric] = {
                **{c: float(v) for c, v in zip(cols, vals)},
                "six notes": six,
            }
            rows_csv.append([name, metric, *[float(v) for v in vals], six])
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in [*vals, six]) + " |")
        lines.append("")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows_csv)
    write_atomic(out / "table_notes.md", "\n".join(lines).encode())
    write_atomic(out / "table_notes.csv", buf.getvalue().encode())
    write_atomic(out / "table_notes.yaml", yaml.safe_dump(summary, sort_keys=False).encode())
    return summary
