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
# # 04 · Programming a DX7 from sounds: the companion page's first table
#
# Test voices (never seen in training; some harmonic, some percussive, some sfx), played at
# MIDI 60 velocity 85, are given to each model of notebook 02 (Num only, NumCat, NumCat++): their
# answers alone, and the `program` pipeline of the last one at two qualities (`fast`: the
# network's answer, latent samples and the train split's nearest voices rendered by the engine
# and ranked; `best`: then a search with the engine in the loop, about 5 s a sound), are
# rendered and written to disk as .wav, .syx and spectrogram .png, with a table of their
# distances. Audio is not embedded here.
#
# Parameters (papermill): `config`, `data_dir`, `limit` (as notebook 01), `rows` (one-note rows
# of notebook 02, one column each), `models` (model folders, comma-separated, instead of those
# rows), `six` (the six-note row, for the multi-note section), `n_voices`, `n_recordings`
# (test voices recorded like a user's, for the recordings section), `out_dir`.

# %% tags=["parameters"]
config = "smoke"
data_dir = "../data"
limit = 64
rows = "numonly,numcat,numcat++"
six = "numcat++/six"
models = ""
n_voices = 4
n_recordings = 1
out_dir = "../data/programming"

# %%
import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import soundfile as sf
import torch

from companion.data import presets
from companion.data.audio import read_mono
from companion.data.dataset import open_dataset
from companion.data.labels import LABELS
from companion.data.pitch import note_name
from companion.data.render import Play, Renderer
from companion.dx7.params import representation
from companion.dx7.sysex import single_voice_message
from companion.dx7.voice import Voice
from companion.evaluation.metrics import audio_metrics
from companion.evaluation.recordings import RATE, as_recorded, draw, level_matched, record
from companion.evaluation.tables import markdown
from companion.io import write_atomic, write_audio
from companion.matching.program import Programmer
from companion.matching.variants import DISTINCT_DB
from companion.models.vae import load_model
from companion.publishing.notebooks import Row, dataset_dir, parse_rows
from companion.publishing.plots import spectrogram_png
from companion.publishing.site import slug

data = Path(data_dir)
ds = open_dataset(dataset_dir(data, config, "single", limit))
folders = [m for m in models.split(",") if m] or [
    str(row.run_dir(data, config)) for row in parse_rows(rows)]  # fmt: skip
# one column per model, named by its representation: "numonly", "numcat", "numcat++"
loaded = {f: load_model(f) for f in folders}
columns = {meta["encoding"]: f for f, (_, meta) in loaded.items()}
trained = {k: {"cfg": loaded[f][0].cfg, "epochs": loaded[f][1]["epochs"]}
           for k, f in columns.items()}  # fmt: skip
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
by_id = dict(presets.load(ds.header["database"], ids=[int(i) for i in ids[:64]]))
voices_all = [by_id[int(i)] for i in ids[:64]]

# %%
renderer, table = Renderer(ds.audio), []
answers = {name: Programmer(f, candidates=1) for name, f in columns.items()}
# program's library: the database's train split (a test voice is never retrieved)
library = ds.header["database"]
programs = {f"program {q}": Programmer(list(columns.values())[-1], library=library, quality=q,
                                       split="train") for q in ("fast", "best")}  # fmt: skip
full = programs["program fast"]
names = ["original", *answers, *programs]
for i in picked:
    vid = f"{int(ids[i]):06d}"
    original = voices[int(ids[i])]
    audio = renderer.render(original)
    results = {"original": (original, audio)}
    for name, prog in [*answers.items(), *programs.items()]:
        r = prog.run_audio(audio, Path(vid), tune=name.startswith("program"))
        results[name] = (r.voice, renderer.render(r.voice))
    for name, (voice, sound) in results.items():
        stem = f"{vid}_{slug(name)}"
        write_audio(out / f"{stem}.wav", sound, ds.audio.sample_rate)
        write_atomic(out / f"{stem}.syx", single_voice_message(voice))
        spectrogram_png(sound, out / f"{stem}.png", ds.audio)
    tags = ", ".join(n for n, on in zip(LABELS, labels[i]) if on) or "silent"
    row = {"id": vid, "name": original.display_name, "labels": tags}
    for name in names[1:]:
        row[f"{name} SC"] = audio_metrics(audio, results[name][1])["sc"]
    table.append(row)

