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
# # 06 · Sounds of other instruments
#
# Sounds that no DX7 made: sampled acoustic instruments (the General MIDI soundfont FluidR3_GM
# played by FluidSynth) and other synthesizers (Faust physical models and synth patches played
# by DawDreamer), each at MIDI 60, velocity 85, 4 s. Each is programmed three ways: the
# network's answer alone, the full `program` pipeline (candidates rendered by the engine, then
# tuning), and retrieval of the library voice whose spectrogram is nearest. Sounds, voices and
# spectrograms are written to disk; the table of distances goes to `figures/`.
#
# Parameters (papermill): `config`, `data_dir`, `limit` (as notebook 01), `model` (a model
# folder; empty: the NumCat++ run of notebook 02), `sources` (comma-separated; empty: all),
# `out_dir`, `figures_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
model = ""
sources = ""
out_dir = "../data/out_of_domain"
figures_dir = "../data/figures"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import soundfile as sf
from IPython.display import Markdown, display

from companion.data import instruments
from companion.data.dataset import open_dataset
from companion.evaluation import other_sounds
from companion.io import write_atomic
from companion.publishing.notebooks import Row, dataset_dir
from companion.publishing.plots import spectrogram_png

data = Path(data_dir)
ds = open_dataset(dataset_dir(data, config, "single", limit))
run = model or str(Row("numcat++").run_dir(data, config))
out, figures = Path(out_dir), Path(figures_dir)
names = [s.strip() for s in sources.split(",") if s.strip()] or instruments.SOURCES

# %%
results = other_sounds.evaluate_ood(run, str(ds.path), out, figures, names)
display(Markdown((figures / "table_ood.md").read_text()))

# %% [markdown]
# ## Spectrograms: input, network, program, retrieval

# %%
columns = ["input", *other_sounds.METHODS]
stem_of = lambda name, method: name if method == "input" else f"{name}_{method}"  # noqa: E731
fig, axes = plt.subplots(len(names), len(columns), figsize=(12, 1.9 * len(names)), squeeze=False)
for r, name in enumerate(names):
    for c, method in enumerate(columns):
        stem = stem_of(name, method)
        audio, _ = sf.read(out / f"{stem}.wav", dtype="float32")
        png = spectrogram_png(audio, out / f"{stem}.png", ds.audio)
        axes[r, c].imshow(plt.imread(png), aspect="auto")
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if r == 0:
            axes[r, c].set_title(method)
        if c == 0:
            axes[r, c].set_ylabel(name, fontsize=8)
fig.tight_layout()
print(f"sounds (.wav), voices (.syx) and spectrograms (.png) in {out}")

# %%
# what the demo site shows (notebook 07): one row per source, one cell per method
site = {"ood": {
    "title": "Sounds of other instruments",
    "intro": "Sounds no DX7 made (a General MIDI soundfont played by FluidSynth, Faust programs "
             "played by DawDreamer; MIDI 60, velocity 85) and the DX7 voices inferred from them: "
             "the network's answer, the full program pipeline, and the nearest library voice.",
    "columns": columns,
    "rows": [{"key": name, "title": name,
              "cells": [{"label": m, "wav": str(out / f"{stem_of(name, m)}.wav"),
                         "png": str(out / f"{stem_of(name, m)}.png")}
                        for m in columns]} for name in names]}}  # fmt: skip
write_atomic(out / "site.json", json.dumps(site, indent=1).encode())
