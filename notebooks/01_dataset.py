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
# # 01 · The dataset: DX7 cartridges → preset database → Dexed renders → spectrograms
#
# Reads a folder of DX7 cartridges (`.syx`) into the preset database (one row per unique voice),
# renders every voice with the Dexed engine and caches its mel spectrograms. All the work is
# done by the `companion` library; this notebook shows what came out.
#
# Parameters (papermill): `cartridges` (empty: `$COMPANION_CARTRIDGES`), `data_dir`, `config`
# (smoke / small / paper), `limit` (voices rendered; 0 for all), `notes` (note layouts to build,
# comma-separated: single, six).

# %% tags=["parameters"]
cartridges = ""
data_dir = "../data"
config = "smoke"
limit = 64
notes = "single,six"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from companion.data import dataset, presets
from companion.data.labels import LABELS
from companion.dx7.params import PARAMS
from companion.publishing.notebooks import dataset_dir

data = Path(data_dir)
db = data / "presets.sqlite"
layouts = [n.strip() for n in notes.split(",") if n.strip()]

# %% [markdown]
# ## The preset database

# %%
summary = presets.build(cartridges or None, db, progress=False)
for key in (
    "unique_voices",
    "readable_voices",
    "skipped_voices",
    "files",
    "files_without_voices",
    "checksum_warnings",
):
    print(f"{key:22s} {summary[key]}")
print("splits", summary["splits"])

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
families = summary["families"]
axes[0].bar(list(families), list(families.values()))
axes[0].set_title("voices per instrument family (!Instruments/)")
axes[0].tick_params(axis="x", rotation=60)
reasons = dict(list(summary["skipped_reasons"].items())[:12])
axes[1].barh(list(reasons), list(reasons.values()))
axes[1].set_title(f"corrupt voices skipped ({summary['skipped_voices']}), by first bad parameter")
axes[1].invert_yaxis()
fig.tight_layout()

# %% [markdown]
# ## Parameter histograms (all unique voices)

# %%
values = np.stack([v.values for _, v in presets.load(db)])
shown = [
    "algorithm",
    "feedback",
    "op1_output_level",
    "op1_coarse",
    "op2_detune",
    "lfo_wave",
    "op1_key_vel_sens",
    "op1_eg_rate1",
]
info = {p.name: p for p in PARAMS}
fig, axes = plt.subplots(2, 4, figsize=(14, 5))
for ax, name in zip(axes.flat, shown):
    p = info[name]
    ax.hist(values[:, p.index], bins=np.arange(p.cardinality + 1) - 0.5)
    ax.set_title(name)
fig.tight_layout()

# %% [markdown]
# ## Renders and spectrograms

# %%
for layout in layouts:  # the six-note dataset holds (60, 85) too, rendered the same way
    out = dataset_dir(data, config, layout, limit)
    stats = dataset.build(db, config, out, notes=layout, limit=limit, progress=False)
    print(f"{out.name}: notes {dataset.open_dataset(out).header['note_pairs']}")
print("voices per split", stats["splits"])
print(f"dB over the train split: mean {stats['mean_db']:.1f}, std {stats['std_db']:.1f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
counts = {name: sum(stats["labels"][s][name] for s in stats["splits"]) for name in LABELS}
ax.bar(list(counts), list(counts.values()))
ax.set_title("automatic labels (a voice may have several)")

# %%
train = dataset.SpectrogramDataset(out, "train")
names = dict((i, v.display_name) for i, v in presets.load(db, ids=train.ids[:4].tolist()))
fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
for k, ax in enumerate(axes):
    item = train[k]
    ax.imshow(item["spec"][0].numpy(), origin="lower", aspect="auto", cmap="magma")
    labels = [n for n, on in zip(LABELS, item["labels"].tolist()) if on]
    ax.set_title(f"{names[item['id']]} ({', '.join(labels) or 'silent'})")
    ax.set_xlabel("frame")
axes[0].set_ylabel("mel band")
fig.tight_layout()
