"""A recording read as a note: where it starts, how long the key was held, which key, how loud.

A musician's recording is not the project's ideal input (C4, key held 3 s from sample 0 in
4 s, at Dexed's level). ``read_take`` loads the whole file and estimates what ``program`` needs
to play its candidates the same way:

- **onset**: the first moment the sound rises 10 dB above the recording's noise floor (its
  quietest 5 % of 3 ms frames; digital silence counts as -120 dBFS), refined to the sample;
  a candidate's key goes down at the same time (PRE_S of what comes before is kept, since a
  slow attack rises out of the noise after its key-on: program.py tries earlier key-ons);
- **end of the first note**: where it falls 60 dB below its peak or to the noise floor, or
  just before a second attack (a steep rise after a dip of 0.1 s or more), capped at MAX_S
  (the output line says so when the recording goes on);
- **key-up** (how long the key was held): a sudden fall for good (a fast release), else
  the start of the note's last straight decay in dB (a DX7 envelope's release is a straight
  line in dB over time) when that decay is steeper than RELEASE_DB_S; a note that never
  decays so was held to its end (program.py then tries other key-ups with the engine);
- **key**: the equal-tempered note nearest to its heard pitch (companion.data.pitch.
  heard_pitch: pYIN over the first second of the held part, at least PITCH_MIN_S of it), 60
  with no pitch: the key a musician presses to play it. Which key a DX7 played the sound
  at cannot be known from it (a voice's transpose and ratios trade against the key exactly:
  of test voices played at random keys about half sound an octave below their key), and
  does not matter: program.py finds its candidates at whatever key they match and moves
  the difference into the voice's transpose, so that the voice plays the recording at this
  key. ``note`` given means "it was played at that key": the voice then plays it there;
- **level**: its RMS in dBFS, reported; the loss compares shapes at equal RMS
  (companion.matching.loss), so a recording's gain does not matter and the voice keeps a
  normal DX7 loudness.

Every estimate is overridden by the caller's value when given (``note``, ``velocity``,
``hold_s``, ``onset_s``: a voice whose envelope waits before it sounds is otherwise read as a
note that starts late). Shapes: audio (T,) float32 mono at the project's 22 050 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from companion.config import AudioConfig
from companion.data.audio import SILENCE, AudioError, read_mono
from companion.data.pitch import estimate_pitch, heard_pitch, note_name, note_of
from companion.data.render import Play

PRE_S = 0.1  # s of the recording kept before its onset (a slow attack starts before it)
PITCH_MIN_S = 0.5  # s: the pitch is read over the held part, at least this long (a key-up
# read too early, as on a pitched drum, would leave it a frame of the attack)
MAX_S = 8.0  # s: a longer note is matched on its first MAX_S
MIN_S = 0.001  # s: less sound than this (22 samples) is not a note
AFTER_S = 0.5  # s kept after the end of the note (where the recording has them)
READ_S = 60.0  # s of a file read (its onset must be in them)
FLOOR_DB = -120.0  # dBFS: digital silence counts as this
ONSET_ABOVE_DB = 10.0  # the onset: this far above the noise floor
END_BELOW_DB = 60.0  # the note has ended this far below its peak
RETRIGGER_DB = 15.0  # a second note: a rise this steep within 60 ms ...
RETRIGGER_DIP_DB = 20.0  # ... after the sound fell this far below its peak ...
DIP_S = 0.1  # ... for at least this long ...
RISE_S = 0.06  # (the rise's time)
SECOND_S = 0.3  # ... this long after the onset: a second note
DROP_DB = 20.0  # a fall this steep within 12 ms, for good, is a fast release's key-up
RELEASE_DB_S = 12.0  # a last decay steeper than this (dB per s) is the release
FIT_DB = 1.5  # RMS residual (dB) up to which a decay counts as straight
_ONSET_HOP = 64  # samples (2.9 ms): the onset's resolution
_ENV_HOP = 256  # samples (11.6 ms): the envelope's


@dataclass(frozen=True)
class Take:
    """One recording read as a note.

    Attributes:
        path: the file.
        audio: (T,) float32, from PRE_S before the onset to the end of the first note (at
            most MAX_S), the recording's own level.
        play: how a candidate is played to be compared with ``audio`` (key, velocity, hold,
            key-on offset in samples, length in samples).
        onset_s: the note's start (key-on) in the file, s. pitch_hz: its heard pitch (pYIN
            where the key was read, YIN where it was given; NaN: none).
        level_db: RMS of ``audio`` in dBFS. file_s: the file's length, s.
        cut: the recording goes on after what is matched (a longer note or more notes).
        estimated: which of note, velocity, hold and onset were estimated (the others were
            given).
        level_known: the audio is at the voice's own level (a render as the project makes
            it), so candidates are compared at theirs; a recording's level is arbitrary.
        pitches: every estimate of its pitch, Hz (pYIN's where the key was read, then YIN's,
            which the retrieval index reads its voices' pitches with): voices are compared
            with it at the keys of each.
        start: the sample of the file where ``audio`` begins.
    """

    path: Path
    audio: np.ndarray = field(repr=False)
    play: Play
    onset_s: float
    pitch_hz: float
    level_db: float
    file_s: float
    cut: bool
    estimated: tuple[str, ...] = ()
    level_known: bool = False
    pitches: tuple[float, ...] = ()
    start: int = 0

    @property
    def key_on_s(self) -> float:
        """The key-on the take is played with, s from the file's start (the onset found, or
        as moved by the engine's fit, or as given)."""
        return (self.start + self.play.offset) / self.play.sample_rate

    def describe(self) -> str:
        """How the voice plays the recording, for the output line: ``plays at key 57 (A3,
        220 Hz), velocity 100 (estimated), key-on 0.21 s (estimated), key held 1.20 s
        (estimated), level -14 dBFS, 2.6 s matched``."""
        p = self.play
        est = lambda what: " (estimated)" if what in self.estimated else ""  # noqa: E731
        hz = f"{self.pitch_hz:.0f} Hz" if np.isfinite(self.pitch_hz) else "no pitch"
        key = (f"plays at key {p.note} ({note_name(p.note)}, {hz})" if "note" in self.estimated
               else f"plays at key {p.note} ({note_name(p.note)}, as given; sounds {hz})")
        matched = p.length / p.sample_rate
        tail = (f"first {matched:.1f} s of {self.file_s:.1f} s matched" if self.cut
                else f"{matched:.1f} s matched")  # fmt: skip
        return (f"{key}, velocity {p.velocity}{est('velocity')}, key-on {self.key_on_s:.3f} s"
                f"{est('onset')}, key held {p.hold_s:.2f} s{est('hold')}, level "
                f"{self.level_db:.0f} dBFS, {tail}")  # fmt: skip


def frames_db(audio: np.ndarray, hop: int, frame: int) -> np.ndarray:
    """(T,) -> (ceil(T / hop),) frame energy in dBFS (mean square, floored at FLOOR_DB); frame
    i covers samples [i * hop, i * hop + frame)."""
    n = -(-len(audio) // hop)
    padded = np.zeros(n * hop + frame, np.float64)
    padded[: len(audio)] = audio
    csum = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(n) * hop
    ms = (csum[starts + frame] - csum[starts]) / frame
    return np.maximum(10 * np.log10(np.maximum(ms, 1e-30)), FLOOR_DB)


def onset_envelope(audio: np.ndarray) -> np.ndarray:
    """(T,) -> the 3 ms frame energies (dBFS) the noise floor and the onset are read from."""
    return frames_db(audio, _ONSET_HOP, 2 * _ONSET_HOP)


def noise_floor_db(env: np.ndarray) -> float:
    """The recording's noise floor, dBFS, from its ``onset_envelope``: the quietest 5 % of
    its frames, at most 40 dB below the loudest (a recording that sounds throughout has no
    floor of its own)."""
    return float(min(np.percentile(env, 5), env.max() - 40.0))


def find_onset(audio: np.ndarray, env: np.ndarray | None = None) -> int:
    """The sample where the sound first rises ONSET_ABOVE_DB above the noise floor (and
    within 80 dB of its peak); ``env``: its ``onset_envelope`` if already computed."""
    env = onset_envelope(audio) if env is None else env
    noise = noise_floor_db(env)
    level = max(noise + ONSET_ABOVE_DB, env.max() - 80.0)
    first = int(np.argmax(env >= level))
    # to the sample: the first one in that frame loud enough to belong to it
    lo = first * _ONSET_HOP
    seg = np.abs(audio[lo : lo + 2 * _ONSET_HOP])
    amp = 10 ** (level / 20)
    loud = np.flatnonzero(seg >= amp)
    return lo + int(loud[0]) if len(loud) else lo


def find_end(env: np.ndarray, noise_db: float, hop_s: float) -> tuple[int, bool]:
    """The first note's end, in envelope frames from its onset (frame 0): where it falls
    END_BELOW_DB below its peak (or to 6 dB above the noise floor) for good, or before a
    second attack: a rise of RETRIGGER_DB within RISE_S, to within RETRIGGER_DIP_DB / 2 of
    the peak so far, after at least DIP_S spent RETRIGGER_DIP_DB below it, SECOND_S or more
    after the onset (an LFO's tremolo dips for less, and its bursts in a release stay low).

    Returns:
        (end frame, whether a second attack cut it).
    """
    peak = env.max()
    quiet = max(peak - END_BELOW_DB, noise_db + 6.0)
    rise, dip_need = max(1, round(RISE_S / hop_s)), max(1, round(DIP_S / hop_s))
    top = np.maximum.accumulate(env)
    low = env <= top - RETRIGGER_DIP_DB
    dip_run = 0
    for t in range(1, len(env)):
        if t * hop_s >= SECOND_S and dip_run >= dip_need:
            lo = env[max(0, t - rise) : t].min()
            if env[t] - lo >= RETRIGGER_DB and env[t] >= top[t] - RETRIGGER_DIP_DB / 2:
                return max(1, t - rise), True
        dip_run = dip_run + 1 if low[t] else 0
    loud = np.flatnonzero(env > quiet)
    return (int(loud[-1]) + 1 if len(loud) else len(env)), False


def find_drop(audio: np.ndarray, end: int) -> int | None:
    """The sample where a sudden fall begins after which the sound stays lower: DROP_DB
    within 12 ms from within 30 dB of the peak, never coming back within 10 dB of where it
    fell from before ``end`` (a fast release, to silence or to a lower level); None without
    one."""
    env = frames_db(audio[:end], _ONSET_HOP, 2 * _ONSET_HOP)
    lag = 4  # frames: 12 ms
    if len(env) <= lag + 1:
        return None
    fall = env[:-lag] - env[lag:]
    after = np.maximum.accumulate(env[::-1])[::-1]  # the loudest from each frame on
    top = int(np.argmax(env))
    loud = env[:-lag] >= env[top] - 30.0  # a release's start, not its tail
    for t in np.flatnonzero((fall >= DROP_DB) & loud)[::1]:
        if t < top:
            continue
        if t + lag < len(env) and after[t + lag] <= env[t] - 10.0:
            return int(t + 1) * _ONSET_HOP
    return None


def find_key_up(env: np.ndarray, start: int, end: int, hop_s: float) -> int:
    """The key-up frame: the start of the last straight decay (in dB) steeper than
    RELEASE_DB_S before ``end``; ``end`` when the note does not decay so (held to its end).

    Args:
        env: (frames,) dB envelope; start, end: the note's first and last frames.
    """
    top = start + int(np.argmax(env[start:end]))
    n_tail = end - top
    if n_tail < 6:
        return end
    # the fit's residual from each candidate key-up to the end (earliest straight one wins)
    for k in range(top, end - 5):
        y = env[k:end]
        t = np.arange(k, end) * hop_s
        slope, icept = np.polyfit(t, y, 1)
        resid = float(np.sqrt(np.mean((y - (slope * t + icept)) ** 2)))
        if resid <= FIT_DB and slope <= -RELEASE_DB_S:
            break
    else:
        return end
    # the tolerance lets that line start a little before the knee: the key-up is where it
    # meets the line of the frames before it (a held level, or a slower decay)
    before = np.arange(max(top, k - 12), max(top, k - 2))
    if len(before) < 3:
        return k
    s0, i0 = np.polyfit(before * hop_s, env[before], 1)
    if s0 - slope < 1.0:  # no knee to find
        return k
    knee = (i0 - icept) / (slope - s0) / hop_s
    return int(np.clip(np.round(knee), k - 12, min(end, k + 6)))


def read_take(path: str | Path, cfg: AudioConfig = AudioConfig(), note: int | None = None,
              velocity: int | None = None, hold_s: float | None = None,
              audio: np.ndarray | None = None, level_known: bool = False,
              onset_s: float | None = None) -> Take:  # fmt: skip
    """Read a recording as a note (see the module docstring).

    Args:
        path: an audio file (any format soundfile reads); names the take.
        note, velocity, hold_s, onset_s: given values (None: estimated; velocity then 85,
            since a recording's level does not tell it: program.py chooses it with the
            engine). onset_s: the key-on, s from the file's start.
        audio: the recording already loaded, (T,) float32 mono at cfg.sample_rate (then
            ``path`` only names it).
        level_known: see Take.

    Raises:
        AudioError: unreadable, silent, too short to be a note, or an onset beyond its end.
    """
    path = Path(path)
    sr = cfg.sample_rate
    if audio is None:
        audio, file_s = read_mono(path, cfg.sample_rate, READ_S)
    else:
        audio = np.asarray(audio, np.float32)
        file_s = len(audio) / sr
    if np.abs(audio).max() < SILENCE:
        raise AudioError(f"{path}: audio is silent (peak below {SILENCE:g})")
    onset_env = onset_envelope(audio)
    noise = noise_floor_db(onset_env)
    if onset_s is None:
        onset = find_onset(audio, onset_env)
    else:
        onset = round(onset_s * sr)
        if not 0 <= onset < len(audio) or np.abs(audio[onset:]).max() < SILENCE:
            raise AudioError(f"{path}: no sound after the onset given ({onset_s:g} s; the "
                             f"file is {file_s:.2f} s long)")  # fmt: skip
    begin = max(0, onset - round(PRE_S * sr))
    # the envelope from the onset on: the end of the first note, then its key-up
    note_audio = audio[onset:]
    env = frames_db(note_audio, _ENV_HOP, 2 * _ENV_HOP)
    end, retrigger = find_end(env, noise, _ENV_HOP / sr)
    end_sample = min(len(note_audio), end * _ENV_HOP + _ENV_HOP)
    amp = 10 ** (max(env.max() - END_BELOW_DB, noise + 6.0) / 20)
    loud = np.flatnonzero(np.abs(note_audio[:end_sample]) >= amp)
    sound = int(loud[-1]) + 1 if len(loud) else 0
    if sound < round(MIN_S * sr):
        raise AudioError(f"{path}: too short to be a note ({sound / sr * 1000:.1f} ms of "
                         "sound)")  # fmt: skip
    cap = round(MAX_S * sr) - (onset - begin)
    cut = retrigger or end_sample > cap
    if not retrigger:  # some of what follows: a candidate that rings on is seen to
        end_sample = min(len(note_audio), end_sample + round(AFTER_S * sr))
    end_sample = min(end_sample, cap)
    estimated = []
    if hold_s is None:
        drop = find_drop(note_audio, end_sample)
        if drop is None:
            key_up = find_key_up(env, 0, max(1, min(end, -(-end_sample // _ENV_HOP))),
                                 _ENV_HOP / sr)  # fmt: skip
            drop = key_up * _ENV_HOP
        hold_s = max(0.05, drop / sr)
        estimated.append("hold")
    segment = audio[begin : onset + end_sample].astype(np.float32)
    held_end = onset + round(min(max(hold_s, PITCH_MIN_S), end_sample / sr) * sr)
    # YIN reads pitches as the retrieval index reads its voices'; where the key is not given,
    # pYIN names the note (it chooses the octave far more steadily, and costs 0.2 s)
    yin = estimate_pitch(audio, sr, start=onset + round(0.05 * sr), end=held_end)
    pitch = yin
    if note is None:
        # where YIN finds no steady pitch, pYIN's must be steady (noise is not a note)
        pitch = heard_pitch(audio, sr, onset + round(0.05 * sr), held_end,
                            steady=not np.isfinite(yin))  # fmt: skip
        note = note_of(pitch)
        estimated.append("note")
    if velocity is None:
        velocity = 85
        estimated.append("velocity")
    if onset_s is None:
        estimated.append("onset")
    rms = float(np.sqrt(np.mean(np.square(segment, dtype=np.float64))))
    play = Play(note=int(note), velocity=int(velocity), hold_s=float(hold_s),
                offset=onset - begin, length=len(segment), sample_rate=sr)  # fmt: skip
    return Take(path=path, audio=segment, play=play, onset_s=onset / sr, pitch_hz=pitch,
                level_db=20 * np.log10(max(rms, 1e-12)), file_s=file_s, cut=cut,
                estimated=tuple(estimated), level_known=level_known,
                pitches=tuple(dict.fromkeys(p for p in (pitch, yin) if np.isfinite(p))),
                start=begin)  # fmt: skip


__all__ = ["MAX_S", "PRE_S", "Take", "find_end", "find_key_up", "find_onset", "read_take"]
