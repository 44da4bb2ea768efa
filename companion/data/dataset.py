"""The spectrogram dataset: every voice of a preset database rendered and turned into mel
spectrograms, cached on disk, and a torch Dataset over that cache.

Layout of a dataset folder::

    config.yaml                  the config, note layout, source database, voice count, and the
                                 key: a hash of the voices, config, notes and limit
    progress.json                rows done per split (the build resumes from here)
    <split>.spec.npy             (N, notes, n_mels, frames) float16, dB, memory-mapped
    <split>.voices.npy           (N, 145) uint8 voice parameters (VCED order)
    <split>.ids.npy              (N,) int64 database ids
    <split>.labels.npy           (N, 3) bool: harmonic, percussive, sfx
    <split>.features.npy         (N, 3) float32 label features (see labels.py)
    stats.json                   dB mean / std / min / max over the train split, and counts
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from companion.config import NOTE_LAYOUTS, AudioConfig, Config, get_config
from companion.data import presets
from companion.data.audio import MelSpectrogram
from companion.data.labels import FEATURES, LABELS, Labeler, labels_from_features
from companion.data.render import Renderer, pool_map
from companion.dx7.params import representation
from companion.dx7.voice import Voice
from companion.io import clean_stale, save_npy, write_atomic

LABEL_NOTE = (60, 85)
ARRAYS = ("spec", "voices", "ids", "labels", "features")
# every file a build writes, by name: the only files a build ever deletes
FILES = (
    *(f"{split}.{kind}.npy" for split in presets.SPLITS for kind in ARRAYS),
    "progress.json",
    "stats.json",
    "config.yaml",
)
RAM_BUDGET = 12 * 2**30  # spectrogram caches up to this size are loaded whole on the CPU


def _write_json(path: Path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


class _Worker:
    """What each worker process holds: one engine, one spectrogram, one labeler."""

    def __init__(self, cfg: Config, notes: str):
        self.cfg, self.notes = cfg, NOTE_LAYOUTS[notes]

    def __call__(self):
        return {
            "renderer": Renderer(self.cfg.audio),
            "mel": MelSpectrogram(self.cfg.audio),
            "labeler": Labeler(),
            "notes": self.notes,
            "files": {},
        }


def _features_chunk(ctx: dict, job: tuple) -> tuple[np.ndarray, list]:
    """Render a chunk of voices and write their spectrograms into the cache file.

    Args:
        job: (spectrogram file, first row, voice parameter bytes).

    Returns:
        (n, 3) label features, and [count, sum, sum of squares, min, max] of the chunk's dB
        values (for the dataset statistics).
    """
    path, row, voices = job
    notes = ctx["notes"]
    audio = np.stack([ctx["renderer"].render_notes(Voice(p, ""), notes) for p in voices])
    with torch.no_grad():
        db = ctx["mel"](torch.from_numpy(audio))
    spec = db.to(torch.float16)
    # Workers write straight into the memory-mapped cache: sending spectrograms back to the
    # parent through a pipe cost more than computing them.
    if path not in ctx["files"]:
        ctx["files"][path] = np.load(path, mmap_mode="r+")
    target = ctx["files"][path]
    target[row : row + len(voices)] = spec.numpy()
    # no msync: the rows are in the shared page cache, which outlives an interrupted process
    label_index = notes.index(LABEL_NOTE)
    feats = np.stack([ctx["labeler"].features(a[label_index]) for a in audio])
    x = spec.to(torch.float32)
    moments = [
        x.numel(),
        float(x.sum(dtype=torch.float64)),
        float(x.square().sum(dtype=torch.float64)),
        float(x.min()),
        float(x.max()),
    ]
    return feats, moments


def build(
    db: str | os.PathLike,
    config: str,
    out: str | os.PathLike,
    notes: str = "single",
    limit: int | None = None,
    processes: int | None = None,
    progress: bool = True,
) -> dict:
    """Render every voice of ``db`` (or the first ``limit``) into a dataset folder.

    Resumable: an interrupted build continues where it stopped when called again with the
    same voices (database contents, not its path), config, notes and limit; with anything
    else it starts over (a one-line notice on stderr). Only files the build writes (FILES)
    are ever deleted. Returns the summary written to stats.json.
    """
    cfg = get_config(config)
    if notes not in NOTE_LAYOUTS:
        raise ValueError(f"unknown note layout {notes!r}; choose one of {', '.join(NOTE_LAYOUTS)}")
    limit = cfg.dataset_limit if limit is None else (limit or None)
    rows = presets.load(db, limit=limit)
    if not rows:
        raise ValueError(f"{db}: the database holds no voices")
    split_of = _splits(db)
    by_split = {s: [(i, v) for i, v in rows if split_of[i] == s] for s in presets.SPLITS}
    for split in ("train", "valid"):
        if not by_split[split]:
            raise ValueError(f"{db}: the {split} split of these {len(rows)} voices is empty; "
                             "use a larger --limit")  # fmt: skip
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    header = {
        "config": cfg.name,
        "notes": notes,
        "note_pairs": [list(n) for n in NOTE_LAYOUTS[notes]],
        "database": str(Path(db).resolve()),
        "limit": limit,
        "voices": len(rows),
        "spectrogram": list(cfg.audio.spectrogram_shape),
        "key": build_key(rows, split_of, cfg, notes, limit),
    }
    _check_or_write_header(out, cfg, header)
    done = _read_progress(out)
    n_notes = len(NOTE_LAYOUTS[notes])
    arrays, jobs = {}, []
    for split, items in by_split.items():
        start = done.get(split, 0)
        shape = (len(items), n_notes, *cfg.audio.spectrogram_shape)
        arrays[split] = (
            _open_array(out / f"{split}.spec.npy", shape, np.float16, start),
            _open_array(
                out / f"{split}.features.npy", (len(items), len(FEATURES)), np.float32, start
            ),
        )
        save_npy(out / f"{split}.ids.npy", np.array([i for i, _ in items], dtype=np.int64))
        save_npy(
            out / f"{split}.voices.npy",
            np.stack([v.values for _, v in items]) if items else np.zeros((0, 145), np.uint8),
        )
        spec_file = str(out / f"{split}.spec.npy")
        jobs += [
            (spec_file, i, [v.params for _, v in items[i : i + cfg.chunk]])
            for i in range(start, len(items), cfg.chunk)
        ]
    # One pool for every split: starting workers costs about a second each.
    results = pool_map(
        _features_chunk,
        jobs,
        _Worker(cfg, notes),
        processes,
        count=lambda job: len(job[2]),
        total=sum(len(j[2]) for j in jobs),
        progress=progress,
    )
    moments = done.setdefault("train_moments", [0, 0.0, 0.0, np.inf, -np.inf])
    for (path, row, voices), (chunk_feats, chunk_moments) in zip(jobs, results):
        split = Path(path).name.split(".")[0]
        feats = arrays[split][1]
        if split == "train":
            moments[:3] = [a + b for a, b in zip(moments[:3], chunk_moments[:3])]
            moments[3:] = [min(moments[3], chunk_moments[3]), max(moments[4], chunk_moments[4])]
        feats[row : row + len(voices)] = chunk_feats
        feats.flush()
        done[split] = row + len(voices)
        _write_json(out / "progress.json", done)
    for split, (spec, feats) in arrays.items():
        done[split] = len(spec)
        labels = labels_from_features(np.asarray(feats)) if len(spec) else np.zeros((0, 3), bool)
        save_npy(out / f"{split}.labels.npy", labels)
    _write_json(out / "progress.json", done)
    del arrays
    summary = _stats(out, moments)
    _write_json(out / "stats.json", summary)
    return summary


def _splits(db) -> dict[int, str]:
    con = presets.connect(db)
    out = dict(con.execute("SELECT id, split FROM voices"))
    con.close()
    return out


def build_key(rows, split_of: dict, cfg: Config, notes: str, limit: int | None) -> str:
    """sha256 of what a dataset's contents depend on: every voice built (id, split, parameter
    bytes, name: the database's contents, not its path or date), the config, the note layout
    and the limit. A build resumes only into a cache of the same key."""
    h = hashlib.sha256()
    settings = {"config": cfg.to_dict(), "notes": notes, "limit": limit}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for vid, voice in rows:
        h.update(f"{vid}:{split_of[vid]}:{voice.name}:".encode())
        h.update(bytes(voice.params))
    return h.hexdigest()


def _check_or_write_header(out: Path, cfg: Config, header: dict) -> None:
    """Resume when ``out`` holds a build of the same key; else start over there, deleting the
    files a build writes (FILES) and nothing else."""
    path = out / "config.yaml"
    audio = {"config": cfg.name, "audio": dataclasses.asdict(cfg.audio)}
    text = yaml.safe_dump({**audio, "dataset": header}, sort_keys=False)
    for name in FILES:  # temporaries of a killed build
        clean_stale(out, name)
    if path.exists():
        try:
            old = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            old = None
        if not (isinstance(old, dict) and isinstance(old.get("dataset"), dict)):
            raise ValueError(f"{path}: not a dataset's config.yaml; use another --out")
        if old["dataset"].get("key") == header["key"]:
            return
        print(f"companion: notice: {out} holds a dataset of other voices, config, notes or "
              "limit; starting it over", file=sys.stderr)  # fmt: skip
        for name in ("stats.json", *FILES):  # the finished mark first
            (out / name).unlink(missing_ok=True)
    else:  # a first build: the arrays are written anew; these two would be trusted as they are
        for name in ("stats.json", "progress.json"):
            (out / name).unlink(missing_ok=True)
    write_atomic(path, text)


def _read_progress(out: Path) -> dict:
    path = out / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _open_array(path: Path, shape: tuple, dtype, done: int) -> np.memmap:
    if done and path.exists():
        arr = np.load(path, mmap_mode="r+")
        if arr.shape == shape and arr.dtype == dtype:
            return arr
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _stats(out: Path, moments: list) -> dict:
    """dB statistics over the train split, and counts per split and label.

    Args:
        moments: [count, sum, sum of squares, min, max] of the train split's dB values.
    """
    n, total, total2, lo, hi = moments
    if n == 0:
        raise ValueError(f"{out}: the train split is empty; use a larger --limit")
    mean = total / n
    counts, labels = {}, {}
    for split in presets.SPLITS:
        lab = np.load(out / f"{split}.labels.npy")
        counts[split] = len(lab)
        labels[split] = {name: int(lab[:, k].sum()) for k, name in enumerate(LABELS)}
        labels[split]["none"] = int((~lab.any(axis=1)).sum())
    return {
        "mean_db": mean,
        "std_db": float(np.sqrt(max(total2 / n - mean**2, 0.0))),
        "min_db": lo,
        "max_db": hi,
        "splits": counts,
        "labels": labels,
    }


@dataclass
class DatasetInfo:
    """A finished dataset folder: where, which config and audio settings, which notes."""

    path: Path
    config: str
    audio: AudioConfig
    notes: str
    stats: dict
    header: dict


def open_dataset(path: str | os.PathLike) -> DatasetInfo:
    """A finished dataset folder's config and stats; a one-line error if it is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load((path / "config.yaml").read_text())
        stats = json.loads((path / "stats.json").read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{path}: not a finished dataset (run `companion dataset build`)"
        ) from None
    return DatasetInfo(
        path,
        data["config"],
        AudioConfig(**data["audio"]),
        data["dataset"]["notes"],
        stats,
        data["dataset"],
    )


