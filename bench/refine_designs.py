"""Refinement designs with the Dexed engine in the loop, against retrieval, on test voices.

Targets: renders of test-split voices of a preset database (note 60, velocity 85). Starts:
retrieval's 16 nearest train-split voices by log-mel distance (a brute-force search over the
train split's renders, cached in --cache). Every design gets the same 16 starts and a budget of
renders; the audio metrics are the paper's (companion.evaluation.metrics).

    OMP_NUM_THREADS=1 .venv/bin/python bench/refine_designs.py --voices 30 \
        --designs sweepv1-300,sweepv1-800,cma-300,lengler-300,lengler-800

Per-voice results accumulate in --cache/refine_results.csv (a design already measured on a
voice is not run again), and the table of every design measured so far is written to
figures/table_refine.md and .csv. Seconds are wall time on this machine with its load at the
time; the render-only cost measured in the same run is printed beside them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from companion.config import AudioConfig
from companion.data import presets
from companion.data.audio import MelSpectrogram
from companion.data.render import Renderer, pool_map
from companion.dx7.params import audible_operators
from companion.dx7.voice import PARAM_MAX, Voice, param_index
from companion.evaluation import metrics
from companion.io import write_atomic
from companion.matching.search import Evaluator, refine

ROOT = Path(__file__).resolve().parents[1]
K = 16


# --------------------------------------------------------------------------------------------
# retrieval (brute force: helper index is measured in bench/ of its own)


class _Setup:
    def __call__(self):
        cfg = AudioConfig()
        return Renderer(cfg), MelSpectrogram(cfg)


def _embed_chunk(ctx, voices):
    renderer, mel = ctx
    audio = torch.from_numpy(np.stack([renderer.render(v, 60, 85) for v in voices]))
    with torch.no_grad():
        return embed(mel, audio)


def embed(mel: MelSpectrogram, audio: torch.Tensor) -> np.ndarray:
    """(B, T) audio -> (B, D) float16: log-mel dB pooled 4 x 4, as paper_table.nearest_train."""
    return F.avg_pool2d(mel(audio)[:, None], 4).flatten(1).numpy().astype(np.float16)


def train_embeddings(db: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,) train ids and (N, D) embeddings, rendered once and cached."""
    ids_f, emb_f = cache / "train_ids.npy", cache / "train_logmel.npy"
    if not emb_f.exists():
        rows = presets.load(db, split="train")
        voices = [v for _, v in rows]
        chunks = [voices[i : i + 64] for i in range(0, len(voices), 64)]
        emb = np.concatenate(list(pool_map(_embed_chunk, chunks, _Setup(), count=len,
                                           total=len(voices))))  # fmt: skip
        np.save(ids_f, np.array([i for i, _ in rows]))
        np.save(emb_f, emb)
    return np.load(ids_f), np.load(emb_f)


def nearest(query: np.ndarray, keys: np.ndarray, k: int = K) -> np.ndarray:
    """(Q, k) indices of the k nearest keys by L1 distance."""
    keys_t = torch.from_numpy(keys.astype(np.float32))
    d = torch.cdist(torch.from_numpy(query.astype(np.float32)), keys_t, p=1)
    return d.topk(k, largest=False).indices.numpy()


# --------------------------------------------------------------------------------------------
# designs: (target, ranked starts, evaluator, max_evals, seed) -> (voice, evals)


def _sweep(**options):
    def design(target, starts, ev, n, seed):
        res = refine(target, starts, max_evals=n, evaluator=ev, seed=seed, **options)
        return res.voice, res.evals

    return design


def _structured(values: np.ndarray) -> np.ndarray:
    """Indices a structured continuous search moves: per audible operator its level, fine,
    envelope; and feedback, pitch envelope, LFO depths and speed."""
    idx = []
    for op in np.flatnonzero(audible_operators(values)) + 1:
        for f in ("output_level", "fine", "eg_rate1", "eg_rate2", "eg_rate3", "eg_rate4",
                  "eg_level1", "eg_level2", "eg_level3", "eg_level4"):  # fmt: skip
            idx.append(param_index(f, int(op)))
    idx += [param_index(n) for n in ("feedback", "lfo_speed", "lfo_pmd", "lfo_amd")]
    return np.array(idx)


