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
# # 08 · Explorer
#
# Open in JupyterLab and run all (the shipped model, no GPU needed): pick a test voice or
# upload a sound and hear what the model makes of it; slide between two voices through the
# latent space; sample new voices and download them as .syx for Dexed or a DX7.
#
# Parameters (papermill): `config`, `data_dir`, `limit` (the dataset of notebook 01), `model`
# (a model folder; empty: the shipped model, companion/models/default, when its spectrogram settings
# match the dataset's, else the NumCat++ run of notebook 02).

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
model = ""

# %%
from pathlib import Path

from companion.data.dataset import open_dataset
from companion.models.vae import default_model_dir, load_model
from companion.publishing import explorer
from companion.publishing.notebooks import Row, dataset_dir

data = Path(data_dir)
ds = dataset_dir(data, config, "single", limit)
shipped = default_model_dir()
if not model:
    fits = load_model(shipped)[0].cfg.audio == open_dataset(ds).audio
    model = str(shipped if fits else Row("numcat++").run_dir(data, config))
voices = explorer.test_voices(str(ds))
print(f"model {model}; {len(voices)} test voices of {ds}")

# %% [markdown]
# ## A sound in, a DX7 voice out

# %%
explorer.program_panel(model, voices)

# %% [markdown]
# ## Between two voices, through the latent space

# %%
explorer.path_panel(model, voices)

# %% [markdown]
# ## New voices

# %%
explorer.generate_panel(model)
