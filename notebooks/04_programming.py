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
# # 04 · Programming a DX7 from sounds: the companion page's first table
#
# Test voices (never seen in training; some harmonic, some percussive, some sfx), played at
# MIDI 60 velocity 85, are given to the model: its answer alone and the full `program` pipeline
# (candidates rendered by the engine, then tuning) are rendered and written to disk as .wav,
# .syx and spectrogram .png, with a table of their distances. Audio is not embedded here.
#
# Parameters (papermill): `config`, `data_dir`, `notes`, `limit`, `representation` (which run
# of notebook 02), `model` (a model folder; empty: that run), `n_voices`, `out_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
notes = "single"
limit = 64
representation = "numcat++"
model = ""
n_voices = 8
out_dir = "../data/programming"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf

from companion import presets
from companion.dataset import open_dataset
from companion.dx7.sysex import single_voice_message, write_atomic
from companion.labels import LABELS
from companion.metrics import audio_metrics
from companion.program import Programmer
from companion.synth import Renderer

data = Path(data_dir)
ds = open_dataset(data / f"dataset-{config}-{notes}-{limit or 'all'}")
run = model or str(data / "runs" / f"{config}-{notes}-{representation}")
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# Test voices, taking each label in turn so that the set mixes harmonic, percussive and sfx.

# %%
ids = np.load(ds.path / "test.ids.npy")
labels = np.load(ds.path / "test.labels.npy")
order = [i for k in range(len(LABELS)) for i in np.flatnonzero(labels[:, k])]
chosen = list(dict.fromkeys(order + list(range(len(ids)))))
picked = []
for k in range(len(chosen)):  # round-robin over the labels
    by_label = [[i for i in chosen if labels[i, j]] for j in range(len(LABELS))]
    for group in by_label:
        if len(picked) < n_voices and k < len(group) and group[k] not in picked:
            picked.append(group[k])
picked = picked or chosen[:n_voices]
voices = dict(presets.load(ds.header["database"], ids=[int(ids[i]) for i in picked]))

# %%
renderer, rows = Renderer(ds.audio), []
network, full = Programmer(run, candidates=1), Programmer(run)
for i in picked:
    vid = f"{int(ids[i]):06d}"
    original = voices[int(ids[i])]
    audio = renderer.render(original)
    results = {"original": (original, audio)}
    for name, prog in (("network", network), ("program", full)):
        r = prog.run_audio(audio, Path(vid), tune=name == "program")
        results[name] = (r.voice, renderer.render(r.voice))
    for name, (voice, sound) in results.items():
        sf.write(out / f"{vid}_{name}.wav", sound, ds.audio.sample_rate)
        write_atomic(out / f"{vid}_{name}.syx", single_voice_message(voice))
        spec = full.spectrogram(sound).numpy()
        plt.imsave(out / f"{vid}_{name}.png", spec, origin="lower", cmap="magma",
                   vmin=ds.audio.floor_db)  # fmt: skip
    tags = ", ".join(n for n, on in zip(LABELS, labels[i]) if on) or "silent"
    row = {"id": vid, "name": original.display_name, "labels": tags}
    for name in ("network", "program"):
        m = audio_metrics(audio, results[name][1])
        row[f"{name} SC"], row[f"{name} MFCC"] = m["sc"], m["mfcc_mae"]
    rows.append(row)

# %%
keys = list(rows[0])
lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
for row in rows:
    lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                   for v in row.values()) + " |")  # fmt: skip
table = "\n".join(lines)
write_atomic(out / "programming.md", (table + "\n").encode())
print(table)
print(f"audio, voices and spectrograms in {out}")

# %%
fig, axes = plt.subplots(len(picked), 3, figsize=(12, 2.2 * len(picked)), squeeze=False)
for r, i in enumerate(picked):
    vid = f"{int(ids[i]):06d}"
    for c, name in enumerate(("original", "network", "program")):
        axes[r, c].imshow(plt.imread(out / f"{vid}_{name}.png"), aspect="auto")
        axes[r, c].set_title(f"{vid} {name}", fontsize=8)
        axes[r, c].axis("off")
fig.tight_layout()