def read_split(path: str | os.PathLike, split: str) -> dict:
    """The arrays of one split of a finished dataset folder (the one reader of the cache).

    Returns:
        {"info": DatasetInfo, "spec": (N, notes, n_mels, frames) float16 dB, memory-mapped,
        "values": (N, 145) int64, "ids": (N,) int64, "labels": (N, 3) bool}.
    """
    if split not in presets.SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(presets.SPLITS)}")
    info = open_dataset(path)
    base = info.path
    try:
        out = {
            "info": info,
            "spec": np.load(base / f"{split}.spec.npy", mmap_mode="r"),
            "values": np.load(base / f"{split}.voices.npy").astype(np.int64),
            "ids": np.load(base / f"{split}.ids.npy"),
            "labels": np.load(base / f"{split}.labels.npy"),
        }
    except FileNotFoundError as e:
        raise ValueError(f"{e.filename}: missing from the dataset {base}") from None
    except ValueError as e:
        raise ValueError(f"{base}: the {split} split is unreadable ({e})") from None
    if not len(out["spec"]) == len(out["values"]) == len(out["ids"]) == len(out["labels"]):
        raise ValueError(f"{base}: the {split} split's arrays differ in length (a mix of builds)")
    return out


class SpectrogramDataset(torch.utils.data.Dataset):
    """One split of a dataset folder, memory-mapped.

    An item is a dict:
        spec: (notes, n_mels, frames) float32, normalised (dB - mean) / std of the train split;
        values: (145,) int64 voice parameters; id: database id; labels: (3,) bool;
        params: (D,) float32 encoded preset and mask: (D,) bool loss mask, when an encoding
        is given.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", encoding: str | None = None):
        arrays = read_split(path, split)
        self.info = arrays["info"]
        self.spec, self.values = arrays["spec"], arrays["values"]
        self.ids, self.labels = arrays["ids"], arrays["labels"]
        self.mean, self.std = self.info.stats["mean_db"], self.info.stats["std_db"]
        self.rep = representation(encoding) if encoding else None
        if self.rep is not None:
            self.params = self.rep.encode(self.values)
            self.mask = self.rep.loss_mask(self.values)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        spec = (np.asarray(self.spec[i], dtype=np.float32) - self.mean) / self.std
        item = {
            "spec": torch.from_numpy(spec),
            "values": torch.from_numpy(self.values[i]),
            "id": int(self.ids[i]),
            "labels": torch.from_numpy(self.labels[i]),
        }
        if self.rep is not None:
            item["params"] = torch.from_numpy(self.params[i])
            item["mask"] = torch.from_numpy(self.mask[i])
        return item


class DeviceSplit:
    """One split on the training device, for batches by index (training and validation):
    spectrograms (float16, whole when they fit in ``ram_budget`` bytes or 60% of the GPU's
    free memory, else memory-mapped), encoded presets and loss masks.

    Args:
        path: a finished dataset folder.
        split: train, valid or test.
        encoding: numonly, numcat or numcat++.
        device: where batches are returned.
    """

    def __init__(self, path: str | os.PathLike, split: str, encoding: str,
                 device: str | torch.device = "cpu", ram_budget: int = RAM_BUDGET):  # fmt: skip
        arrays = read_split(path, split)
        self.info = arrays["info"]
        spec, self.values, self.ids = arrays["spec"], arrays["values"], arrays["ids"]
        rep = representation(encoding)
        self.device = device = torch.device(device)
        self.mean = float(self.info.stats["mean_db"])
        self.std = float(self.info.stats["std_db"])
        budget = ram_budget
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget = int(0.6 * free)
        self.whole = spec.nbytes <= budget
        self.spec = torch.from_numpy(np.array(spec)).to(device) if self.whole else spec
        self.params = torch.from_numpy(rep.encode(self.values)).to(device)
        self.mask = torch.from_numpy(rep.loss_mask(self.values)).to(device)

    def __len__(self) -> int:
        return len(self.values)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``idx`` (B,) -> (normalised spectrograms (B, notes, H, W) float32, encoded
        presets (B, D), loss masks (B, D))."""
        if self.whole:
            x = self.spec[idx.to(self.device)]
        else:
            order = np.sort(idx.numpy())  # memory-mapped reads are faster in file order
            idx = torch.from_numpy(order)
            x = torch.from_numpy(np.asarray(self.spec[order])).to(self.device)
        x = (x.float() - self.mean) / self.std
        idx = idx.to(self.device)
        return x, self.params[idx], self.mask[idx]


def load_split(path: str | os.PathLike, split: str, encoding: str,
               device: str | torch.device = "cpu") -> DeviceSplit:  # fmt: skip
    """One split of a dataset folder on ``device`` (see DeviceSplit)."""
    return DeviceSplit(path, split, encoding, device)
