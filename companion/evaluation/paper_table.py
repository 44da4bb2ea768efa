"""The paper's tables: inferred presets of the test split, judged by their parameters and by
the sound of their renders, for every trained model and for baselines on the same voices.

Rows: the paper's models (Num only, NumCat, NumCat++ with one note and with six, the MLP
regression), "not run" where no run was given; then baselines: the DX7 INIT VOICE, the
nearest training voice by log-mel distance, the network's answer alone (the first run), and the
full `program` pipeline (candidates rendered by the engine, then tuning).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from companion.config import NOTE_LAYOUTS
from companion.data.audio import SILENCE
from companion.data.dataset import open_dataset
from companion.data.labels import LABELS
from companion.data.render import Renderer
from companion.dx7.params import representation
from companion.dx7.voice import INIT_VOICE, Voice
from companion.evaluation.metrics import audio_metrics, parameter_metrics
from companion.evaluation.notes_table import measure_notes, write_notes_tables
from companion.evaluation.tables import FORMATS, write_table
from companion.matching.program import Programmer
from companion.models.vae import load_model

PAPER_ROWS = [("numonly", "single", "flow", "Num only"), ("numcat", "single", "flow", "NumCat"),
              ("numcat++", "single", "flow", "NumCat++"),
              ("numcat++", "six", "flow", "NumCat++, six notes"),
              ("numcat++", "single", "mlp", "NumCat++, MLP regression")]  # fmt: skip
COLUMNS = [("num_mae", "num. MAE"), ("cat_acc", "cat. acc."), ("kv_num_mae", "key/vel MAE"),
           ("kv_cat_acc", "key/vel acc."), ("sc", "spectral conv."),
           ("log_stft_mae", "log STFT MAE"), ("mfcc_mae", "MFCC MAE"), ("mss", "multi-scale"),
           ("pitch_cents", "pitch err. (cents)")]  # fmt: skip


def main_note(info) -> int:
    """Index of (60, 85), the note every row is judged on, in the dataset's note layout."""
    return NOTE_LAYOUTS[info.notes].index((60, 85))


def nearest_train(info, query_db, block: int = 2048) -> np.ndarray:
    """Index of the nearest train voice of every query by L1 log-mel distance to the train
    voices' note (60, 85), on spectrograms pooled 4 x 4 (the search is over 20k voices).

    Args:
        query_db: (N, n_mels, frames) dB spectrograms of the dataset's audio settings.
    """
    train = np.load(info.path / "train.spec.npy", mmap_mode="r")
    k = main_note(info)
    pool = lambda x: F.avg_pool2d(torch.from_numpy(np.asarray(x, np.float32)), 4)  # noqa: E731
    query = pool(np.asarray(query_db)[:, None]).flatten(1)
    best = torch.full((len(query),), float("inf"))
    arg = torch.zeros(len(query), dtype=torch.long)
    for start in range(0, len(train), block):
        keys = pool(train[start : start + block, k : k + 1]).flatten(1)
        d = torch.cdist(query, keys, p=1)
        val, idx = d.min(1)
        better = val < best
        best[better], arg[better] = val[better], idx[better] + start
    return arg.numpy()


def evaluate(runs: list[str], data: str, out: str, limit: int | None = 200,
             progress: bool = True) -> dict:  # fmt: skip
    """Measure every row on the first ``limit`` test voices; write tables into ``out``.

    Returns the summary (row -> "label/statistic" -> metric -> value); the per-voice values
    are written to ``out``/table_main_voices.csv.
    """
    return measure(runs, data, limit, progress).tables(Path(out))


class Measured:
    """Per-voice results of every row: ``results[row][metric]`` is (N,) (None: not run)."""

    def __init__(self, results, labels, sources, info, ids, preds, values, notes=None):
        self.results, self.labels, self.sources, self.info = results, labels, sources, info
        self.ids, self.preds, self.values, self.notes = ids, preds, values, notes

    def tables(self, out: Path) -> dict:
        summary = _tables(self.results, self.labels, self.sources, self.info, len(self.ids), out)
        if self.notes is not None:
            write_notes_tables(self.notes, len(self.ids), _head(self.info), out)
        rows = [{"row": name, "voice_id": int(vid), **{c: float(per[c][i]) for c, _ in COLUMNS}}
                for name, per in self.results.items() if per is not None
                for i, vid in enumerate(self.ids)]  # fmt: skip
        voices = pd.DataFrame(rows, columns=["row", "voice_id", *[c for c, _ in COLUMNS]])
        write_table(out / "table_main_voices", None, formats=("csv",), data=voices)
        return summary


