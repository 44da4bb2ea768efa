"""Search designs at an equal budget of evaluations, on the same starts, paired by voice.

    .venv/bin/python bench/search_designs.py --db data/presets.sqlite [--voices 100]
        [--evals 1000] [--designs default noprune nocross mel3 mfcc0.5 mfcc1]

Targets: renders of test-split voices (note 60, velocity 85; silent ones skipped). Starts: the
retrieval index's 16 nearest train-split voices. Every design refines from the same starts
with the same number of evaluations and no time limit, so the numbers do not depend on the
machine's load. Columns: spectral convergence (SC) and MFCC MAE at the input's key, the same
with the answer and the true voice both played at six other keys and velocities (averaged),
the near-exact share (SC < 0.05), edits to the start, and each design's ratio of means to
``default`` with a bootstrap 95 % interval (paired: the same voices resampled). Writes
figures/table_search.md / .csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from program_quality import OTHER_KEYS

from companion.data import presets
from companion.data.render import Renderer
from companion.evaluation.metrics import mfcc_mae, spectral_convergence
from companion.evaluation.paper_table import provenance
from companion.evaluation.tables import write_table
from companion.matching.evaluator import Evaluator
from companion.matching.index import Index
from companion.matching.search import refine

# name: (refine options, loss options)
DESIGNS = {
    "default": ({}, {}),
    "noprune": ({"prune": False}, {}),
    "nocross": ({"crossover": False}, {}),
    "mel3": ({}, {"mel_weight": 3.0, "mfcc_weight": 0.0}),
    "mfcc0": ({}, {"mfcc_weight": 0.0}),
    "mfcc0.5": ({}, {"mfcc_weight": 0.5}),
    "mfcc1": ({}, {"mfcc_weight": 1.0}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--voices", type=int, default=100)
    ap.add_argument("--evals", type=int, default=1000)
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default="figures")
    args = ap.parse_args()
    index = Index.open(args.db, progress=True)
    test = presets.load(args.db, split="test")
    renderer = Renderer()
    rng = np.random.default_rng(args.seed)
    cases = []
    for i in rng.permutation(len(test)):
        vid, voice = test[i]
        audio = renderer.render(voice)
        if np.sqrt(np.mean(audio**2)) > 1e-3:
            near = index.query(audio, 16, split="train")
            cases.append((vid, voice, audio, index.voices([h.id for h in near])))
        if len(cases) == args.voices:
            break
    rows = []
    for name in args.designs:
        options, loss_options = DESIGNS[name]
        with Evaluator(loss_options=loss_options) as ev:
            for vid, voice, audio, starts in cases:
                t0 = time.perf_counter()
                r = refine(audio, starts, max_evals=args.evals, evaluator=ev, **options)
                seconds = time.perf_counter() - t0
                answer = renderer.render(r.voice)
                keys = [(renderer.render(voice, n, v), renderer.render(r.voice, n, v))
                        for n, v in OTHER_KEYS]  # fmt: skip
                rows.append({
                    "design": name, "voice": vid, "sc": spectral_convergence(audio, answer),
                    "mfcc": mfcc_mae(audio, answer),
                    "sc_keys": float(np.mean([spectral_convergence(a, b) for a, b in keys])),
                    "mfcc_keys": float(np.mean([mfcc_mae(a, b) for a, b in keys])),
                    "edits": r.edits, "renders": r.renders, "seconds": seconds,
                })  # fmt: skip
        print(name, "done", flush=True)
    df = pd.DataFrame(rows)
    base = df[df["design"] == "default"].set_index("voice")
    out = []
    boot = np.random.default_rng(0).integers(0, len(cases), (2000, len(cases)))
    for name, g in df.groupby("design", sort=False):
        g = g.set_index("voice").reindex(base.index)
        row = {"design": name, "SC": g["sc"].mean(), "MFCC": g["mfcc"].mean(),
               "SC other keys": g["sc_keys"].mean(), "MFCC other keys": g["mfcc_keys"].mean(),
               "near-exact %": 100 * (g["sc"] < 0.05).mean(), "edits": g["edits"].mean(),
               "renders": g["renders"].mean(), "s / sound": g["seconds"].mean()}  # fmt: skip
        for col, label in (("sc", "SC"), ("mfcc", "MFCC"), ("sc_keys", "SC keys")):
            a, b = g[col].to_numpy(float), base[col].to_numpy(float)
            r = a[boot].mean(1) / b[boot].mean(1)
            lo, hi = np.percentile(r, [2.5, 97.5])
            row[f"{label} / default"] = f"{a.mean() / b.mean():.3f} [{lo:.3f}-{hi:.3f}]"
        out.append(row)
    t = pd.DataFrame(out)
    note = (f"`bench/search_designs.py --voices {args.voices} --evals {args.evals}`, commit "
            f"{provenance()}: {len(cases)} test-split voices at note 60, velocity 85; starts: "
            "the index's 16 nearest train voices; the same evaluations for every design, no "
            "time limit. Other keys: the answer and the true voice both at (36, 85) (48, 85) "
            "(72, 85) (84, 85) (60, 40) (60, 127), averaged. Ratios: of means, to default, "
            "with paired bootstrap 95 % intervals.")  # fmt: skip
    write_table(Path(args.out) / "table_search", t, caption=note, data=df)
    print(t.to_string(index=False))


if __name__ == "__main__":
    main()
