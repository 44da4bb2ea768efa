"""Typed configurations by name: ``smoke`` (tests), ``small`` (CPU), ``paper`` (GPU, the paper's).

Every run and dataset writes its full configuration as YAML beside its outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import yaml

# The paper's (MIDI note, velocity) pairs.
SINGLE_NOTE = ((60, 85),)
SIX_NOTES = ((40, 85), (50, 85), (60, 42), (60, 85), (60, 127), (70, 85))
NOTE_LAYOUTS = {"single": SINGLE_NOTE, "six": SIX_NOTES}


@dataclass(frozen=True)
class AudioConfig:
    """How a voice is played and heard.

    Attributes:
        sample_rate: Hz.
        note_s: how long the key is held, s.
        render_s: total length, release included, s.
        n_fft, hop: STFT window (Hann) and hop, samples.
        n_mels: mel bands (0 Hz to sample_rate / 2).
        floor_db: spectrogram floor, dB (magnitudes, 20 log10).
    """

    sample_rate: int = 22050
    note_s: float = 3.0
    render_s: float = 4.0
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 257
    floor_db: float = -120.0

    @property
    def n_samples(self) -> int:
        return round(self.sample_rate * self.render_s)

    @property
    def n_frames(self) -> int:
        """Spectrogram frames (centred STFT)."""
        return self.n_samples // self.hop + 1

    @property
    def spectrogram_shape(self) -> tuple[int, int]:
        """(mel bands, frames) of one note's spectrogram."""
        return (self.n_mels, self.n_frames)


@dataclass(frozen=True)
class ModelConfig:
    """The network, as in the paper for ``paper``.

    Attributes:
        channels: output channels of the encoder's stride-2 convolutions (the first 5x5, the
            others 4x4); the decoder mirrors them with transposed convolutions.
        last_channels: the 1x1 convolution that ends the CNN (and mixes notes).
        flow_layers, flow_hidden: RealNVP coupling layers and hidden units (both flows).
        mlp_layers, mlp_hidden: the MLP regression baseline.
    """

    channels: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
    last_channels: int = 1024
    flow_layers: int = 6
    flow_hidden: int = 300
    mlp_layers: int = 3
    mlp_hidden: int = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, as in the paper for ``paper``.

    Attributes:
        batch_size: samples per step (split over processes under torchrun).
        lr, lr_warmup_epochs: Adam learning rate, reached linearly from lr / 10.
        weight_decay: Adam's L2 penalty.
        epochs: training epochs.
        beta, beta_start, beta_warmup_epochs: KL weight, raised linearly from beta_start.
        plateau_factor, plateau_patience: ReduceLROnPlateau on the validation loss.
        params_weight, ce_weight: weight of the preset loss, and of cross-entropy within it
            (MSE on numbers has weight 1).
        seed: everything random (initialisation, shuffling, sampling) follows it.
    """

    batch_size: int = 160
    lr: float = 2e-4
    lr_warmup_epochs: int = 6
    weight_decay: float = 1e-4
    epochs: int = 400
    beta: float = 0.2
    beta_start: float = 0.1
    beta_warmup_epochs: int = 25
    plateau_factor: float = 0.2
    plateau_patience: int = 10
    params_weight: float = 1.0
    ce_weight: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """A named configuration.

    Attributes:
        name: smoke, small or paper.
        audio: rendering and spectrogram settings.
        model, train: the network and its optimisation.
        dataset_limit: voices per dataset build when no --limit is given (None: all).
        chunk: voices rendered per work unit (also the resume granularity).
    """

    name: str
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset_limit: int | None = None
    chunk: int = 32

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump({"config": self.to_dict()}, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        data = dict(data.get("config", data))
        model = dict(data.get("model", {}))
        if "channels" in model:
            model["channels"] = tuple(model["channels"])
        data["audio"] = AudioConfig(**data.get("audio", {}))
        data["model"] = ModelConfig(**model)
        data["train"] = TrainConfig(**data.get("train", {}))
        return cls(**data)

    def replace(self, **changes) -> Config:
        """A copy with some fields changed, e.g. ``cfg.replace(train={"epochs": 3})``."""
        for part in ("audio", "model", "train"):
            if isinstance(changes.get(part), dict):
                changes[part] = dataclasses.replace(getattr(self, part), **changes[part])
        return dataclasses.replace(self, **changes)


CONFIGS = {
    # As in the paper: 257 mel bands x 345 frames (hop 256), 8-layer CNN up to 1024 channels.
    "paper": Config("paper"),
    # For CPU training in about an hour on 2 cores: 128 bands x 173 frames (hop 512, a quarter
    # of the pixels), one stride-2 layer less (8..256 channels, 1x1 to 512), the paper's flows.
    "small": Config(
        "small",
        AudioConfig(hop=512, n_mels=128),
        ModelConfig(channels=(8, 16, 32, 64, 128, 256), last_channels=512),
        TrainConfig(
            batch_size=64,
            lr=5e-4,
            lr_warmup_epochs=2,
            epochs=30,
            beta_warmup_epochs=8,
            plateau_patience=3,
        ),
    ),
    # For tests and CI: 32 bands x 87 frames, 64 voices unless told otherwise, a tiny network.
    "smoke": Config(
        "smoke",
        AudioConfig(hop=1024, n_mels=32),
        ModelConfig(
            channels=(4, 8, 16, 32), last_channels=64, flow_layers=2, flow_hidden=32, mlp_hidden=64
        ),
        TrainConfig(
            batch_size=16,
            lr=1e-3,
            lr_warmup_epochs=1,
            epochs=2,
            beta_warmup_epochs=1,
            plateau_patience=1,
        ),
        dataset_limit=64,
        chunk=16,
    ),
}


def get_config(name: str) -> Config:
    """The configuration of that name; a clear error listing the names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}") from None