def measure(runs: list[str], data: str, limit: int | None = 200, progress: bool = True,
            notes: bool = True) -> Measured:  # fmt: skip
    """Every row's inferred voices and their metrics on the first ``limit`` test voices
    (with ``notes``, also at the other notes and velocities of notes_table.PAIRS)."""
    info = open_dataset(data)
    values = np.load(info.path / "test.voices.npy").astype(np.int64)[:limit]
    spec = np.load(info.path / "test.spec.npy", mmap_mode="r")[:limit]
    labels = np.load(info.path / "test.labels.npy")[:limit]
    n = len(values)
    renderer = Renderer(info.audio)
    originals = np.stack([renderer.render(Voice.from_values(v)) for v in values])
    preds: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    models = [(run, *load_model(run)) for run in runs]
    row_of: dict[str, str] = {}  # run -> its row's name
    for label_row in PAPER_ROWS:
        preds[label_row[3]] = None
    for run, model, meta in models:
        key = (meta["encoding"], "six" if meta["notes"] == 6 else "single", meta["regression"])
        name = next((r[3] for r in PAPER_ROWS if r[:3] == key),
                    f"{key[0]}, {key[1]} notes, {key[2]}")  # fmt: skip
        if preds.get(name) is not None:  # a second model of the same row: say how it differs
            name = f"{name}, {meta['epochs']} epochs"
        if model.cfg.audio != info.audio:
            raise ValueError(f"{run}: trained on other spectrograms than {data}")
        x = torch.from_numpy(np.asarray(spec, np.float32)) - meta["stats"]["mean_db"]
        x = x / meta["stats"]["std_db"]
        if model.notes == 1 and x.shape[1] != 1:
            x = x[:, main_note(info) :][:, :1]  # (60, 85) of the six notes
        elif model.notes != x.shape[1]:
            raise ValueError(f"{run}: a six-note model needs a six-note dataset (--notes six), "
                             f"not {data}")  # fmt: skip
        u = torch.cat([model.infer(x[i : i + 64]) for i in range(0, n, 64)]).numpy()
        preds[name], row_of[run] = representation(meta["encoding"]).decode(u), name
        sources[name] = (f"{model_name(run)} ({model.cfg.name} config, {meta['epochs']} epochs, "
                         f"{meta.get('trained_s', 0) / 60:.0f} min of training)")  # fmt: skip
    preds["INIT VOICE"] = np.tile(INIT_VOICE.values.astype(np.int64), (n, 1))
    train_values = np.load(info.path / "train.voices.npy").astype(np.int64)
    preds["nearest training voice"] = train_values[nearest_train(info, spec[:, main_note(info)])]
    # program takes one recording: the one-note NumCat++ flow model trained longest, else the
    # first one-note model
    one_note = sorted(
        (m for m in models if m[1].notes == 1),
        key=lambda m: (
            (m[2]["encoding"], m[2]["regression"]) != ("numcat++", "flow"),
            -m[2]["epochs"],
        ),
    )
    if one_note:
        # program at two qualities, its library the database's train split (no test voice
        # can be retrieved); the index is built beside the database on first use
        prog_run, db = one_note[0][0], info.header.get("database")
        library = db if db and Path(db).is_file() else None
        # program refuses a silent input (as it should a user's); for a test voice silent at
        # (60, 85) its row keeps the network's answer, which the parameter metrics still count
        network, silent = preds[row_of[prog_run]], np.abs(originals).max(axis=1) < SILENCE
        for quality in ("fast", "good"):
            name = f"program {quality}" + (" (train-split library)" if library else "")
            with Programmer(prog_run, library=library, quality=quality, split="train") as prog:
                chosen = [network[i] if silent[i] else
                          prog.run_audio(originals[i], Path(f"test{i}")).voice.values
                          for i in tqdm(range(n), desc=name, disable=not progress)]  # fmt: skip
            preds[name] = np.stack(chosen).astype(np.int64)
            where = f", library: the train split of {Path(db).name}" if library else ""
            sources[name] = (f"{model_name(prog_run)}, --quality {quality}{where}; silent "
                             "originals: the network's answer")  # fmt: skip
    results = {}
    for name, pred in preds.items():
        if pred is None:
            results[name] = None
            continue
        per = parameter_metrics(values, pred)
        audio = [
            audio_metrics(originals[i], renderer.render(Voice.from_values(pred[i])))
            for i in tqdm(range(n), desc=name[:20], disable=not progress)
        ]
        for key in audio[0]:
            per[key] = np.array([a[key] for a in audio])
        results[name] = per
    ids = np.load(info.path / "test.ids.npy")[:limit]
    at_notes = measure_notes(preds, values, renderer, progress) if notes else None
    return Measured(results, labels, sources, info, ids, preds, values, at_notes)


