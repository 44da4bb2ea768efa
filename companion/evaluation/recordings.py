"""Recordings made the way a user has them: a DX7 voice played at some key, velocity and hold,
after some silence, at some level, as a 44.1 kHz stereo file (bench/recordings.py, tests).

What is drawn (``draw``), as issue 17's bench specifies: key 36-84, velocity 50-120, key held
0.4-2.5 s, 0-300 ms of leading silence, 1.5 s after key-up, peak at -12 to -1 dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from companion.data.render import Play, Renderer
from companion.dx7.voice import Voice

RATE = 44100  # Hz, the file's
TAIL_S = 1.5  # s recorded after key-up
RANGES = {"note": (36, 84), "velocity": (50, 120), "hold_s": (0.4, 2.5), "onset_s": (0.0, 0.3),
          "peak_db": (-12.0, -1.0)}  # fmt: skip


@dataclass(frozen=True)
class Recording:
    """How one recording was made (the truth its estimates are checked against)."""

    note: int
    velocity: int
    hold_s: float
    onset_s: float
    peak_db: float

    def play(self, sample_rate: int = 22050) -> Play:
        """How to play a voice exactly as this recording (at ``sample_rate``)."""
        offset = round(self.onset_s * sample_rate)
        length = offset + round((self.hold_s + TAIL_S) * sample_rate)
        return Play(self.note, self.velocity, self.hold_s, offset, length, sample_rate)


def draw(rng: np.random.Generator) -> Recording:
    """A recording's conditions, uniformly within RANGES."""
    r = RANGES
    return Recording(note=int(rng.integers(r["note"][0], r["note"][1] + 1)),
                     velocity=int(rng.integers(r["velocity"][0], r["velocity"][1] + 1)),
                     hold_s=float(rng.uniform(*r["hold_s"])),
                     onset_s=float(rng.uniform(*r["onset_s"])),
                     peak_db=float(rng.uniform(*r["peak_db"])))  # fmt: skip


def record(renderer: Renderer, voice: Voice, rec: Recording) -> np.ndarray:
    """The voice played as ``rec``: (T, 2) float32 at RATE, its peak at rec.peak_db (a silent
    voice stays silent). The engine plays at the renderer's rate, resampled (librosa, soxr) to 44.1
    kHz, as a user's recording of Dexed at 22 050 Hz would be."""
    audio = renderer.play(voice, rec.play(renderer.cfg.sample_rate))
    audio = librosa.resample(audio, orig_sr=renderer.cfg.sample_rate, target_sr=RATE)
    audio = audio.astype(np.float32)
    peak = float(np.abs(audio).max())
    if peak > 0:
        audio *= 10 ** (rec.peak_db / 20) / peak
    return np.stack([audio, audio], axis=1)


def as_recorded(audio: np.ndarray, sample_rate: int = 22050) -> np.ndarray:
    """A render as it comes back from being recorded like ``record`` and read again
    (companion.data.audio.read_mono): to RATE and back (librosa, soxr), whose filters remove
    what lies near the render's Nyquist frequency. An answer is compared with a recording
    this way (like with like): otherwise 13.5 % of test voices differ from their own
    recording by SC > 0.05."""
    up = librosa.resample(np.asarray(audio, np.float32), orig_sr=sample_rate, target_sr=RATE)
    down = librosa.resample(up, orig_sr=RATE, target_sr=sample_rate)
    out = np.zeros(len(audio), np.float32)
    out[: min(len(audio), len(down))] = down[: len(audio)]
    return out


def level_matched(answer: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``answer`` scaled to ``reference``'s RMS (a silent answer stays silent)."""
    a, r = (float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) for x in (answer, reference))
    return answer if a < 1e-9 else answer * np.float32(r / a)


__all__ = ["RANGES", "RATE", "TAIL_S", "Recording", "as_recorded", "draw", "level_matched",
           "record"]
