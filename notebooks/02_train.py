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
# # 02 · Training: the spectral VAE with RealNVP flows, one model per row of the paper's table
#
# Trains the paper's models on the datasets of notebook 01 (or continues interrupted runs, or
# just loads finished ones) and plots their curves from each run's `metrics.jsonl`. The same
# runs are visible in TensorBoard: `tensorboard --logdir data/runs/`.
#
# Parameters (papermill): `config`, `data_dir`, `rows` (comma-separated table rows, each
# `representation[/six][/mlp]` with representation numonly / numcat / numcat++), `epochs`
# (0: the config's), `limit` (voices in the datasets, 0: all).

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
rows = "numonly,numcat,numcat++,numcat++/six,numcat++/mlp"
epochs = 2
limit = 64
cartridges = ""

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from companion.data import dataset, presets
from companion.dx7.params import ENCODINGS, representation
from companion.models.vae import load_model
from companion.publishing.notebooks import dataset_dir, parse_rows
from companion.training import train

data = Path(data_dir)
db = data / "presets.sqlite"
table_rows = parse_rows(rows)

# %% [markdown]
# The preset vector each representation learns (columns of u, and so the latent size):

# %%
# NBVAL_CHECK_OUTPUT
print({name: representation(name).size for name in ENCODINGS})

# %%
if not db.exists():
    presets.build(cartridges or None, db, progress=False)
runs = {}
for row in table_rows:
    ds, run = dataset_dir(data, config, row.notes, limit), row.run_dir(data, config)
    if not (ds / "stats.json").exists():
        dataset.build(db, config, ds, notes=row.notes, limit=limit, progress=False)
    done = (run / "model.yaml").exists() and (
        not epochs or len(train.read_metrics(run)) >= epochs)  # fmt: skip
    if not done:
        train.train(config, ds, run, encoding=row.representation, notes=row.notes,
                    epochs=epochs or None, regression=row.regression,
                    resume=(run / "config.yaml").exists(), progress=False)  # fmt: skip
    model, meta = load_model(run)
    runs[run.name] = run
    print(
        f"{run}: {meta['epochs']} epochs, {meta['trained_s']:.0f} s of training;",
        {k: round(v, 4) for k, v in meta["final"].items() if k in ("val_num_mae", "val_cat_acc")},
    )

# %% [markdown]
# ## Curves

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
for name, run in runs.items():
    if not (run / "metrics.jsonl").exists():  # the shipped model keeps its card, not its curves
        print(f"{name}: no per-epoch metrics (a shipped model's folder), no curves")
        continue
    metrics = train.read_metrics(run)
    epoch = [m["epoch"] for m in metrics]
    axes[0].plot(epoch, [m["val_loss"] for m in metrics], label=name)
    axes[1].plot(epoch, [m["val_num_mae"] for m in metrics], label=name)
    axes[2].plot(epoch, [m["val_cat_acc"] for m in metrics], label=name)
for ax, title in zip(axes, ("validation loss (spectrogram MSE + beta KL + preset loss)",
                            "validation numerical MAE (of range)",
                            "validation categorical accuracy")):  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
fig.tight_layout()
