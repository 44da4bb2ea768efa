"""Sounds that are not DX7 voices, to program the DX7 from: other instruments and synthesizers.

Two real sources, both installed by the project's setup (Makefile `setup-ood`, .ci/run):
- sampled acoustic instruments: the General MIDI soundfont FluidR3_GM (Debian's
  fluid-soundfont-gm) played by FluidSynth (Debian's libfluidsynth through pyfluidsynth);
- other synthesizers: Faust programs compiled and played by DawDreamer's Faust processor:
  two of Faust's physical models (clarinet, violin) and two synth patches written here
  (subtractive: a saw through a resonant low-pass with a filter envelope; additive: decaying
  inharmonic partials, a bell).

Every sound is rendered as the dataset's notes are: MIDI note 60, velocity 85, the key held 3 s,
4 s long, mono at 22 050 Hz, then scaled to a peak of PEAK.
"""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np

from companion.config import AudioConfig
from companion.io import write_audio

PEAK = 0.9  # every sound is scaled to this peak, as a normalised recording would be
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
# General MIDI programs (0-based) of the soundfont instruments
GM_PROGRAMS = {"piano": 0, "marimba": 12, "organ": 19, "guitar": 24, "violin": 40,
               "choir": 52, "trumpet": 56, "flute": 73}  # fmt: skip
FAUST_RATE = 44100  # the physical models are tuned by delay lengths: render at 44.1 kHz
FAUST_PROGRAMS = {
    "faust-clarinet": "pm.clarinet_ui_MIDI",
    "faust-violin": "pm.violin_ui_MIDI",
    "faust-subtractive": (
        "os.sawtooth(freq) * en.adsr(0.01, 0.3, 0.6, 0.4, gate) * gain "
        ": fi.resonlp(300 + 3000 * en.adsr(0.005, 0.6, 0.2, 0.4, gate), 4, 1)"
    ),
    "faust-additive": (
        "sum(k, 8, os.osc(freq * (k + 1) * (1 + 0.003 * k * k)) / (k + 1) "
        "* en.ar(0.002, 2.5 / (1 + 0.5 * k), gate)) * gain * 0.5"
    ),
}
FAUST_HEADER = """import("stdfaust.lib");
declare options "[midi:on][nvoices:1]";
freq = hslider("freq", 440, 20, 8000, 0.01);
gain = hslider("gain", 0.5, 0, 1, 0.01);
gate = button("gate");
effect = _;
"""  # effect: DawDreamer's polyphonic factory looks one up and prints an ERROR line without it
SOURCES = [*(f"gm-{k}" for k in GM_PROGRAMS), *FAUST_PROGRAMS]


class SourceError(ValueError):
    """A source cannot be played here (its package is missing or it is unknown)."""


def soundfont_path() -> Path:
    """The General MIDI soundfont: $COMPANION_SOUNDFONT, else Debian's fluid-soundfont-gm."""
    for path in filter(None, (os.environ.get("COMPANION_SOUNDFONT"), *SOUNDFONTS)):
        if Path(path).is_file():
            return Path(path)
    raise SourceError("no General MIDI soundfont: install Debian's fluid-soundfont-gm "
                      "(make setup-ood) or set COMPANION_SOUNDFONT to a .sf2 file")  # fmt: skip


def _finish(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    audio = audio[: cfg.n_samples]
    audio = np.pad(audio, (0, cfg.n_samples - len(audio))).astype(np.float32)
    peak = np.abs(audio).max()
    return audio * (PEAK / peak) if peak > 0 else audio


def render_soundfont(program: int, note: int = 60, velocity: int = 85,
                     cfg: AudioConfig = AudioConfig()) -> np.ndarray:  # fmt: skip
    """(cfg.n_samples,) float32: a General MIDI program of the soundfont, dry (no reverb or
    chorus), key held cfg.note_s."""
    try:
        import fluidsynth
    except (ImportError, OSError) as e:  # OSError: pyfluidsynth without libfluidsynth
        raise SourceError(f"FluidSynth is not available ({e}); run make setup-ood") from None
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(cfg.sample_rate),
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})  # fmt: skip
    try:
        sfid = synth.sfload(str(soundfont_path()))
        synth.program_select(0, sfid, 0, program)
        synth.noteon(0, note, velocity)
        held = synth.get_samples(round(cfg.note_s * cfg.sample_rate))
        synth.noteoff(0, note)
        rest = synth.get_samples(cfg.n_samples - round(cfg.note_s * cfg.sample_rate))
    finally:
        synth.delete()
    stereo = np.concatenate([held, rest]).reshape(-1, 2).astype(np.float32) / 32768.0
    return _finish(stereo.mean(axis=1), cfg)


def render_faust(code: str, note: int = 60, velocity: int = 85,
                 cfg: AudioConfig = AudioConfig()) -> np.ndarray:  # fmt: skip
    """(cfg.n_samples,) float32: a Faust expression using freq / gain / gate (or one of Faust's
    *_ui_MIDI instruments), played by DawDreamer at FAUST_RATE and resampled."""
    try:
        import dawdreamer as daw
    except ImportError as e:
        raise SourceError(f"DawDreamer is not available ({e}); run make setup-ood") from None
    engine = daw.RenderEngine(FAUST_RATE, 256)
    faust = engine.make_faust_processor("instrument")
    faust.num_voices = 1
    if not faust.set_dsp_string(f"{FAUST_HEADER}process = {code};"):
        raise SourceError(f"Faust could not compile: {code}")
    faust.add_midi_note(note, velocity, 0.0, cfg.note_s)
    engine.load_graph([(faust, [])])
    engine.render(cfg.render_s)
    audio = engine.get_audio()[0]
    return _finish(librosa.resample(audio, orig_sr=FAUST_RATE, target_sr=cfg.sample_rate), cfg)


def render_source(name: str, note: int = 60, velocity: int = 85,
                  cfg: AudioConfig = AudioConfig()) -> np.ndarray:  # fmt: skip
    """One of SOURCES ("gm-piano", "faust-clarinet", ...) as (cfg.n_samples,) float32."""
    if name.startswith("gm-") and name[3:] in GM_PROGRAMS:
        return render_soundfont(GM_PROGRAMS[name[3:]], note, velocity, cfg)
    if name in FAUST_PROGRAMS:
        return render_faust(FAUST_PROGRAMS[name], note, velocity, cfg)
    raise SourceError(f"unknown source {name!r}; choose among {', '.join(SOURCES)}")


def write_sources(names, out_dir: str | Path, note: int = 60, velocity: int = 85,
                  cfg: AudioConfig = AudioConfig()) -> list[Path]:  # fmt: skip
    """DIR/<name>.wav for each source (16-bit, each written atomically)."""
    out = Path(out_dir)
    paths = []
    for name in names:
        audio = render_source(name, note, velocity, cfg)
        paths.append(write_audio(out / f"{name}.wav", audio, cfg.sample_rate, subtype="PCM_16"))
    return paths