# %%
table_md = markdown(pd.DataFrame(table))
write_atomic(out / "programming.md", (table_md + "\n").encode())
print(table_md)
print(f"audio, voices and spectrograms in {out}")
# what the demo site shows (notebook 07): one row per voice, one cell per column
titles = {"original": "original", "numonly": "Num only", "numcat": "NumCat",
          "numcat++": "NumCat++", "program fast": "program fast",
          "program best": "program best"}  # fmt: skip
site = {"programming": {
    "title": "Automatic synthesizer programming",
    "intro": "Test voices (never seen in training), played at MIDI 60, velocity 85: the original "
             "and the voice inferred from its sound by each preset representation's model, and by "
             "the program pipeline at two qualities (fast: candidates from the network and "
             "the library's train split rendered by the engine and ranked; best: then a search "
             "with the engine in the loop). "
             "Models: " + "; ".join(f"{titles[k]}: {m['cfg'].name} config, {m['epochs']} epochs"
                                    for k, m in trained.items()) + ".",
    "columns": [titles.get(n, n) for n in names],
    "rows": [{"key": r["id"], "title": f"{r['id']} {r['name']}", "note": r["labels"],
              "cells": [{"label": n, "wav": str(out / f"{r['id']}_{slug(n)}.wav"),
                         "png": str(out / f"{r['id']}_{slug(n)}.png")}
                        for n in names]} for r in table]}}  # fmt: skip

# %%
fig, axes = plt.subplots(len(picked), len(names), figsize=(3.2 * len(names), 2.2 * len(picked)),
                         squeeze=False)  # fmt: skip
for r, i in enumerate(picked):
    vid = f"{int(ids[i]):06d}"
    for c, name in enumerate(names):
        axes[r, c].imshow(plt.imread(out / f"{vid}_{slug(name)}.png"), aspect="auto")
        axes[r, c].set_title(f"{vid} {name}", fontsize=8)
        axes[r, c].axis("off")
fig.tight_layout()

# %% [markdown]
# ## Learning from multiple notes: one voice at velocities 20, 64 and 127
#
# The test voice (of the first 64) whose sound changes most with velocity, played at MIDI 60
# with velocities 20, 64 and 127: the original, the one-note NumCat++ model's voice (it heard
# 60 / 85 only) and the six-note model's voice (it heard all six notes). Table: log-mel
# distance to the original at each velocity. Needs the six-note dataset and run of notebooks
# 01-02 (`six`: that row; empty: skipped).

# %%
six_run = Row.parse(six).run_dir(data, config) if six else None
six_ds = dataset_dir(data, config, "six", limit)
if six_run is not None and (six_run / "model.yaml").exists() and (six_ds / "stats.json").exists():
    six_info = open_dataset(six_ds)
    six_ids = list(np.load(six_info.path / "test.ids.npy"))
    velocities = ((60, 20), (60, 64), (60, 127))
    spread = []
    for i in range(min(64, len(ids))):  # how much each voice changes from velocity 20 to 127
        soft, loud = (full.spectrogram(a) for a in renderer.render_notes(
            voices_all[i], ((60, 20), (60, 127))))  # fmt: skip
        spread.append(float((soft - loud).abs().mean()))
    pick = int(np.argmax(spread))
    vid = int(ids[pick])
    original = voices_all[pick]
    one_note = full.run_audio(renderer.render(original), Path(str(vid)), tune=False).voice
    model6, meta6 = load_model(six_run)
    spec6 = np.load(six_info.path / "test.spec.npy", mmap_mode="r")[six_ids.index(vid)]
    x = torch.from_numpy(np.asarray(spec6, np.float32))[None] - meta6["stats"]["mean_db"]
    u = model6.infer(x / meta6["stats"]["std_db"]).numpy()
    six_note = Voice.from_values(representation(meta6["encoding"]).decode(u)[0], "SIX NOTES")
    dyn = []
    for name, voice in (("original", original), ("one-note", one_note), ("six-note", six_note)):
        for (_, vel), audio in zip(velocities, renderer.render_notes(voice, velocities)):
            stem = f"{vid:06d}_vel{vel:03d}_{name}"
            write_audio(out / f"{stem}.wav", audio, ds.audio.sample_rate)
            spectrogram_png(audio, out / f"{stem}.png", ds.audio)
    for vel in (20, 64, 127):
        target = full.spectrogram(sf.read(out / f"{vid:06d}_vel{vel:03d}_original.wav",
                                          dtype="float32")[0])  # fmt: skip
        row = {"velocity": vel}
        for name in ("one-note", "six-note"):
            got = sf.read(out / f"{vid:06d}_vel{vel:03d}_{name}.wav", dtype="float32")[0]
            row[f"{name} log-mel dist. (dB)"] = float((full.spectrogram(got) - target).abs().mean())
        dyn.append(row)
    print(f"voice {vid:06d} '{original.display_name}' (spread {spread[pick]:.1f} dB)")
    dyn_md = markdown(pd.DataFrame(dyn), digits=2)
    write_atomic(out / "dynamics.md", dyn_md + "\n")
    site["dynamics"] = {
        "title": "Learning from multiple notes",
        "intro": f"Test voice {vid:06d} '{original.display_name}', whose sound changes most with "
                 "velocity, played at MIDI 60 with velocities 20, 64 and 127: the original, the "
                 "voice inferred by the one-note model (it heard velocity 85 only) and by the "
                 "six-note model.",
        "columns": ["velocity 20", "velocity 64", "velocity 127"],
        "rows": [{"key": name, "title": name,
                  "cells": [{"label": f"vel{v:03d}",
                             "wav": str(out / f"{vid:06d}_vel{v:03d}_{name}.wav"),
                             "png": str(out / f"{vid:06d}_vel{v:03d}_{name}.png")}
                            for v in (20, 64, 127)]}
                 for name in ("original", "one-note", "six-note")]}  # fmt: skip
    print(dyn_md)
    fig, axes = plt.subplots(3, 3, figsize=(10, 6))
    for r, name in enumerate(("original", "one-note", "six-note")):
        for c, vel in enumerate((20, 64, 127)):
            axes[r, c].imshow(plt.imread(out / f"{vid:06d}_vel{vel:03d}_{name}.png"),
                              aspect="auto")  # fmt: skip
            axes[r, c].set_title(f"{name}, velocity {vel}", fontsize=8)
            axes[r, c].axis("off")
    fig.tight_layout()
