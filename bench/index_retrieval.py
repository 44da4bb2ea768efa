"""Retrieval index against the exhaustive search it stands for, and the choices behind it.

    .venv/bin/python bench/index_retrieval.py --db data/presets.sqlite [--queries 600]

Queries: renders of test-split voices (note 60, velocity 85). Library: the train split. The
truth is the exhaustive nearest train voice by L2 on the full-resolution log-mel
(companion.matching.index.LogMel, every train voice's render). Rows: the index as built
(``Index.open``), and PCA projections fitted here on the same renders (1,536 / 1,024 / 512
components, coordinates float16 or int8 with one scale per component). Columns: how often the
top 1 is the exhaustive top 1, how often the exhaustive top 1 is in the top 16, how much
farther (RMS log-mel difference, dB) the top 1 is than the exhaustive top 1, the bytes the whole
library would take, and one query's milliseconds (the index row). Writes
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
from companion.matching.index import EMBEDDING, Index, fit_pca


def scores(top: np.ndarray, truth: np.ndarray, train: Train, queries: np.ndarray) -> dict:
    """top (Q, 16) a method's nearest train rows, truth (Q,) the exhaustive top 1."""

    def rms_db(q, row):  # RMS log-mel difference, dB (10 x log10 units)
        return 10.0 * float(np.sqrt(np.square(train.features[row] - queries[q]).mean()))

    excess = [rms_db(q, top[q, 0]) - rms_db(q, truth[q]) for q in range(len(truth))]
    return {"top 1 = exhaustive %": 100 * float((top[:, 0] == truth).mean()),
            "exhaustive in top 16 %": 100 * float((top == truth[:, None]).any(1).mean()),
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
    test = presets.load(args.db, split="test")
    rng = np.random.default_rng(0)
    picked = [test[i] for i in rng.choice(len(test), args.queries, replace=False)]
    audio = render_many([v for _, v in picked], [(60, 85)], progress=False)[:, 0]
    queries = EMBEDDING(audio)
    truth = train.nearest_rows(queries, 1)[:, 0]
    n_all = len(index)
    rows = []
    # the index as built, through its own query (projection, two stages), train split only
    row_of = {vid: k for k, vid in enumerate(train.ids)}
    q = (queries - index.mean) @ index.components.T
    top = np.array([[row_of[i] for i, _ in index.query_embedding(e, 16, split="train")]
                    for e in q])  # fmt: skip
    t0 = time.perf_counter()
    for a in audio[:50]:
        index.query(a, 16, split="train")
    ms = 1e3 * (time.perf_counter() - t0) / 50
    size = index.path.stat().st_size
    rows.append({"method": f"index ({index.components.shape[0]} components, float16)",
                 **scores(top, truth, train, queries), "MB (whole library)": size / 2**20,
                 "query ms": ms})  # fmt: skip
    mean, comps = fit_pca(train.features, k=1536, seed=1)
    for k in (1536, 1024, 512):
        p = comps[:k].astype(np.float16).astype(np.float32)
        coords = (train.features - mean) @ p.T
        qk = (queries - mean) @ p.T
        for kind in ("float16", "int8"):
            if kind == "float16":
                cq = coords.astype(np.float16).astype(np.float32)
                per_voice = 2 * k
            else:
                scale = np.abs(coords).max(0) / 127
                cq = np.round(coords / scale).clip(-127, 127) * scale
                per_voice = k
            d = np.einsum("ij,ij->i", cq, cq)[None] - 2.0 * qk @ cq.T
            top = np.argsort(d, axis=1, kind="stable")[:, :16]
            mb = (n_all * per_voice + 2 * k * EMBEDDING.dim) / 2**20
            rows.append({"method": f"PCA {k} components, {kind}",
                         **scores(top, truth, train, queries), "MB (whole library)": mb,
                         "query ms": float("nan")})  # fmt: skip
    t = pd.DataFrame(rows)
    note = (f"`bench/index_retrieval.py --queries {args.queries}`, {provenance()}: "
            f"{args.queries} test-split voices as queries against the {len(train.ids)} "
            "train-split voices, all at note 60, velocity 85. Truth: the exhaustive nearest "
            "train voice by L2 on the full-resolution log10 mel (64 bands, STFT 1024 / hop "
            "512, every frame). MB: the index file for the whole library "
            f"({n_all} voices). Query ms: log-mel, projection and ranking, one process.")
    write_table(Path(args.out) / "table_index", t, caption=note, digits=1)
    print(t.to_string(index=False))


if __name__ == "__main__":
    main()
