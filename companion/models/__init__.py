"""The paper's networks: spectrogram encoder and decoder, RealNVP flows, preset regression."""

import os
from pathlib import Path


def default_model_dir() -> Path:
    """The shipped model: $COMPANION_MODEL if set, else companion/models/default, which is part
    of the installed package (a wheel carries it). Here, not in vae.py, so that the command line
    can name it without importing torch."""
    env = os.environ.get("COMPANION_MODEL")
    return Path(env) if env else Path(__file__).resolve().parent / "default"
