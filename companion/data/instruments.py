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
# the wider set of bench/far_sounds.py (beside SOURCES, which the notebooks and the site show):
# more soundfont instruments, more of Faust's physical models (those that sound with a MIDI
# note alone; pm.brass_ui_MIDI needs a breath controller and stays silent), and three more
# synth patches written here (two-operator FM at a ratio no DX7 coarse/fine step holds,
# detuned saws with a slow attack, a square pluck)
GM_MORE = {"harpsichord": 6, "vibraphone": 11, "accordion": 21, "bass": 33, "cello": 42,
           "harp": 46, "strings": 48, "brass": 61, "sax": 65, "oboe": 68}  # fmt: skip
FAUST_MORE = {
    "faust-flute": "pm.flute_ui_MIDI",
    "faust-guitar": "pm.guitar_ui_MIDI",
    "faust-marimba": "pm.marimba_ui_MIDI",
    "faust-djembe": "pm.djembe_ui_MIDI",
    "faust-fm": (
        "os.osc(freq + freq * 1.414 * 2.5 * en.adsr(0.001, 1.2, 0.3, 0.3, gate) "
        "* os.osc(freq * 1.414)) * en.adsr(0.002, 1.5, 0.4, 0.4, gate) * gain"
    ),
    "faust-pad": (
        "(os.sawtooth(freq * 0.995) + os.sawtooth(freq * 1.005) + os.sawtooth(freq * 2.01) * 0.5)"
        " * en.adsr(0.6, 0.5, 0.8, 0.8, gate) * gain * 0.3 : fi.lowpass(2, 2500)"
    ),
    "faust-pluck": (
        "os.square(freq) * en.ar(0.001, 0.6, gate) * gain "
        ": fi.resonlp(200 + 4000 * en.ar(0.001, 0.25, gate), 2, 1)"
    ),
}
WIDE_SOURCES = [*SOURCES, *(f"gm-{k}" for k in GM_MORE), *FAUST_MORE]


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
    """One of WIDE_SOURCES ("gm-piano", "faust-clarinet", ...) as (cfg.n_samples,) float32."""
    gm, faust = GM_PROGRAMS | GM_MORE, FAUST_PROGRAMS | FAUST_MORE
    if name.startswith("gm-") and name[3:] in gm:
        return render_soundfont(gm[name[3:]], note, velocity, cfg)
    if name in faust:
        return render_faust(faust[name], note, velocity, cfg)
    raise SourceError(f"unknown source {name!r}; choose among {', '.join(WIDE_SOURCES)}")


def write_sources(names, out_dir: str | Path, note: int = 60, velocity: int = 85,
                  cfg: AudioConfig = AudioConfig()) -> list[Path]:  # fmt: skip
    """DIR/<name>.wav for each source (16-bit, each written atomically)."""
    out = Path(out_dir)
    paths = []
    for name in names:
        audio = render_source(name, note, velocity, cfg)
        paths.append(write_audio(out / f"{name}.wav", audio, cfg.sample_rate, subtype="PCM_16"))
    return paths
