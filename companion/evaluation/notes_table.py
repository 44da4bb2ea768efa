"""Every row of the main table played at other notes and velocities than the one it was judged
on: the six notes the six-note model hears, and velocities 20 / 64 / 127 at note 60 (the
paper's dynamics example). One-note models see only (60, 85); this shows what they miss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from companion.config import SIX_NOTES
from companion.data.render import Renderer
from companion.dx7.voice import Voice
from companion.evaluation.metrics import convergence_of, log_mae_of, stft
from companion.evaluation.tables import write_table

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
    titles = {"log_stft_mae": "log STFT MAE", "sc": "spectral convergence"}
    summary, rows = {}, []
    for metric in titles:
        for name, per in notes.items():
            vals = np.nanmean(per[metric], axis=1)
            six = float(np.nanmean(per[metric][SIX]))
            summary.setdefault(name, {})[metric] = {
                **{c: float(v) for c, v in zip(cols, vals)},
                "six notes": six,
            }
            rows.append({"row": name, "metric": metric, **summary[name][metric]})
    data = pd.DataFrame(rows, columns=["row", "metric", *cols])
    sections = {title: data[data["metric"] == metric].drop(columns="metric")
                for metric, title in titles.items()}  # fmt: skip
    write_table(out / "table_notes", None, formats=("md", "csv", "yaml"), sections=sections,
                caption=f"{head} The voices at other (MIDI note / velocity) pairs than the 60 / "
                f"85 they were inferred from; first {n} test voices, means.",
                data=data, summary=summary)  # fmt: skip
    return summary
