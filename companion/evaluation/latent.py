"""How good the latent space is for moving between voices and for making new ones.

Interpolation (in the spirit of SPINVAE's evaluation): along each path the rendered sound is
described by audio features (spectral centroid, flatness, RMS, 13 MFCCs, each a mean over the
note), standardised over all paths; a path is smooth when its second differences are small and
linear when its inner steps lie near the straight line between its end points.

New voices: valid, distinct, audible, and how far they are from the nearest training voice,
against random valid voices (every parameter uniform over its range) as a baseline.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from tqdm import tqdm

from companion.data.dataset import open_dataset
from companion.data.render import Renderer
from companion.dx7.params import LEARNABLE, TRANSPOSE, TRANSPOSE_DEFAULT
from companion.dx7.voice import PARAM_MAX, Voice, out_of_range
from companion.evaluation.metrics import parameter_metrics
from companion.evaluation.tables import write_table
from companion.io import save_figure
from companion.latent.interpolate import Latent, naive_path

AUDIBLE_RMS = 1e-3
FEATURES = ["log2 centroid", "flatness", "RMS dB", *[f"MFCC {i}" for i in range(13)]]
_RANGE = PARAM_MAX.astype(np.float64)  # (145,)


def features(audio: np.ndarray, sr: int = 22050) -> np.ndarray:
    """(len(FEATURES),) means over the note of a (T,) render; a silent render gives the
    features of near-silence (RMS -100 dB), not NaN."""
    y = audio.astype(np.float32) + 1e-6 * np.random.default_rng(0).standard_normal(len(audio))
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr).mean()
    flatness = librosa.feature.spectral_flatness(y=y).mean()
    rms = librosa.feature.rms(y=y)[0]
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13).mean(axis=1)
    rms_db = 20 * np.log10(np.maximum(rms.mean(), 1e-5))
    return np.array([np.log2(max(centroid, 1.0)), flatness, rms_db, *mfcc])


def path_scores(feats: np.ndarray) -> tuple[float, float]:
    """Smoothness (mean norm of second differences) and non-linearity (mean distance of the
    inner steps to the straight line between the end points) of one path's standardised
    features (steps, F); lower is better for both."""
    second = feats[:-2] - 2 * feats[1:-1] + feats[2:]
    t = np.linspace(0, 1, len(feats))[1:-1, None]
    line = (1 - t) * feats[0] + t * feats[-1]
    return float(np.linalg.norm(second, axis=1).mean()), float(
        np.linalg.norm(feats[1:-1] - line, axis=1).mean())  # fmt: skip


def interpolation(model_dir, data: str, pairs: int = 100, steps: int = 7, seed: int = 0,
                  progress: bool = True) -> dict:  # fmt: skip
    """Latent vs naive paths between ``pairs`` random pairs of test voices.

    Returns {"scores": {mode: (pairs, 2) smoothness / non-linearity}, "features": {mode:
    (pairs, steps, F) standardised}, "end_points": {...} errors of the latent path's ends}.
    """
    info = open_dataset(data)
    test = np.load(info.path / "test.voices.npy").astype(np.int64)
    if len(test) < 2:
        raise ValueError(f"{data}: fewer than two test voices")
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(len(test), 2, replace=False) for _ in range(pairs)]
    latent, renderer = Latent(model_dir), Renderer(info.audio)
    raw = {"latent": [], "naive": []}
    ends_true, ends_pred = [], []
    for i, j in tqdm(chosen, desc="interpolation", disable=not progress):
        a, b = Voice.from_values(test[i]), Voice.from_values(test[j])
        for mode, values in (
            ("latent", latent.path(a, b, steps)),
            ("naive", naive_path(a, b, steps)),
        ):
            raw[mode].append([features(renderer.render(Voice.from_values(v))) for v in values])
            if mode == "latent":
                ends_true += [test[i], test[j]]
                ends_pred += [values[0], values[-1]]
    allf = np.concatenate([np.asarray(v).reshape(-1, len(FEATURES)) for v in raw.values()])
    mean, std = allf.mean(0), allf.std(0) + 1e-9
    feats = {m: (np.asarray(v) - mean) / std for m, v in raw.items()}
    scores = {m: np.array([path_scores(p) for p in f]) for m, f in feats.items()}
    ends = parameter_metrics(np.stack(ends_true), np.stack(ends_pred))
    return {"scores": scores, "features": feats, "steps": steps, "pairs": pairs,
            "end_points": {k: float(v.mean()) for k, v in ends.items()}}  # fmt: skip


def random_voices(n: int, seed: int = 0) -> np.ndarray:
    """(n, 145) random valid voices: every parameter uniform over its range, transpose 24."""
    rng = np.random.default_rng(seed)
    values = np.floor(rng.random((n, len(_RANGE))) * (_RANGE + 1)).astype(np.int64)
    values[:, TRANSPOSE] = TRANSPOSE_DEFAULT
    return values


def voice_scores(values: np.ndarray, train: np.ndarray, renderer: Renderer) -> dict:
    """Valid, distinct and audible shares, and novelty: the mean over voices of the distance
    (mean |difference| / range over the learnt parameters) to the nearest training voice."""
    cols = np.array(LEARNABLE)
    t = train[:, cols] / _RANGE[cols]
    near = []
    for v in values[:, cols] / _RANGE[cols]:
        near.append(np.abs(t - v).mean(1).min())
    rms = [np.sqrt(np.mean(renderer.render(Voice.from_values(v)) ** 2)) for v in values]
    return {
        "voices": len(values),
        "valid": float(np.mean([not out_of_range(v) for v in values])),
        "distinct": len({v.tobytes() for v in values}) / len(values),
        "audible": float(np.mean(np.array(rms) > AUDIBLE_RMS)),
        "novelty": float(np.mean(near)),
    }


def generation(model_dir, data: str, n: int = 256, seed: int = 0) -> dict:
    """voice_scores of n voices from the latent prior and of n random valid voices, and of n
    test voices (what real voices score)."""
    info = open_dataset(data)
    train = np.load(info.path / "train.voices.npy").astype(np.int64)
    test = np.load(info.path / "test.voices.npy").astype(np.int64)[:n]
    renderer = Renderer(info.audio)
    return {
        "latent prior": voice_scores(Latent(model_dir).sample(n, seed), train, renderer),
        "random valid voices": voice_scores(random_voices(n, seed), train, renderer),
        "test voices": voice_scores(test, train, renderer),
    }


def write_tables(interp: dict, gen: dict, head: str, out: str | Path) -> None:
    """figures/table_interpolation.{md,csv}, figures/interpolation.png and
    figures/table_generate.{md,yaml}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = interp["scores"]
    table = pd.DataFrame([{"path": mode, "smoothness (mean)": s[:, 0].mean(),
                           "smoothness (median)": np.median(s[:, 0]),
                           "non-linearity (mean)": s[:, 1].mean(),
                           "non-linearity (median)": np.median(s[:, 1])}
                          for mode, s in scores.items()])  # fmt: skip
    pairs = pd.DataFrame([(mode, k, float(a), float(b)) for mode, s in scores.items()
                          for k, (a, b) in enumerate(s)],
                         columns=["mode", "pair", "smoothness", "nonlinearity"])  # fmt: skip
    e = interp["end_points"]
    write_table(out / "table_interpolation", table, data=pairs,
                caption=f"{head} {interp['pairs']} random pairs of test voices, {interp['steps']} "
                "steps; audio features standardised over all paths. Lower is better.",
                notes=["End points of the latent paths (voice -> zK -> voice): numerical MAE "
                       f"{e['num_mae']:.4f} of range, categorical accuracy "
                       f"{e['cat_acc']:.3f}."])  # fmt: skip
    _plot(interp, out / "interpolation.png")
    keys = ["voices", "valid", "distinct", "audible", "novelty"]
    table = pd.DataFrame([{"source": name, **{k: s[k] for k in keys}} for name, s in gen.items()])
    write_table(out / "table_generate", table, formats=("md", "yaml"), summary=gen,
                caption=f"{head} New voices: valid (every parameter in range), distinct, audible "
                f"(RMS of the render at note 60 / 85 above {AUDIBLE_RMS}), novelty (mean distance "
                "to the nearest training voice, mean |difference| / range over the learnt "
                "parameters).")  # fmt: skip


def _plot(interp: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    modes = list(interp["scores"])
    for k, title in enumerate(("smoothness", "non-linearity")):
        axes[k].boxplot([interp["scores"][m][:, k] for m in modes], orientation="horizontal")
        axes[k].set_yticks(range(1, len(modes) + 1), modes)
        axes[k].set_title(f"{title} per path (lower is smoother / straighter)")
    for m in modes:  # spectral centroid along the first path
        axes[2].plot(interp["features"][m][0][:, 0], marker="o", label=m)
    axes[2].set_title("standardised log2 centroid along pair 1")
    axes[2].set_xlabel("step")
    axes[2].legend()
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=80)
    finally:
        plt.close(fig)
