"""Typed configurations by name: ``smoke`` (tests), ``small`` (CPU), ``paper`` (GPU, PAPER.md).

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
class Config:
    """A named configuration.

    Attributes:
        name: smoke, small or paper.
        audio: rendering and spectrogram settings.
        dataset_limit: voices per dataset build when no --limit is given (None: all).
        chunk: voices rendered per work unit (also the resume granularity).
    """

    name: str
    audio: AudioConfig = field(default_factory=AudioConfig)
    dataset_limit: int | None = None
    chunk: int = 32
    notes: str = "single"

    def to_yaml(self) -> str:
        return yaml.safe_dump({"config": dataclasses.asdict(self)}, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        data = dict(data.get("config", data))
        data["audio"] = AudioConfig(**data.get("audio", {}))
        return cls(**data)


CONFIGS = {
    # As PAPER.md: 257 mel bands x 345 frames (hop 256).
    "paper": Config("paper"),
    # For CPU training: 128 bands x 173 frames (hop 512), a quarter of the pixels, so that a
    # model trains in about an hour on 2 cores; the rendering is unchanged.
    "small": Config("small", AudioConfig(hop=512, n_mels=128)),
    # For tests and CI: 32 bands x 87 frames, 64 voices unless told otherwise.
    "smoke": Config("smoke", AudioConfig(hop=1024, n_mels=32), dataset_limit=64, chunk=16),
}


def get_config(name: str) -> Config:
    """The configuration of that name; a clear error listing the names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}") from None