else:
    print("no six-note run: the multi-note section is skipped")

# %% [markdown]
# ## Recordings like a user's, and `--variants`
#
# A user's recording is not the project's render: some key and velocity, the key held for some
# time, silence before the note, any level, 44.1 kHz stereo. `n_recordings` test voices are
# recorded that way (companion.evaluation.recordings: key 36-84, velocity 50-120, held 0.4-2.5
# s, up to 0.3 s of silence, peak -12 to -1 dBFS) and given to `program best` as files alone:
# it reads the key a musician would press for it (the note of its pitch), the velocity, the
# key-on and the key-up, and makes a voice that plays the recording at that key. Shown: the
# recording, the answer played as program printed it (recorded and read back the same way, at
# the recording's loudness), and the original and the answer an octave down and up from there
# (which the recording never showed; each at its own level). Then the first recording with
# `--variants 4`: the distinct alternatives of NAME-variants.syx, each played as printed.

# %%
best, sr = programs["program best"], ds.audio.sample_rate
rec_dir = out / "recordings"
rec_dir.mkdir(exist_ok=True)
rng = np.random.default_rng(17)
rec_rows, rec_table, shown_variants = [], [], None
# the table's voices first, then the first 64 test voices
pool = {**{int(ids[i]): voices[int(ids[i])] for i in picked}, **by_id}
for voice_id, original in pool.items():
    if len(rec_rows) == n_recordings:
        break
    rec = draw(rng)
    truth = renderer.play(original, rec.play(sr))  # the recording at the project's rate
    if np.abs(truth).max() < 0.01:  # (nearly) silent at the key and velocity drawn: skipped
        continue
    k, vid = len(rec_rows), f"{voice_id:06d}"
    recording = record(renderer, original, rec)  # (T, 2) at 44.1 kHz
    path = write_audio(rec_dir / f"{vid}.wav", recording, RATE, subtype="PCM_24")
    r = best.run(path, variants=4 if k == 0 else 0)
    t = r.takes[0]
    heard, _ = read_mono(path, sr)  # the recording as program reads it
    # the answer as program printed it: its key, velocity, key-on (in the file) and key-up
    printed = dataclasses.replace(t.play, offset=round(t.key_on_s * sr), length=len(heard))
    as_read = level_matched(as_recorded(renderer.play(r.voice, printed)), heard)
    sounds = {"recording": heard, "program best, as printed": as_read}
    n = round((rec.hold_s + 1.5) * sr)
    for d, where in ((-12, "an octave down"), (12, "an octave up")):
        sounds[f"original, {where}"] = renderer.play(original, Play(rec.note + d, rec.velocity,
                                                                    rec.hold_s, 0, n))
        sounds[f"program, {where}"] = renderer.play(r.voice, Play(t.play.note + d,
                                                                  t.play.velocity,
                                                                  t.play.hold_s, 0, n))
    for name, sound in sounds.items():
        stem = f"{vid}_{slug(name)}"
        write_audio(rec_dir / f"{stem}.wav", sound, sr)
        spectrogram_png(sound, rec_dir / f"{stem}.png", ds.audio)
    score = {"as printed": audio_metrics(heard, as_read)["sc"]}
    for where in ("an octave down", "an octave up"):
        a, b = sounds[f"original, {where}"], sounds[f"program, {where}"]
        score[where] = audio_metrics(a, level_matched(b, a))["sc"]
    rec_table.append({"id": vid, "name": original.display_name,
                      "recorded": f"key {rec.note}, vel. {rec.velocity}, {rec.hold_s:.2f} s",
                      "plays at": f"key {t.play.note} ({note_name(t.play.note)}), vel. "
                                  f"{t.play.velocity}, {t.play.hold_s:.2f} s",
                      **{f"SC {n}": v for n, v in score.items()}})  # fmt: skip
    rec_rows.append({"key": vid, "title": f"{vid} {original.display_name}",
                     "note": f"recorded at key {rec.note}, velocity {rec.velocity}, held "
                             f"{rec.hold_s:.2f} s, peak {rec.peak_db:.0f} dBFS; the voice plays "
                             f"it at key {t.play.note} ({note_name(t.play.note)}), velocity "
                             f"{t.play.velocity}, held {t.play.hold_s:.2f} s",
                     "cells": [{"label": n, "wav": str(rec_dir / f"{vid}_{slug(n)}.wav"),
                                "png": str(rec_dir / f"{vid}_{slug(n)}.png")}
                               for n in sounds]})  # fmt: skip
    if r.variants:
        shown_variants = (vid, original, heard, r, printed)
