"""Saving and loading model weights: safetensors shards under 16 MiB, an index naming them, and
model.yaml (what ``load_model`` needs to rebuild the network).

A model folder::

    model.index.json                      {"shards": [...], "sha256": {...}, "split": {...}}
    model-001-of-003-<sha12>.safetensors  the state dict, cut into shards
    model.yaml                            config, encoding, notes, regression, normalisation

The index is the commit point: shards are written first under names that carry a digest of
their bytes, so saving over an older model never changes a file the older index names; the
new index then replaces the old one in one rename, and only then do shards no index names go.
An interruption at any moment leaves the old model or the new one, never a mix. model.yaml
names the digest of the index it belongs to, so a model.yaml and weights of two different
saves are refused instead of loaded together.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from companion.io import write_atomic
from companion.models import INDEX, index_digest

SHARD_BYTES = 15 * 2**20  # every weights file stays under 16 MiB (GitHub's soft limit)
META = "model.yaml"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pieces(state: dict[str, torch.Tensor]) -> tuple[list, dict]:
    """[(key, tensor)] with tensors larger than a shard cut along their first dimension into
    parts named ``<key>::<i>``, and {key: number of parts}."""
    pieces, split = [], {}
    for key, tensor in state.items():
        tensor = tensor.detach().contiguous().cpu()
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > SHARD_BYTES and tensor.dim() > 0:
            parts = torch.tensor_split(tensor, math.ceil(nbytes / SHARD_BYTES), dim=0)
            split[key] = len(parts)
            pieces += [(f"{key}::{i}", p.contiguous()) for i, p in enumerate(parts)]
        else:
            pieces.append((key, tensor))
    return pieces, split


def save_weights(model: nn.Module | dict, folder: str | os.PathLike) -> list[Path]:
    """A model's state dict (or a state dict) as safetensors shards under 16 MiB each plus
    model.index.json naming them, replacing any weights already in ``folder`` atomically.

    Returns:
        The shard paths, in index order.
    """
    folder = Path(folder)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    pieces, split = _pieces(state)
    shards, current, size = [], {}, 0
    for key, tensor in pieces:
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[key], size = tensor, size + nbytes
    shards.append(current)
    try:
        kept = set(read_index(folder)["shards"])  # what the current index names stays
    except ValueError:
        kept = set()
    names, digests = [], {}
    try:
        for i, shard in enumerate(shards):
            data = save_tensors(shard)
            digest = _sha256(data)
            name = f"model-{i + 1:03d}-of-{len(shards):03d}-{digest[:12]}.safetensors"
            write_atomic(folder / name, data)
            names.append(name)
            digests[name] = digest
        index = {"shards": names, "sha256": digests, "split": split}
        write_atomic(folder / INDEX, json.dumps(index, indent=1) + "\n")
    except BaseException:  # the old index still rules: the new shards written so far go
        for name in names:
            if name not in kept:
                (folder / name).unlink(missing_ok=True)
        raise
    for old in folder.glob("model-*.safetensors"):  # only now: the old index named these
        if old.name not in names:
            old.unlink(missing_ok=True)
    return [folder / n for n in names]


def read_index(folder: str | os.PathLike) -> dict:
    """model.index.json of a model folder, checked: a one-line ValueError naming the file when
    it is missing, not JSON, or does not list shards."""
    path = Path(folder) / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (no model weights in {folder})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid weights index ({e})") from None
    shards = index.get("shards") if isinstance(index, dict) else None
    if not shards or not all(isinstance(s, str) and "/" not in s for s in shards):
        raise ValueError(f"{path}: not a valid weights index (no list of shard files)")
    return index


def shard_files(folder: str | os.PathLike) -> list[Path]:
    """The index and the shards it names (what a copy of the weights must carry)."""
    folder = Path(folder)
    return [folder / INDEX, *(folder / s for s in read_index(folder)["shards"])]


def load_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict written by ``save_weights``; a one-line ValueError naming the file when
    the index is bad or a shard is missing, truncated or corrupt."""
    folder = Path(folder)
    index = read_index(folder)
    digests = index.get("sha256", {})  # absent in indexes written before digests were kept
    state = {}
    for name in index["shards"]:
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ValueError(f"{path}: missing (named by {INDEX})") from None
        if name in digests and _sha256(data) != digests[name]:
            raise ValueError(f"{path}: truncated or corrupt ({len(data)} bytes; its checksum "
                             f"differs from {INDEX})")  # fmt: skip
        try:
            state.update(load_tensors(data))
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: truncated or corrupt ({len(data)} bytes: {e})") from None
    for key, n in index.get("split", {}).items():
        try:
            state[key] = torch.cat([state.pop(f"{key}::{i}") for i in range(n)], dim=0)
        except KeyError as e:
            msg = f"{folder / INDEX}: names part {e} of {key}, which no shard holds"
            raise ValueError(msg) from None
    return state


def save_model(model, folder: str | os.PathLike, stats: dict, extra: dict) -> None:
    """Weights and model.yaml: everything ``load_model`` needs (config, encoding, notes,
    regression, the dataset's normalisation) plus ``extra`` (training facts).

    Args:
        model: a SpectralVAE (its cfg, encoding, notes and regression_kind are recorded).
        stats: the dataset's statistics (mean_db and std_db are kept, in dB).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder)
    meta = {"config": model.cfg.to_dict(), "encoding": model.encoding, "notes": model.notes,
            "regression": model.regression_kind, "stats": {k: stats[k] for k in
            ("mean_db", "std_db")}, **extra, "weights": index_digest(folder)}  # fmt: skip
    write_atomic(folder / META, yaml.safe_dump(meta, sort_keys=False))


def read_meta(folder: str | os.PathLike) -> dict:
    """model.yaml of a model folder, checked against the weights beside it; a one-line
    ValueError when it is missing, unreadable or from another save than the weights."""
    folder = Path(folder)
    path = folder / META
    try:
        meta = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a model folder ({META} missing)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    needed = ("config", "encoding", "notes", "regression", "stats")
    if not isinstance(meta, dict) or any(k not in meta for k in needed):
        raise ValueError(f"{path}: not a model description (needs {', '.join(needed)})")
    read_index(folder)  # a bad index is named as such, before any comparison with it
    if "weights" in meta and meta["weights"] != index_digest(folder):
        raise ValueError(f"{path}: belongs to other weights than {folder / INDEX} (an "
                         "interrupted save?); save or ship the model again")  # fmt: skip
    return meta
