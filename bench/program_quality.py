"""How well `companion program` matches a sound, against retrieval, in one table.

    .venv/bin/python bench/program_quality.py --db data/presets.sqlite [--voices 200]
        [--qualities fast good best] [--out figures]

Targets: renders of test-split voices (note 60, velocity 85) and every sound of `companion
sounds` (General MIDI instruments through FluidSynth, Faust programs). The library is the
database's retrieval index restricted to the train split, so no test voice is ever retrieved.
Rows, all in this run on this machine: INIT VOICE, the network's answer alone, retrieval's top
1 (the nearest train voice by the index's log-mel embedding), retrieval's top 16 with the best
chosen by rendering (companion.matching.loss), and `program` at each quality. Columns: the
paper's audio metrics (spectral convergence, MAE of log10 |STFT|, MAE of 13 MFCCs; mean and
median), engine evaluations and seconds per sound. Silent test voices (RMS <= 0.001) are
skipped: there is nothing to match. Writes figures/table_program.md and .csv and
prints the ratios the project's targets are stated in.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from companion.data import presets
from companion.data.instruments import SOURCES, render_source
from companion.data.render import Renderer
from companion.dx7.voice import INIT_VOICE
from companion.evaluation.metrics import log_stft_mae, mfcc_mae, spectral_convergence
from companion.evaluation.paper_table import code_commit
from companion.evaluation.tables import write_table
from companion.io import write_atomic
from companion.matching.index import Index
from companion.matching.loss import Target
from companion.matching.program import Programmer

# the project's targets (issue 11): ratios to a retrieval row, on SC and MFCC MAE
TARGETS = [
    ("test voices", "program fast", "retrieval top 1", "sc", 0.8),
    ("test voices", "program fast", "retrieval top 1", "mfcc", 0.8),
    ("test voices", "program best", "retrieval top 1", "sc", 0.6),
    ("test voices", "program best", "retrieval top 1", "mfcc", 0.8),
    ("other instruments", "program best", "retrieval top 16 + selection", "sc", 0.8),
    ("other instruments", "program best", "retrieval top 16 + selection", "mfcc", 0.8),
]


def metrics(target: np.ndarray, render: np.ndarray) -> dict[str, float]:
    return {
        "sc": spectral_convergence(target, render),
        "log_stft": log_stft_mae(target, render),
        "mfcc": mfcc_mae(target, render),
    }


def measure(targets: dict[str, np.ndarray], index: Index, qualities: list[str],
            jobs: int | None) -> list[dict]:  # fmt: skip
    """One row per (method, target)."""
    renderer = Renderer()
    rows = []

    def add(method, name, voice, evals, seconds):
        rows.append({"method": method, "target": name, "evals": evals, "seconds": seconds,
                     **metrics(targets[name], renderer.render(voice))})  # fmt: skip

    network = Programmer(candidates=1, library=None, quality="fast", jobs=1)
    for name, audio in targets.items():
        add("INIT VOICE", name, INIT_VOICE, 0, 0.0)
        t0 = time.perf_counter()
        r = network.run_audio(audio, Path(name), tune=False)
        add("network alone", name, r.voice, 1, time.perf_counter() - t0)
        t0 = time.perf_counter()
        near = index.query(audio, 16, split="train")
        voices = index.voices([i for i, _ in near])
        t1 = time.perf_counter() - t0
        add("retrieval top 1", name, voices[0], 1, t1)
        t0 = time.perf_counter()
        losses = Target(audio).loss(np.stack([renderer.render(v) for v in voices]))
        add(
            "retrieval top 16 + selection",
            name,
            voices[int(np.argmin(losses))],
            16,
            t1 + time.perf_counter() - t0,
        )  # one process, as a user would run it
    for q in qualities:
        with Programmer(library=index, quality=q, jobs=jobs, split="train") as prog:
            prog.warm_up()
            for name, audio in targets.items():
                t0 = time.perf_counter()
                r = prog.run_audio(audio, Path(name))
                add(f"program {q}", name, r.voice, r.evals, time.perf_counter() - t0)
    return rows


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    g = df.groupby(["set", "method"], sort=False)
    out = pd.DataFrame({
        "SC mean": g["sc"].mean(), "SC median": g["sc"].median(),
        "log-STFT MAE mean": g["log_stft"].mean(), "log-STFT MAE median": g["log_stft"].median(),
        "MFCC MAE mean": g["mfcc"].mean(), "MFCC MAE median": g["mfcc"].median(),
        "evaluations": g["evals"].mean(), "s / sound": g["seconds"].mean(), "sounds": g.size(),
    })  # fmt: skip
    return out.reset_index()


def verdicts(t: pd.DataFrame) -> list[str]:
    col = {"sc": "SC mean", "mfcc": "MFCC MAE mean"}
    lines = []
    for where, row, base, metric, limit in TARGETS:
        sel = t[t["set"] == where].set_index("method")
        if row not in sel.index or base not in sel.index:
            continue
        ratio = sel.loc[row, col[metric]] / sel.loc[base, col[metric]]
        mark = "met" if ratio <= limit else "MISSED"
        lines.append(f"{where}: {row} / {base} on {metric.upper()}: {ratio:.2f} "
                     f"(target <= {limit}): {mark}")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="preset database of the whole library")
    ap.add_argument("--voices", type=int, default=200, help="test-split voices")
    ap.add_argument("--sources", nargs="*", default=SOURCES, help="other instruments")
    ap.add_argument("--qualities", nargs="+", default=["fast", "good", "best"])
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--out", default="figures")
    args = ap.parse_args()
    index = Index.open(args.db, progress=True)
    rng = np.random.default_rng(0)
    test = presets.load(args.db, split="test")
    renderer = Renderer()
    voices = {}
    for i in rng.permutation(len(test)):  # audible test voices only: a silent one has no match
        audio = renderer.render(test[i][1])
        if np.sqrt(np.mean(audio**2)) > 1e-3:
            voices[f"test {test[i][0]}"] = audio
        if len(voices) == args.voices:
            break
    sets = {
        "test voices": voices,
        "other instruments": {s: render_source(s) for s in args.sources},
    }
    rows = []
    for where, targets in sets.items():
        if not targets:
            continue
        print(f"{where}: {len(targets)} sounds", file=sys.stderr)
        rows += [{"set": where, **r} for r in measure(targets, index, args.qualities, args.jobs)]
    t = table(rows)
    found = verdicts(t)
    out = Path(args.out)
    note = (f"`bench/program_quality.py --voices {args.voices}` on {os.cpu_count()} CPU cores, "
            f"commit {code_commit()}; library: the train split of {Path(args.db).name} "
            f"({int((index.splits == 'train').sum())} voices), test voices and other "
            "instruments at note 60, velocity 85, 4 s. SC: spectral convergence; MAEs of log10 "
            "|STFT| (STFT 1024 / 256) and of 13 MFCCs; lower is better.")  # fmt: skip
    write_table(
        out / "table_program",
        t,
        caption=note,
        notes=["Targets (ratios of the means):\n\n" + "\n".join(f"- {v}" for v in found)],
    )
    write_atomic(out / "table_program_sounds.csv", pd.DataFrame(rows).to_csv(index=False))
    print(t.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("\n".join(found))


if __name__ == "__main__":
    main()
