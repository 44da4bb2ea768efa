"""Ship a trained run as a model folder (e.g. companion/models/default) with its MODEL_CARD.md.

The card is written from what the run recorded (config, data, epochs, training time, curves)
and from metrics measured here on the dataset's validation and test splits.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import torch
import yaml

from companion.data import presets
from companion.data.dataset import DeviceSplit, open_dataset
from companion.dx7.params import representation
from companion.io import atomic_dir, write_atomic
from companion.models.vae import load_model
from companion.models.weights import META, shard_files
from companion.training.train import evaluate_split, read_metrics

CARD, METRICS = "MODEL_CARD.md", "metrics.yaml"


def split_metrics(run: str | os.PathLike, data: str | os.PathLike, split: str) -> dict:
    """Losses and parameter metrics of a saved model on one split of a dataset folder."""
    model, meta = load_model(run)
    rep = representation(meta["encoding"])
    part = DeviceSplit(data, split, meta["encoding"], "cpu")
    off = torch.autocast("cpu", enabled=False)
    return evaluate_split(model, part, model.cfg, rep, 128, off) | {"voices": len(part)}


def ship(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
         hardware: str | None = None) -> Path:  # fmt: skip
    """Copy a run's final model to ``out`` with MODEL_CARD.md and metrics.yaml.

    The new model folder is built beside ``out``, checked to load, and then swapped in for
    the old one (files of ``out`` that are not part of a model are carried over): a failure
    at any point leaves the old folder as it was.
    """
    run, out = Path(run), Path(out)
    if out.resolve() == run.resolve():
        raise ValueError(f"{out}: is the run itself; ship to another folder")
    model, meta = load_model(run)
    if model.cfg.audio != open_dataset(data).audio:
        raise ValueError(f"{run}: trained on other spectrograms than {data}")
    metrics = {s: split_metrics(run, data, s) for s in ("valid", "test")}
    curves = read_metrics(run)
    info = open_dataset(data)
    card = _card(meta, metrics, curves, info, hardware or _hardware(), sum(
        p.numel() for p in model.parameters()))  # fmt: skip
    ours = {META, CARD, METRICS, "model.index.json"}
    with atomic_dir(out) as tmp:
        for f in [run / META, *shard_files(run)]:
            shutil.copy2(f, tmp / f.name)
        write_atomic(tmp / CARD, card)
        write_atomic(tmp / METRICS, yaml.safe_dump(metrics, sort_keys=False))
        if out.is_dir():  # a user's own files in the model folder stay
            for f in out.iterdir():
                keep = f.name not in ours and not f.name.startswith("model-")
                if keep and f.is_file() and not f.name.startswith("."):
                    shutil.copy2(f, tmp / f.name)
        load_model(tmp)  # the copy loads, or the old folder stays
    return out


def _source(info) -> str:
    """Where the dataset's voices came from, from its preset database when it is at hand."""
    voices, db = info.header["voices"], Path(info.header["database"])
    try:
        facts = presets.info(db)
    except ValueError:
        return f"{voices} voices of a preset database ({db.name})"
    part = "every unique voice" if voices == facts["unique_voices"] else f"{voices} voices"
    return (
        f"{part} of a cartridge library of {facts['files']} files "
        f"({facts['unique_voices']} unique voices, {facts['skipped_voices']} corrupt skipped)"
    )


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def _card(meta, metrics, curves, info, hardware, n_params) -> str:
    cfg = meta["config"]
    a, m, t = cfg["audio"], cfg["model"], cfg["train"]
    counts = info.stats["splits"]
    rows = "\n".join(
        f"| {s} | {v['voices']} | {v['num_mae']:.4f} | {v['cat_acc']:.4f} | {v['rec']:.4f} |"
        for s, v in metrics.items()
    )
    first, last = curves[0], curves[-1]
    return f"""# Model card: {cfg["name"]} config, {meta["encoding"]}, {meta["notes"]} note(s)

The model `companion` uses when no `--model` is given. Trained by `companion train` on
{hardware}; it is the `{cfg["name"]}` configuration, not the paper's full-size model (a later
run on a GPU with `--config paper` may replace it).

## What it is
- The paper's spectral VAE: CNN encoder (stride-2 convolutions {list(m["channels"])}, 1x1 to
  {m["last_channels"]}), mirrored decoder, RealNVP latent flow and RealNVP preset regression
  ({m["flow_layers"]} coupling layers of {m["flow_hidden"]} units each), dim z = {
        representation(meta["encoding"]).size
    } ({meta["encoding"]}); {n_params:,} parameters.
- Input: mel spectrogram of a 4 s sound (note held 3 s) at 22 050 Hz, {a["n_mels"]} mel bands x
  {(round(a["sample_rate"] * a["render_s"]) // a["hop"]) + 1} frames (STFT {a["n_fft"]}, hop
  {a["hop"]}), dB floored at {a["floor_db"]}, normalised with the training split's mean
  {meta["stats"]["mean_db"]:.2f} dB and std {meta["stats"]["std_db"]:.2f} dB.
- Notes: {meta["notes"]} ((MIDI 60, velocity 85) for one note).

## Data
- {_source(info)}, split by a hash of the parameters:
  train {counts["train"]}, valid {counts["valid"]}, test {counts["test"]}.
- Rendered with the Dexed engine (dexed-py).

## Training
- {meta["epochs"]} epochs, batch {t["batch_size"]}, Adam lr {t["lr"]} (warm-up
  {t["lr_warmup_epochs"]} epochs from lr/10), weight decay {t["weight_decay"]},
  ReduceLROnPlateau x{t["plateau_factor"]} (patience {t["plateau_patience"]}), KL weight
  {t["beta_start"]} -> {t["beta"]} over {t["beta_warmup_epochs"]} epochs, cross-entropy weight
  {t["ce_weight"]}, seed {t["seed"]}.
- Training time: {meta["trained_s"] / 60:.1f} min on {hardware}
  ({last["samples_per_s"]:.0f} samples/s in the last epoch).
- Validation loss: {first["val_loss"]:.4f} after epoch 1, {last["val_loss"]:.4f} after epoch
  {last["epoch"]}.

## Metrics (measured on the dataset splits when this card was written)
Numerical MAE: mean absolute error of the numerical parameters after decoding to a valid voice,
as a fraction of each parameter's range (0 is perfect). Categorical accuracy: share of the
categorical parameters (in this encoding) decoded exactly. Spectrogram MSE: the VAE's
reconstruction error on normalised spectrograms.

| split | voices | numerical MAE | categorical accuracy | spectrogram MSE |
|-------|--------|---------------|----------------------|-----------------|
{rows}

Audio metrics of re-rendered presets (spectral convergence, MFCC distance, ...) come with
`companion evaluate`.
"""
