"""The paper's networks: spectrogram encoder and decoder, RealNVP flows, preset regression."""

import hashlib
import os
from pathlib import Path

INDEX = "model.index.json"  # the weights' index: every shard and its sha256 (models.weights)


def default_model_dir() -> Path:
    """The shipped model: $COMPANION_MODEL if set, else companion/models/default, which is part
    of the installed package (a wheel carries it). Here, not in vae.py, so that the command line
    can name it without importing torch."""
    env = os.environ.get("COMPANION_MODEL")
    return Path(env) if env else Path(__file__).resolve().parent / "default"


def index_digest(folder: str | os.PathLike) -> str:
    """sha256 of model.index.json's bytes: which save of the weights a model.yaml belongs to
    (here, not in weights.py, so that the generated library is found without importing torch).

    Raises:
        ValueError: the folder holds no weights index.
    """
    path = Path(folder) / INDEX
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (no model weights in {folder})") from None
