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
# # 07 · The demo site
#
# Gathers what notebooks 03-06 wrote (each left a `site.json` naming its sounds and
# spectrograms, and the tables in `figures/`), encodes the sounds as mp3, writes the site's
# data (`_data/*.yml`) and assets, and builds the pages with Jekyll. The committed site in
# `site/` comes from the shipped model (`make reproduce CONFIG=small SITE=site`); other runs
# write their own copy (default `data/site`).
#
# Parameters (papermill): `config`, `data_dir`, `figures_dir`, `site_dir`, and the folders of
# notebooks 04-06: `programming_dir`, `interpolation_dir`, `ood_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
figures_dir = "../data/figures"
site_dir = "../data/site"
programming_dir = "../data/programming"
interpolation_dir = "../data/interpolation"
ood_dir = "../data/out_of_domain"

# %%
import json
from pathlib import Path

import yaml

from companion.evaluation import paper_table
from companion.io import write_atomic
from companion.publishing import site

figures, out = Path(figures_dir), site.copy_source(site_dir)
manifest = {}
for folder in (programming_dir, interpolation_dir, ood_dir):
    manifest.update(json.loads((Path(folder) / "site.json").read_text()))
counts = site.write_site(manifest, out)
site.write_tables({name: figures / f"table_{name}.md" for name in
                   ("main", "notes", "interpolation", "generate", "ood")}, out)  # fmt: skip
note = f"config {config}, {paper_table.provenance()}."
write_atomic(out / "_data" / "build.yml", yaml.safe_dump({"note": note}).encode())
print(counts)

# %%
built = site.build(out)
pages = sorted(p.relative_to(built).as_posix() for p in built.glob("*.html"))
print(f"built {len(pages)} pages in {built}: {pages}")
