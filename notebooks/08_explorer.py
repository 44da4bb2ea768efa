# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Explorer
#
# A sound in, a DX7 voice out, in the browser: `make app` serves this notebook as a web app
# (Voila, on localhost; the shipped model, no GPU needed). Upload a recording of one note,
# choose the quality, hear your sound and the DX7 voice, see both spectrograms, and download
# the voice (.syx for Dexed or a DX7) and a bank of alternatives. With a dataset (notebook 01),
# also: pick a test voice and hear what the model makes of it; slide between two voices
# through the latent space. And sample new voices.
#
# Parameters (papermill): `config`, `data_dir`, `limit` (the dataset of notebook 01; without
# one, only the upload and new voices are shown), `model` (a model folder; empty: the shipped
# model, companion/models/default, when its spectrogram settings match the dataset's, else the
# NumCat++ run of notebook 02), `library` (a preset database or cartridge folder for the
# upload's matching; empty: $COMPANION_LIBRARY, else the folder of `companion library use`,
# else the library of `companion library get`, else 4,096 voices the model generates).

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
model = ""
library = ""

# %%
from pathlib import Path

from companion.data.dataset import open_dataset
from companion.models.vae import default_model_dir, load_model
from companion.publishing import app, explorer
from companion.publishing.notebooks import Row, dataset_dir

data = Path(data_dir)
ds = dataset_dir(data, config, "single", limit)
try:
    audio = open_dataset(ds).audio
except ValueError:  # no dataset here (the web app): the upload and new voices only
    audio = None
shipped = default_model_dir()
if not model:
    fits = audio is None or load_model(shipped)[0].cfg.audio == audio
    model = str(shipped if fits else Row("numcat++").run_dir(data, config))
voices = explorer.test_voices(str(ds)) if audio is not None else []

# %% [markdown]
# ## A sound in, a DX7 voice out

# %%
app.app_panel(model, library or None)

# %%
if voices:  # with a dataset: its test voices, and paths between them through the latent space
    from IPython.display import Markdown, display

    display(Markdown("## A test voice"), explorer.program_panel(model, voices))
    display(Markdown("## Between two voices, through the latent space"),
            explorer.path_panel(model, voices))  # fmt: skip

# %% [markdown]
# ## New voices

# %%
explorer.generate_panel(model)