def _ranked(starts, ev):
    values = np.stack([v.values for v in starts]).astype(np.int64)
    losses = ev(values)
    best = int(np.argmin(losses))
    return values[best], float(losses[best]), len(values)


def design_cma(target, starts, ev, n, seed):
    import cma

    x0, best_loss, evals = _ranked(starts, ev)
    idx = _structured(x0)
    hi = PARAM_MAX[idx].astype(float)
    es = cma.CMAEvolutionStrategy(x0[idx] / hi, 0.1, {"bounds": [0, 1], "seed": seed + 1,
                                                      "verbose": -9, "popsize": 16})  # fmt: skip
    best = x0
    while evals + 16 <= n and not es.stop():
        xs = es.ask()
        vals = np.repeat(x0[None], len(xs), 0)
        vals[:, idx] = np.clip(np.rint(np.array(xs) * hi), 0, hi)
        losses = ev(vals)
        evals += len(xs)
        es.tell(xs, losses.tolist())
        k = int(np.argmin(losses))
        if losses[k] < best_loss:
            best, best_loss = vals[k], float(losses[k])
    return Voice.from_values(best), evals


def _nevergrad(name):
    def design(target, starts, ev, n, seed):
        import nevergrad as ng

        x0, best_loss, evals = _ranked(starts, ev)
        learn = np.array([i for i in range(145) if i != param_index("transpose")])
        param = ng.p.Array(init=x0[learn].astype(float), lower=0, upper=PARAM_MAX[learn]
                           .astype(float)).set_integer_casting()  # fmt: skip
        param.random_state = np.random.RandomState(seed)
        opt = ng.optimizers.registry[name](parametrization=param, budget=n, num_workers=8)
        best = x0
        while evals + 8 <= n:
            cands = [opt.ask() for _ in range(8)]
            vals = np.repeat(x0[None], 8, 0)
            vals[:, learn] = np.clip(np.rint([c.value for c in cands]), 0, PARAM_MAX[learn])
            losses = ev(vals)
            evals += 8
            for c, loss in zip(cands, losses):
                opt.tell(c, float(loss))
            k = int(np.argmin(losses))
            if losses[k] < best_loss:
                best, best_loss = vals[k], float(losses[k])
        return Voice.from_values(best), evals

    return design


DESIGNS = {
    # refine(method="sweep"): group batches of +-step, halved when it fails, each group once
    # a pass, the best 4 starts by successive halving
    "sweepv1": _sweep(method="sweep"),
    "sweepv1single": _sweep(method="sweep", n_starts=1),  # only the best start
    # +-step and +-step/4, a group searched again at once while it helps
    "sweep-scales2-revisit2": _sweep(method="sweep", scales=2, revisit=2),
    "coord": _sweep(method="sweep", per_param=True),  # one batch per parameter
    "screen": _sweep(method="sweep", screen=True),  # all parameters screened, then descent
    # refine() as shipped: the same optimiser as "lengler" below
    "refine": _sweep(),
    "cma": design_cma,
    "lengler": _nevergrad("DiscreteLenglerOnePlusOne"),
    "ngopt": _nevergrad("NGOpt"),
    "portfolio": _nevergrad("Portfolio"),
}


# --------------------------------------------------------------------------------------------


