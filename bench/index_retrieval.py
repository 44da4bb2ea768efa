"""Retrieval of the lab input against the exhaustive lookup it stands for.

    .venv/bin/python bench/index_retrieval.py --db data/presets.sqlite [--queries 600]

Queries: renders of test-split voices at note 60, velocity 85, held 3 s, 4 s, at their own
level (as bench/program_quality.py gives them). Library: the train split. Truth: the
exhaustive nearest train voice by L2 on the full-resolution log10 mel of its render
(companion.matching.logmel.EMBEDDING, every train voice rendered). Rows: the index's first
stage alone (its starts: ``Index.query``, 64 voices) and program's retrieval (both stages,
the shortlist rendered like the input: ``Programmer.find_candidates`` at quality good, its
16 candidates). Columns: how often the top 1 is the exhaustive top 1, how often the exhaustive
top 1 is among the voices kept (16, or the first stage's 64), how much farther (RMS log-mel
difference, dB) the top 1 is than the exhaustive top 1, the index file's size and one query's
milliseconds. Recordings at any key and velocity: bench/recordings.py. Writes
figures/table_index.md / .csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from program_quality import Train

from companion.data import presets
from companion.data.render import render_many
from companion.evaluation.paper_table import provenance
from companion.evaluation.tables import write_table
from companion.matching.index import Index
from companion.matching.logmel import EMBEDDING
from companion.matching.program import Programmer
from companion.matching.retrieval import SHORTLIST
from companion.matching.take import read_take


def scores(top: list[list[int]], truth: np.ndarray, train: Train, queries: np.ndarray) -> dict:
    """top: each query's train rows, best first; truth (Q,) the exhaustive top 1's row."""

    def rms_db(q, row):  # RMS log-mel difference, dB (10 x log10 units)
        return 10.0 * float(np.sqrt(np.square(train.features[row] - queries[q]).mean()))

    excess = [rms_db(q, t[0]) - rms_db(q, truth[q]) for q, t in enumerate(top)]
    return {"top 1 = exhaustive %": 100 * float(np.mean([t[0] == r for t, r in zip(top, truth)])),
            "exhaustive among those kept %": 100 * float(np.mean([r in t for t, r in
                                                                  zip(top, truth)])),
            "top 1 farther, dB (mean)": float(np.mean(excess)),
            "top 1 farther, dB (max)": float(np.max(excess))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--cache", default="data/bench-cache")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args()
    index = Index.open(args.db, progress=True)
    train = Train(args.db, Path(args.cache))
    row_of = {vid: k for k, vid in enumerate(train.ids)}
    test = presets.load(args.db, split="test")
    rng = np.random.default_rng(0)
    picked = [test[i] for i in rng.choice(len(test), args.queries, replace=False)]
    audio = render_many([v for _, v in picked], [(60, 85)], progress=False)[:, 0]
    keep = np.sqrt(np.mean(audio**2, axis=1)) > 1e-3  # a silent query has no nearest voice
    audio = audio[keep]
    queries = EMBEDDING(audio)
    truth = train.nearest_rows(queries, 1)[:, 0]
    size = index.path.stat().st_size / 2**20
    rows = []
    t0 = time.perf_counter()
    first = [[row_of[h.id] for h in index.query(a, SHORTLIST, split="train")] for a in audio]
    ms = 1e3 * (time.perf_counter() - t0) / len(audio)
    rows.append({"method": f"first stage: the index's starts ({SHORTLIST} kept)",
                 **scores(first, truth, train, queries), "MB (whole library)": size,
                 "query ms": ms})  # fmt: skip
    both = []
    with Programmer(library=index, quality="good", split="train") as prog:
        prog.warm_up()
        t0 = time.perf_counter()
        for k, a in enumerate(audio):
            take = read_take(Path(f"q{k}"), prog.cfg, 60, 85, 3.0, audio=a, level_known=True,
                             onset_s=0.0)  # fmt: skip
            _, _, library = prog.find_candidates([take], "query")
            both.append([row_of[c.id] for c in library])
        ms = 1e3 * (time.perf_counter() - t0) / len(audio)
    rows.append({"method": "both stages: program's retrieval (16 kept)",
                 **scores(both, truth, train, queries), "MB (whole library)": size,
                 "query ms": ms})  # fmt: skip
    t = pd.DataFrame(rows)
    note = (f"`bench/index_retrieval.py --queries {args.queries}`, {provenance()}: "
            f"{len(audio)} audible test-split voices as queries against the "
            f"{len(train.ids)} train-split voices, at note 60, velocity 85, held 3 s, their "
            "own level. Truth: the exhaustive nearest train voice by L2 on the full-resolution "
            "log10 mel (64 bands, STFT 1024 / hop 512, every frame of the 4 s render). MB: the "
            f"index file for the whole library ({len(index)} voices). Query ms: one process "
            "for the first stage; the second (its renders, and the play fitted before them) on "
            "the pool of engines (every core).")  # fmt: skip
    write_table(Path(args.out) / "table_index", t, caption=note, digits=1)
    print(t.to_string(index=False))


if __name__ == "__main__":
    main()
