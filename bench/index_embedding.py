"""Which audio embedding should the retrieval index use? Retrieval measured against the paper's
metrics on a library subset.

    OMP_NUM_THREADS=1 .venv/bin/python bench/index_embedding.py --db data/presets.sqlite

A library of ``--library`` train-split voices and ``--queries`` test-split voices (random,
seeded), all rendered at note 60, velocity 85. For every query, the "best" library voice is
the one with the lowest spectral convergence + log-STFT MAE (the paper's metrics, STFT 1024 /
256) over the whole library; voices that tie with it (the same sound from other parameters)
count as the best too. Each embedding then ranks the library by Euclidean distance (the
model's input log-mel spectrogram by L1, as figures/table_main.md's retrieval baseline);
reported: how often its top 1 and its top 16 hold the best voice, the paper's metrics of its
top 1, SC of the best of its top 16 (chosen by rendering), the query time (embedding the
query's audio plus the search over this library) and the bytes per voice stored (float16).
Writes figures/table_index.md and .csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

from companion.data import presets
from companion.data.audio import MelSpectrogram
from companion.data.render import Renderer, default_processes, pool_map, render_many
from companion.evaluation.metrics import stft
from companion.evaluation.tables import write_table
from companion.matching.index import EMBEDDING, LogMel
from companion.models.vae import load_model

LOGMELS = [
    LogMel(32, 8), LogMel(32, 16), LogMel(64, 8), LogMel(64, 16), LogMel(64, 32),
    LogMel(128, 16), LogMel(128, 32),
    LogMel(64, 16, floor_db=-120.0), LogMel(64, 16, pool="db"),
    LogMel(64, 16, hop=512), LogMel(64, 16, n_fft=1024, hop=512),
]  # fmt: skip
FULL = "model's input log-mel, L1 (table_main's retrieval)"
K = 16

_state: dict = {}  # the queries' spectrograms, set before the pool forks (workers inherit it)


class _Features:
    """Everything one render yields: embeddings of every kind and what the metrics need."""

    def __init__(self):
        self.model, meta = load_model(None)
        self.model.eval()
        self.mean, self.std = meta["stats"]["mean_db"], meta["stats"]["std_db"]
        self.mel = MelSpectrogram(self.model.cfg.audio)

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """(n, T) renders -> name -> (n, ...) arrays."""
        out: dict[str, list] = {}
        add = lambda k, v: out.setdefault(k, []).append(v)  # noqa: E731
        mags = {}
        for a in audio:
            for e in LOGMELS:
                key = (e.n_fft, e.hop)
                if key not in mags:
                    mags[key] = e.magnitude(a)
                add(e.name, e.from_magnitude(mags[key]))
            mags.clear()
            s = stft(a)  # the paper's STFT, 1024 / 256
            add("S", s.ravel())
            add("logS", np.log10(np.maximum(s, 1e-4)).ravel())
            mfcc = librosa.feature.mfcc(y=a, sr=22050, n_mfcc=13)  # the paper's, defaults
            add("mfcc", mfcc.ravel())
            add("mfcc mean+std (13)", np.concatenate([mfcc.mean(1), mfcc.std(1)]))
        out = {k: np.stack(v).astype(np.float32) for k, v in out.items()}
        with torch.no_grad():
            spec = self.mel(torch.from_numpy(audio))  # (n, 257, 345) dB, the model's input
            mu, _ = self.model.encoder(((spec - self.mean) / self.std)[:, None])
            out["model latent mu"] = mu.numpy()
            out["model latent zK"] = self.model.flow(mu)[0].numpy()
        out[FULL] = spec.flatten(1).numpy()
        return out


def _setup():
    return _Features()


def _library_chunk(features: _Features, voices) -> dict:
    """Render a chunk of library voices; keep embeddings and distances to every query."""
    renderer = Renderer()
    audio = np.stack([renderer.render(v, 60, 85) for v in voices])
    f = features(audio)
    q = _state
    t = lambda k: torch.from_numpy(f.pop(k))  # noqa: E731
    s, logs, mfcc, full = t("S"), t("logS"), t("mfcc"), torch.from_numpy(f[FULL])
    qs = q["S"].double()
    d2 = (qs**2).sum(1)[:, None] + (s.double() ** 2).sum(1)[None] - 2 * qs @ s.double().T
    f["sc"] = (d2.clamp_min(0).sqrt() / qs.norm(dim=1)[:, None]).float().numpy()
    f["log_mae"] = (torch.cdist(q["logS"], logs, p=1) / logs.shape[1]).numpy()
    f["mfcc_mae"] = (torch.cdist(q["mfcc"], mfcc, p=1) / mfcc.shape[1]).numpy()
    f["full_l1"] = (torch.cdist(q[FULL], full, p=1) / full.shape[1]).numpy()
    return f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="data/presets.sqlite")
    p.add_argument("--library", type=int, default=2000, help="train-split voices")
    p.add_argument("--queries", type=int, default=100, help="test-split voices")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, default=default_processes())
    p.add_argument("--out", default="figures")
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    train, test = presets.load(args.db, split="train"), presets.load(args.db, split="test")
    lib = [train[i] for i in np.sort(rng.choice(len(train), args.library, replace=False))]
    qry = [test[i] for i in np.sort(rng.choice(len(test), args.queries, replace=False))]
    start = time.perf_counter()

    q_audio = render_many([v for _, v in qry], ((60, 85),), processes=args.processes,
                          progress=False)[:, 0]  # fmt: skip
    features = _Features()
    qf = features(q_audio)
    _state.update({k: torch.from_numpy(qf[k]) for k in ("S", "logS", "mfcc", FULL)})
    chunks = [[v for _, v in lib[i : i + 50]] for i in range(0, len(lib), 50)]
    parts = list(pool_map(_library_chunk, chunks, _setup, args.processes, total=len(lib),
                          desc="library"))  # fmt: skip
    lf = {k: np.concatenate([part[k] for part in parts], axis=-1 if k in (
        "sc", "log_mae", "mfcc_mae", "full_l1") else 0) for k in parts[0]}  # fmt: skip
    sc, log_mae, mfcc_mae = lf["sc"], lf["log_mae"], lf["mfcc_mae"]  # (queries, library)
    score = sc + log_mae
    best = score.min(1)
    # a hit: a voice whose score equals the best one's (different parameters can sound the
    # same, e.g. an operator that cannot be heard: such ties are all "the best voice")
    hit = score <= best[:, None] + 1e-6
    rows_q = np.arange(len(qry))
    print(f"rendered and measured {len(lib)} + {len(qry)} voices in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip

    def row(name, ranking, dim, query_ms, bytes_per_voice):
        top1, top = ranking[:, 0], ranking[:, :K]
        pick16 = top[rows_q, score[rows_q[:, None], top].argmin(1)]
        return {
            "embedding": name,
            "dims": dim,
            "bytes / voice": bytes_per_voice,
            "top-1 hit %": 100 * np.mean(hit[rows_q, top1]),
            "top-16 hit %": 100 * np.mean(hit[rows_q[:, None], top].any(1)),
            "SC top 1": sc[rows_q, top1].mean(),
            "log-STFT MAE top 1": log_mae[rows_q, top1].mean(),
            "MFCC MAE top 1": mfcc_mae[rows_q, top1].mean(),
            "SC best of top 16": sc[rows_q, pick16].mean(),
            "query ms": query_ms,
        }

    rows = []
    one = q_audio[0]
    for name in [e.name for e in LOGMELS] + ["mfcc mean+std (13)", "model latent mu",
                                             "model latent zK"]:  # fmt: skip
        qe, le = torch.from_numpy(qf[name]), torch.from_numpy(lf[name])
        ranking = torch.cdist(qe, le).argsort(1).numpy()
        rows.append(row(name, ranking, qe.shape[1], _query_ms(name, one, le, features),
                        2 * qe.shape[1]))  # fmt: skip
    ranking = lf["full_l1"].argsort(1)
    rows.append(row(FULL, ranking, qf[FULL].shape[1], _query_ms(FULL, one, torch.from_numpy(
        lf[FULL]), features), 2 * qf[FULL].shape[1]))  # fmt: skip
    rows.append(row("oracle (best by SC + log-STFT MAE)", score.argsort(1), None, None, None))
    rows.append(row("random", np.stack([rng.permutation(len(lib)) for _ in qry]), None, None,
                    None))  # fmt: skip
    table = pd.DataFrame(rows)
    head = (f"Retrieval index embeddings: {len(lib)} train-split voices as the library, "
            f"{len(qry)} test-split voices as queries (seed {args.seed}), all at note 60, "
            f"velocity 85. Best = lowest SC + log-STFT MAE (STFT 1024 / 256) in the library "
            f"(voices that tie with it count as the best). SC, log-STFT MAE, MFCC MAE: the "
            f"paper's metrics, means over the queries. Query ms: embedding the query's audio "
            f"and searching these {len(lib)} voices, one core of this shared 2-core machine. "
            f"Chosen for the index: {EMBEDDING.name} (companion/matching/index.py). "
            f"`bench/index_embedding.py`.")  # fmt: skip
    write(table, head, Path(args.out))
    print(Path(args.out, "table_index.md").read_text())


def write(table: pd.DataFrame, head: str, out: Path) -> None:
    """figures/table_index.md and .csv through the project's table writer."""
    shown = table.copy()
    for col in ("dims", "bytes / voice"):  # whole numbers, "-" where they do not apply
        shown[col] = pd.Series([int(v) if v == v and v is not None else float("nan")
                                for v in table[col]], dtype=object)  # fmt: skip
    write_table(out / "table_index", shown, caption=head, data=table, digits=3)


def _query_ms(name: str, audio: np.ndarray, library: torch.Tensor, features: _Features) -> float:
    """Median of 20 queries: embed one render (this kind only) and rank the library."""
    logmel = {e.name: e for e in LOGMELS}
    times = []
    for _ in range(20):
        t = time.perf_counter()
        if name in logmel:
            e = torch.from_numpy(logmel[name](audio))
        elif name.startswith("mfcc"):
            m = librosa.feature.mfcc(y=audio, sr=22050, n_mfcc=13)
            e = torch.from_numpy(np.concatenate([m.mean(1), m.std(1)]))
        else:
            with torch.no_grad():
                spec = features.mel(torch.from_numpy(audio))
                if name == FULL:
                    e = spec.flatten()
                else:
                    mu, _ = features.model.encoder(
                        ((spec - features.mean) / features.std)[None, None]
                    )
                    e = (mu if name.endswith("mu") else features.model.flow(mu)[0])[0]
        if name == FULL:
            (library - e).abs().mean(1).argsort()
        else:
            torch.cdist(e[None], library).argsort()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


if __name__ == "__main__":
    main()
