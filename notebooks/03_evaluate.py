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
# # 03 · Evaluation: the paper's table, with baselines
#
# Infers a voice for every test voice (its render at MIDI 60, velocity 85) with each model, and
# with the baselines (INIT VOICE, nearest training voice, the full `program` pipeline), renders
# the results and measures them. Tables go to `figures/` (Markdown, CSV, LaTeX).
#
# Parameters (papermill): `config`, `data_dir`, `limit` (voices of the datasets; as in
# notebook 01), `test_voices` (how many test voices are measured), `rows` (the table rows
# trained by notebook 02), `runs` (model folders, comma-separated, instead of those rows),
# `figures_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
test_voices = 8
rows = "numonly,numcat,numcat++,numcat++/six,numcat++/mlp"
runs = ""
figures_dir = "../data/figures"
cartridges = ""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from companion.dx7.params import PARAMS
from companion.evaluation import paper_table
from companion.publishing.notebooks import dataset_dir, parse_rows

data = Path(data_dir)
models = [r for r in runs.split(",") if r] or [
    str(row.run_dir(data, config)) for row in parse_rows(rows)
    if (row.run_dir(data, config) / "model.yaml").exists()]  # fmt: skip
# the six-note dataset holds note (60, 85) too, so one dataset serves every row
six = dataset_dir(data, config, "six", limit)
ds = six if (six / "stats.json").exists() else dataset_dir(data, config, "single", limit)
print("models:", models, "\ndataset:", ds)

# %%
measured = paper_table.measure(models, str(ds), limit=test_voices, progress=False)
summary = measured.tables(Path(figures_dir))
display(Markdown((Path(figures_dir) / "table_main.md").read_text()))
display(Markdown((Path(figures_dir) / "table_notes.md").read_text()))

# %% [markdown]
# ## Distributions over the test voices

# %%
shown = [name for name, per in measured.results.items() if per is not None]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for ax, (metric, title) in zip(axes, [("sc", "spectral convergence"), ("mfcc_mae", "MFCC MAE"),
                                       ("num_mae", "numerical parameter MAE")]):  # fmt: skip
    data_rows = [measured.results[r][metric][np.isfinite(measured.results[r][metric])]
                 for r in shown]  # fmt: skip
    ax.boxplot(data_rows, orientation="horizontal")
    ax.set_yticks(range(1, len(shown) + 1), shown, fontsize=8)
    ax.set_title(title)
fig.tight_layout()

# %% [markdown]
# ## Error per parameter (first model)

# %%
first = next(r for r in shown if r in dict.fromkeys(measured.sources) and "program" not in r)
pred, true = measured.preds[first], measured.values
err = [np.mean(np.abs(pred[:, p.index] - true[:, p.index]) / (p.cardinality - 1)) for p in PARAMS]
fig, ax = plt.subplots(figsize=(16, 3.5))
ax.bar(range(len(PARAMS)), err)
ax.set_xticks(range(0, len(PARAMS), 6), [PARAMS[i].name for i in range(0, len(PARAMS), 6)],
              rotation=90, fontsize=7)  # fmt: skip
ax.set_title(f"{first}: mean absolute error per parameter (fraction of its range)")
fig.tight_layout()