def scores(target: np.ndarray, audio: np.ndarray) -> dict[str, float]:
    return {
        "sc": metrics.spectral_convergence(target, audio),
        "log_stft_mae": metrics.log_stft_mae(target, audio),
        "mfcc_mae": metrics.mfcc_mae(target, audio),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=ROOT / "data/presets.sqlite", type=Path)
    ap.add_argument("--cache", default=ROOT / "data/helperF", type=Path)
    ap.add_argument("--voices", type=int, default=30)
    ap.add_argument("--designs", default="refine-300,refine-800")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=ROOT / "figures/table_refine.md", type=Path)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    train_ids, train_emb = train_embeddings(args.db, args.cache)
    train = dict(presets.load(args.db, split="train"))
    # every k-th test voice, so that a small sample spans the library's order (its cartridges)
    test = presets.load(args.db, split="test")
    test = test[:: max(1, len(test) // args.voices)][: args.voices]
    cfg = AudioConfig()
    renderer, mel = Renderer(cfg), MelSpectrogram(cfg)
    t0 = time.perf_counter()
    targets = np.stack([renderer.render(v, 60, 85) for _, v in test])
    render_s = (time.perf_counter() - t0) / len(test)
    audible = np.abs(targets).max(1) > 1e-3
    test, targets = [t for t, a in zip(test, audible) if a], targets[audible]
    near = nearest(embed(mel, torch.from_numpy(targets)), train_emb)
    print(f"{len(test)} audible test voices; one render {render_s * 1e3:.1f} ms here now")

    results_f = args.cache / "refine_results.csv"
    old = pd.read_csv(results_f) if results_f.exists() else pd.DataFrame()
    rows = old.to_dict("records")
    done = {(r["design"], r["voice_id"]) for r in rows}
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    with Evaluator(args.jobs) as ev:
        for (vid, _), target, nn in zip(test, targets, near):
            starts = [train[int(train_ids[j])] for j in nn]
            todo = ["retrieval top 1", "top 16 + selection"] + designs
            for design in todo:
                if (design, vid) in done:
                    continue
                t = time.perf_counter()
                ev.set_target(target)
                if design == "retrieval top 1":
                    voice, evals = starts[0], 0
                elif design == "top 16 + selection":
                    losses = ev(np.stack([v.values for v in starts]))
                    voice, evals = starts[int(np.argmin(losses))], len(starts)
                else:
                    name, n = design.rsplit("-", 1)
                    voice, evals = DESIGNS[name](target, starts, ev, int(n), args.seed)
                seconds = time.perf_counter() - t
                row = {"design": design, "voice_id": vid, "evals": evals, "seconds": seconds,
                       **scores(target, renderer.render(voice, 60, 85))}  # fmt: skip
                rows.append(row)
                print(
                    f"voice {vid:6d} {design:22s} sc {row['sc']:.3f} mfcc "
                    f"{row['mfcc_mae']:6.2f} evals {evals:5d} {seconds:6.1f} s",
                    flush=True,
                )
            pd.DataFrame(rows).to_csv(args.cache / "refine_results.csv.tmp", index=False)
            (args.cache / "refine_results.csv.tmp").replace(results_f)
    table(pd.DataFrame(rows), [v for v, _ in test], render_s, args.out)


def table(df: pd.DataFrame, voice_ids, render_s: float, out: Path) -> pd.DataFrame:
    """Mean and median of every metric per design, over the voices every design has."""
    df = df[df.voice_id.isin(voice_ids)]
    common = set.intersection(*(set(g.voice_id) for _, g in df.groupby("design")))
    df = df[df.voice_id.isin(common)]
    agg = df.groupby("design", sort=False).agg(
        **{
            f"{m} {s}": (m, s)
            for m in ("sc", "log_stft_mae", "mfcc_mae")
            for s in ("mean", "median")
        },  # fmt: skip
        evals=("evals", "mean"),
        seconds=("seconds", "mean"),
    )
    base = agg.loc["retrieval top 1"]
    agg["sc / top 1"] = agg["sc mean"] / base["sc mean"]
    agg["mfcc / top 1"] = agg["mfcc_mae mean"] / base["mfcc_mae mean"]
    agg = agg.round(3)
    note = (f"\n\n{len(common)} test-split voices (note 60, velocity 85); starts: retrieval's "
            f"16 nearest train voices by log-mel distance. Seconds: wall time per sound on "
            f"this 2-core machine under its load at the time (one render took "
            f"{render_s * 1e3:.1f} ms in the same run). By bench/refine_designs.py.\n")  # fmt: skip
    write_atomic(out, markdown(agg) + note)
    write_atomic(out.with_suffix(".csv"), agg.to_csv())
    print(markdown(agg))
    return agg


def markdown(table: pd.DataFrame) -> str:
    """A pipe table; by hand because pandas' to_markdown needs tabulate, not installed here."""
    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([str(name)] + [f"{v:g}" for v in row]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
