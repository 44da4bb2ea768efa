# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Training: the spectral VAE with RealNVP flows
#
# Trains the paper's model on the dataset of notebook 01 (or continues an interrupted run, or
# just loads a finished one) and plots its curves from the run's `metrics.jsonl`. The same run
# is visible in TensorBoard: `tensorboard --logdir runs/`.
#
# Parameters (papermill): `config`, `data_dir`, `representation` (numonly / numcat / numcat++),
# `notes` (single / six), `epochs` (0: the config's), `limit` (voices in the dataset, 0: all).

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
representation = "numcat++"
notes = "single"
epochs = 2
limit = 64
cartridges = ""

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from companion import dataset, presets, train
from companion.models.vae import load_model

data = Path(data_dir)
db = data / "presets.sqlite"
ds = data / f"dataset-{config}-{notes}-{limit or 'all'}"
run = data / "runs" / f"{config}-{notes}-{representation}"

# %%
if not db.exists():
    presets.build(cartridges or None, db, progress=False)
if not (ds / "stats.json").exists():
    dataset.build(db, config, ds, notes=notes, limit=limit, progress=False)
done = (run / "model.yaml").exists() and (not epochs or len(train.read_metrics(run)) >= epochs)
if not done:
    train.train(config, ds, run, encoding=representation, notes=notes, epochs=epochs or None,
                resume=(run / "config.yaml").exists(), progress=False)  # fmt: skip
model, meta = load_model(run)
print(f"{run}: {meta['epochs']} epochs, {meta['trained_s']:.0f} s of training")
print({k: round(v, 4) for k, v in meta["final"].items() if k.startswith("val_")})

# %% [markdown]
# ## Curves

# %%
metrics = train.read_metrics(run)
epoch = [m["epoch"] for m in metrics]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
for key in ("train_loss", "val_loss"):
    axes[0].plot(epoch, [m[key] for m in metrics], label=key)
axes[0].set_title("loss (spectrogram MSE + beta KL + preset loss)")
for key in ("train_rec", "val_rec", "train_params", "val_params"):
    axes[1].plot(epoch, [m[key] for m in metrics], label=key)
axes[1].set_title("parts of the loss")
axes[2].plot(epoch, [m["val_num_mae"] for m in metrics], label="numerical MAE (of range)")
axes[2].plot(epoch, [m["val_cat_acc"] for m in metrics], label="categorical accuracy")
axes[2].set_title("validation parameters")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