def code_commit() -> str:
    """The code's commit, marked "+changes" when the package differs from it."""

    def git(*args: str) -> str:
        here = Path(__file__).parents[1]  # the package: changes anywhere in it count
        proc = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=here)
        return proc.stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", ".")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance() -> str:
    """What every published table says made it: "commit abc1234, 2026-12-02"."""
    import datetime

    return f"commit {code_commit()}, {datetime.date.today().isoformat()}"


def model_name(folder) -> str:
    """How a table names a model: the shipped one as such, a run by its folder's name (never a
    path of the machine that made it)."""
    from companion.models import default_model_dir

    if folder is None or Path(folder).resolve() == default_model_dir().resolve():
        return "the shipped model (companion/models/default)"
    return f"run {Path(folder).name}"


def _head(info) -> str:
    return (f"Test split of dataset {info.path.name} (config {info.config!r}, "
            f"{info.audio.n_mels} x {info.audio.n_frames}); {provenance()}.")  # fmt: skip


def _tables(results, labels, sources, info, n, out: Path) -> dict:
    """figures/table_main.{md,csv,tex,yaml}: the means of every row (and per label in the
    Markdown), every statistic in the CSV; returns the summary (row -> label/statistic ->
    column -> value)."""
    summary, data = {}, []
    for name, per in results.items():
        if per is None:
            data.append({"row": name, "label": "all", "statistic": "not run"})
            continue
        summary[name] = {}
        for label_name, sel in [("all", np.ones(n, bool))] + [
                (lab, labels[:, k]) for k, lab in enumerate(LABELS)]:  # fmt: skip
            if not sel.any():
                continue
            for stat, fn in (("mean", np.nanmean), ("median", np.nanmedian)):
                vals = {c: float(fn(per[c][sel])) if np.isfinite(per[c][sel]).any() else np.nan
                        for c, _ in COLUMNS}  # fmt: skip
                vals["pitch_cents"] = float(np.nanmedian(per["pitch_cents"][sel])) \
                    if np.isfinite(per["pitch_cents"][sel]).any() else np.nan  # fmt: skip
                summary[name][f"{label_name}/{stat}"] = vals
                data.append({"row": name, "label": label_name, "statistic": stat, **vals})

    def means(key: str, names) -> pd.DataFrame:  # the table as read: one row per model
        return pd.DataFrame([{"row": name, **{title: summary[name][key][c] if name in summary
                                              else "not run" for c, title in COLUMNS}}
                             for name in names])  # fmt: skip

    sections = {}
    for k, lab in enumerate(LABELS):  # the same table for each label's voices
        key, count = f"{lab}/mean", int(labels[:, k].sum())
        if count:
            sections[f"{lab} voices ({count})"] = means(key, [m for m in summary
                                                               if key in summary[m]])  # fmt: skip
    write_table(out / "table_main", means("all/mean", results), formats=FORMATS,
                caption=f"{_head(info)} First {n} test voices (of "
                f"{info.stats['splits']['test']}), played at MIDI note 60, velocity 85. Means "
                "(silent originals left out of the audio metrics); pitch error is the median "
                "over voices with a stable pitch.",
                notes=["Models: " + "; ".join(f"{k}: {v}" for k, v in sources.items()) + "."],
                sections=sections, summary=summary,
                data=pd.DataFrame(data, columns=["row", "label", "statistic",
                                                 *[c for c, _ in COLUMNS]]))  # fmt: skip
    return summary
