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
# # 05 · Latent interpolation and new voices
#
# Two test voices are joined by 7-step paths: through the model's latent space (each voice
# encoded by the inverse of the regression flow, a straight line in zK, each step decoded) and
# naively (linear in the parameters). Every step is written to disk as .syx, .wav and a
# spectrogram .png. Over many random pairs, the smoothness and linearity of the sound along
# the paths are measured (audio features per step), and new voices sampled from the latent
# prior are compared with random valid voices.
#
# Parameters (papermill): `config`, `data_dir`, `limit` (as notebook 01), `model` (a model
# folder; empty: the NumCat++ run of notebook 02), `pairs` (random pairs measured), `voices`
# (new voices measured), `out_dir`, `figures_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
model = ""
pairs = 6
voices = 16
out_dir = "../data/interpolation"
figures_dir = "../data/figures"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from companion.data import presets
from companion.data.dataset import open_dataset
from companion.data.labels import LABELS
from companion.data.render import Renderer
from companion.dx7.voice import Voice
from companion.evaluation import latent as latent_eval
from companion.evaluation import paper_table
from companion.io import write_atomic
from companion.latent.interpolate import Latent, generate_bank, naive_path, step_names, write_path
from companion.publishing.notebooks import Row, dataset_dir
from companion.publishing.plots import spectrogram_png

data = Path(data_dir)
ds = open_dataset(dataset_dir(data, config, "single", limit))
run = model or str(Row("numcat++").run_dir(data, config))
out, figures = Path(out_dir), Path(figures_dir)
latent, renderer = Latent(run), Renderer(ds.audio)

# %% [markdown]
# ## Two 7-step examples: latent vs naive
#
# The first pair joins a harmonic voice to a percussive one, the second two harmonic voices
# (the first such test voices; any pair works the same way).

# %%
ids = np.load(ds.path / "test.ids.npy")
labels = np.load(ds.path / "test.labels.npy")
harmonic, percussive = (list(np.flatnonzero(labels[:, LABELS.index(k)])) for k in
                        ("harmonic", "percussive"))  # fmt: skip
order = list(dict.fromkeys(harmonic + percussive + list(range(len(ids)))))
hit = next((i for i in percussive if i != order[0]), order[1])
first = (order[0], hit)
second = tuple([i for i in order if i not in first][:2]) if len(order) > 3 else (order[1], order[0])
voices_by_id = dict(presets.load(ds.header["database"], ids=[int(ids[i]) for i in
                                                              (*first, *second)]))  # fmt: skip
examples = []
for k, (i, j) in enumerate((first, second), 1):
    a, b = voices_by_id[int(ids[i])], voices_by_id[int(ids[j])]
    for mode, values in (("latent", latent.path(a, b, 7)), ("naive", naive_path(a, b, 7))):
        folder = out / f"example{k}" / mode
        write_path(values, step_names(a, b, 7), folder, wav=True, audio_cfg=ds.audio)
        for s in range(1, 8):
            audio = renderer.render(Voice.from_values(values[s - 1]))
            spectrogram_png(audio, folder / f"step{s}.png", ds.audio)
    examples.append((k, a.display_name, b.display_name))
    print(f"example {k}: '{a.display_name}' -> '{b.display_name}' in {out / f'example{k}'}")

# %%
fig, axes = plt.subplots(4, 7, figsize=(16, 7))
for r, (k, mode) in enumerate([(k, m) for k, _, _ in examples for m in ("latent", "naive")]):
    for s in range(7):
        axes[r, s].imshow(plt.imread(out / f"example{k}" / mode / f"step{s + 1}.png"),
                          aspect="auto")  # fmt: skip
        axes[r, s].set_xticks([])
        axes[r, s].set_yticks([])
        if s == 0:
            axes[r, s].set_ylabel(f"example {k}\n{mode}", fontsize=8)
fig.suptitle("mel spectrograms along the paths (step 1 = A, step 7 = B)")
fig.tight_layout()

# %% [markdown]
# ## Smoothness and linearity over random pairs, and new voices

# %%
interp = latent_eval.interpolation(run, str(ds.path), pairs=pairs, progress=False)
gen = latent_eval.generation(run, str(ds.path), n=voices)
head = f"Model: {paper_table.model_name(run)}; {paper_table.provenance()}."
latent_eval.write_tables(interp, gen, head, figures)
display(Markdown((figures / "table_interpolation.md").read_text()))
display(Markdown((figures / "table_generate.md").read_text()))

# %%
bank = generate_bank(32, run, seed=0)
paths = presets.export(bank, out / "generated.syx")
fig, axes = plt.subplots(1, 6, figsize=(16, 2.6))
for ax, voice in zip(axes, bank):
    name = voice.display_name.replace(" ", "_")
    png = spectrogram_png(renderer.render(voice), out / f"{name}.png", ds.audio)
    ax.imshow(plt.imread(png), aspect="auto")
    ax.set_title(voice.display_name, fontsize=8)
    ax.axis("off")
print(f"a bank of 32 new voices: {paths[0]}")

# %%
# what the demo site shows (notebook 07): one row per example and mode, one cell per step
site = {"interpolation": {
    "title": "Latent interpolation between two presets",
    "intro": "Seven steps from voice A (step 1) to voice B (step 7): through the model's latent "
             "space (each voice encoded by the inverse of the regression flow, a straight line "
             "in zK) and naively (linear in the parameters, categorical ones switching half-way).",
    "columns": [f"step {s}" for s in range(1, 8)],
    "rows": [{"key": f"example{k}-{mode}", "title": f"'{na}' to '{nb}', {mode}",
              "cells": [{"label": f"step{s}",
                         "wav": str(out / f"example{k}" / mode / f"step{s}.wav"),
                         "png": str(out / f"example{k}" / mode / f"step{s}.png")}
                        for s in range(1, 8)]}
             for k, na, nb in examples for mode in ("latent", "naive")]}}  # fmt: skip
write_atomic(out / "site.json", json.dumps(site, indent=1).encode())