if rec_rows:
    rec_md = markdown(pd.DataFrame(rec_table))
    write_atomic(rec_dir / "recordings.md", rec_md + "\n")
    print(rec_md)
    site["recordings"] = {
        "title": "Recordings like a user's",
        "intro": "Test voices recorded the way a user has them (a key from 36 to 84, velocity 50 "
                 "to 120, the key held 0.4 to 2.5 s, silence before the note, any level, 44.1 "
                 "kHz stereo) and given to program --quality best as files alone: it reads the "
                 "key a musician presses for it (the note of its pitch), the velocity, key-on and "
                 "key-up, and makes a voice that plays it at that key. The recording, the "
                 "answer played as program printed it (recorded the same way, at the "
                 "recording's loudness), and the original and the answer an octave down and up "
                 "from there, which the recording never showed (each at its own level).",
        "columns": list(sounds), "rows": rec_rows}  # fmt: skip
if shown_variants:
    vid, original, heard, r, printed = shown_variants
    cells = [{"label": "recording", "wav": str(rec_dir / f"{vid}_recording.wav"),
              "png": str(rec_dir / f"{vid}_recording.png")}]  # fmt: skip
    for v, voice in enumerate(r.variants, 1):
        stem = f"{vid}_variant{v}"
        sound = level_matched(as_recorded(renderer.play(voice, printed)), heard)
        write_audio(rec_dir / f"{stem}.wav", sound, sr)
        spectrogram_png(sound, rec_dir / f"{stem}.png", ds.audio)
        cells.append({"label": f"variant {v}", "wav": str(rec_dir / f"{stem}.wav"),
                      "png": str(rec_dir / f"{stem}.png")})  # fmt: skip
    print(f"{vid} '{original.display_name}': {len(r.variants)} variants "
          f"({', '.join(v.display_name for v in r.variants)})")
    site["variants"] = {
        "title": "Alternatives: --variants",
        "intro": f"program --variants {len(r.variants)} on the first recording above "
                 f"({vid} '{original.display_name}'): the distinct voices of NAME-variants.syx, "
                 f"best first (each at least {DISTINCT_DB:g} dB RMS from the others in "
                 "log-mel), each played as program printed the answer, at the recording's "
                 "loudness.",
        "columns": [c["label"] for c in cells],
        "rows": [{"key": vid, "title": f"{vid} {original.display_name}", "cells": cells}]}

# %%
write_atomic(out / "site.json", json.dumps(site, indent=1).encode())
print(f"site sections {list(site)} in {out / 'site.json'}")
