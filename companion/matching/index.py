"""The retrieval index of a preset database: how every voice begins, at several keys and velocities.

A recording can be of any key and velocity, and held for any time. What it shows of a voice
for certain is the start of its note, before the key goes up: the index keeps that. Every
unique voice of a database is played with the Dexed engine at every key of GRID_KEYS (36 to
84, every 6 semitones) and velocity of GRID_VELOCITIES (50, 85, 120), key held, for the first
PREFIX_FRAMES frames of its log-mel (``companion.matching.logmel.LogMel``: 64 bands, STFT 1024
/ hop 512, 16 frames: the first 0.37 s, made level-free by dividing by the loudest frame), and
once at (note, velocity) (default 60 / 85) for 1.05 s, where its pitch is read (YIN,
companion.data.pitch.estimate_pitch): its offset, the semitones between its key and the
note it sounds.

A recording is compared with a voice where the voice sounds the recording's pitch: at key
``p - offset`` (and an octave either side: two pitch estimates can disagree by an octave), its
start warped in frequency from there to the nearest grid key (at most 3 semitones) and
compared with the voice's grid renders there, at the velocity that matches best (``near``).
Voices without a pitch (YIN finds none in 6 % of the library) are compared at every key
within two octaves of the recording's note; a recording without a pitch at every grid key.
Chosen by measurement on 199 library voices recorded at random keys, velocities, holds and
levels (the truth's rank among the 21,570 train voices): comparing whole 4 s C4 renders with
the recording warped to C4 and its held part continued to 3 s (the previous index) found the
voice in the top 64 for 28 % (a key-up read late mixes the release into the held part, and a
warp far from the key is poor); the first 0.37 s at C4 (inside the shortest hold) for 47 %,
at keys every 6 semitones for 84 %, and at three velocities too for 89 % (exhaustive distances,
no projection); with the projection, the nearest point between two grid velocities (a start
moves nearly along a line between them) and the two nearest grid keys, 96.5 % (top 16: 93.5 %,
top 1: 73 %). bench/recordings.py measures the whole retrieval against renders of every voice
exactly like the recording.

Rows are sorted by offset (voices without a pitch last), so that the voices compared at one key
are a few contiguous slices. The index keeps a PCA projection of the 1,024 numbers of a start
(COMPONENTS directions, fitted on FIT_VOICES starts drawn from every grid cell: an exact
eigendecomposition of their covariance), every start's coordinates as float16 beside the
database (``presets.sqlite`` -> ``presets.index.npz``) with the database's content hash, the
note, the velocity and the embedding's name and version. Opening an index whose database,
note, velocity or embedding changed rebuilds it (one line on stderr says so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from companion.config import AudioConfig
from companion.data import presets
from companion.data.pitch import estimate_pitch, note_hz
from companion.data.render import Play, Renderer, default_processes, pool_map
from companion.dx7.voice import Voice
from companion.io import atomic_path, clean_stale
from companion.matching.logmel import LogMel, warped

INDEX_VERSION = 3  # bump when the file layout or the embedding's computation changes
SUFFIX = ".index.npz"
GRID_KEYS = tuple(range(36, 85, 6))  # keys every voice's start is played at
GRID_VELOCITIES = (50, 85, 120)  # ... at each of these velocities
PREFIX_FRAMES = 16  # frames of a start (hop 512 at 22 050 Hz: 0.37 s, window edges included)
START = LogMel(n_samples=PREFIX_FRAMES * 512, normalise=True)  # how a start is embedded
COMPONENTS = 96  # PCA components kept (fewer starts: as many as they span)
FIT_VOICES = 16000  # starts the PCA is fitted on (a random draw, seeded)
PITCH_S = (0.05, 1.05)  # s of a voice's render at (note, velocity) its pitch is read from
NO_PITCH = 10_000  # the offset group of voices with no pitch (sorted last)
MAX_OFFSET = 60  # semitones: a farther pitch estimate (a misreading) counts as no pitch
UNPITCHED_RANGE = 24  # a voice with no pitch is compared at every key this near the pitch's
# core-seconds of one voice's renders and embeddings (measured: the build time announced)
BUILD_S_PER_VOICE = 0.0155  # 26,880 voices in 210 s on 2 cores


def start_power(audio: np.ndarray) -> np.ndarray:
    """(..., T) audio from its key-on -> (..., bins, PREFIX_FRAMES) power spectrogram of its
    start."""
    return START.power(audio)[..., :PREFIX_FRAMES]


def embed_start(power: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """(bins, PREFIX_FRAMES) power (``start_power``) -> (PREFIX_FRAMES * 64,) float32
    level-free log-mel, its frequencies first multiplied by ``factor`` (``warped``)."""
    return START.from_power(warped(power, factor))


def fit_pca(features: np.ndarray, k: int = COMPONENTS, fit: int = FIT_VOICES,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The mean and the first principal directions of a set of embeddings: the exact
    eigendecomposition of the covariance of up to ``fit`` of them drawn at random (a start
    has 1,024 numbers; the covariance is small).

    Args:
        features: (N, D) float16 or float32.

    Returns:
        mean (D,) float32 and components (K, D) float32 (orthonormal rows, largest variance
        first), K <= k and at most the rank of the features drawn.
    """
    n = len(features)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, fit, replace=False)) if n > fit else np.arange(n)
    x = features[rows].astype(np.float64)
    mean = x.mean(0)
    x -= mean
    vals, vecs = np.linalg.eigh(x.T @ x)
    order = np.argsort(vals)[::-1]
    keep = order[vals[order] > max(vals.max(), 0.0) * 1e-9][:k]
    return mean.astype(np.float32), np.ascontiguousarray(vecs[:, keep].T).astype(np.float32)


def database_hash(db: str | os.PathLike) -> str:
    """sha1 of the voices table's content (id, split, 145 parameters of every row), so that a
    database rebuilt with the same voices keeps its index and any other change invalidates it."""
    con = presets.connect(db)
    h = hashlib.sha1()
    for vid, split, params in con.execute("SELECT id, split, params FROM voices ORDER BY id"):
        h.update(f"{vid}:{split}:".encode())
        h.update(params)
    con.close()
    return h.hexdigest()


def cache_dir() -> Path:
    """The user's cache folder for companion (platformdirs; on Linux $XDG_CACHE_HOME/companion,
    default ~/.cache/companion)."""
    import platformdirs

    return platformdirs.user_cache_path("companion")


def index_path(db: str | os.PathLike) -> Path:
    """Where a database's index lives: beside it, or in the cache folder if that folder is
    read-only (a shared library)."""
    db = Path(db)
    if os.access(db.parent, os.W_OK):
        return db.with_name(db.stem + SUFFIX)
    key = hashlib.sha1(str(db.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "index" / f"{db.stem}-{key}{SUFFIX}"


def _signature(files: list[Path], root: Path) -> str:
    """A cheap fingerprint of a cartridge folder: every file's path, size and mtime."""
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def library_database(folder: str | os.PathLike, progress: bool = False) -> Path:
    """The preset database of a folder of .syx cartridges, built once in the cache folder
    (``cache_dir()/libraries/<key>/presets.sqlite``) and rebuilt when a file is added, removed
    or changed (by path, size and mtime)."""
    root = Path(folder)
    files = presets.find_cartridges(root)
    if not files:
        raise ValueError(f"{root}: no .syx files found")
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    db = cache_dir() / "libraries" / key / "presets.sqlite"
    sig_file = db.with_name("cartridges.sha1")
    sig = _signature(files, root)
    if not (db.is_file() and sig_file.is_file() and sig_file.read_text().strip() == sig):
        print(f"companion: reading the cartridges of {root} into {db}", file=sys.stderr)
        try:
            presets.build(root, db, progress=progress)
        except ValueError as e:  # about our cache database; the user knows the folder
            raise ValueError(f"{root}: {str(e).removeprefix(f'{db}: ')}") from None
        from companion.io import write_atomic

        write_atomic(sig_file, sig + "\n")
    if presets.info(db)["unique_voices"] == 0:  # errors name the user's folder, not our cache
        raise ValueError(f"{root}: no readable DX7 voice in its {len(files)} .syx files")
    return db


class _Worker:
    """Picklable ``setup`` for ``pool_map``: one engine in each worker, and the play its
    pitch is read at."""

    def __init__(self, cfg: AudioConfig, note: int, velocity: int):
        self.cfg, self.note, self.velocity = cfg, note, velocity

    def __call__(self) -> tuple:
        return Renderer(self.cfg), self.note, self.velocity


def _embed_chunk(ctx: tuple, voices: list[Voice]) -> tuple[np.ndarray, np.ndarray]:
    renderer, note, velocity = ctx
    sr = renderer.cfg.sample_rate
    out = np.empty((len(voices), len(GRID_KEYS), len(GRID_VELOCITIES), START.n_mels
                    * PREFIX_FRAMES), np.float16)  # fmt: skip
    pitch = np.empty(len(voices), np.float32)
    start = Play(note, velocity, 3.0, 0, START.n_samples, sr)
    cells = [(a, b, key, vel) for a, key in enumerate(GRID_KEYS)
             for b, vel in enumerate(GRID_VELOCITIES)]  # fmt: skip
    for i, v in enumerate(voices):
        renderer.engine.load_sysex(v.engine_bytes())
        held = renderer.play_loaded(Play(note, velocity, 3.0, 0, round(PITCH_S[1] * sr), sr))
        pitch[i] = estimate_pitch(held, sr, start=round(PITCH_S[0] * sr), end=len(held))
        audio = np.stack([renderer.play_loaded(dataclasses.replace(start, note=key, velocity=vel))
                          for _, _, key, vel in cells])  # fmt: skip
        power = start_power(audio)  # one STFT for every cell: a call's overhead is its cost
        for (a, b, _, _), p in zip(cells, power):
            out[i, a, b] = embed_start(p)
    return out, pitch


def embed_voices(voices: list[Voice], note: int = 60, velocity: int = 85,
                 processes: int | None = None, progress: bool = False,
                 chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every voice's starts and pitch, over a worker pool.

    Returns:
        (len(voices), len(GRID_KEYS), len(GRID_VELOCITIES), 1024) float16 starts and
        (len(voices),) float32 pitches at (note, velocity), Hz (NaN: no stable pitch).
    """
    jobs = [voices[i : i + chunk] for i in range(0, len(voices), chunk)]
    parts = list(pool_map(_embed_chunk, jobs, _Worker(AudioConfig(), note, velocity),
                          processes, total=len(voices), desc="index",
                          progress=progress))  # fmt: skip
    if not parts:
        shape = (0, len(GRID_KEYS), len(GRID_VELOCITIES), START.n_mels * PREFIX_FRAMES)
        return np.zeros(shape, np.float16), np.zeros(0, np.float32)
    return np.concatenate([f for f, _ in parts]), np.concatenate([p for _, p in parts])


@dataclass(frozen=True)
class Hit:
    """A library voice retrieved for a recording.

    Attributes:
        id: its database id. distance: RMS difference of the level-free log10 mel values of
            the starts (within the projection). key: the key at which it plays the recording's
            pitch. velocity: the grid velocity whose start matched best.
    """

    id: int
    distance: float
    key: int
    velocity: int


class Index:
    """Every voice of a database as the PCA coordinates of its starts at the grid's keys and
    velocities, and its pitch, for nearest-neighbour queries by a recording.

    Attributes:
        db: the database. path: the index file. note, velocity: where the pitch was read.
        ids: (N,) int64 database ids. splits: (N,) str. meta: what the file records.
        mean: (D,) float32 and components: (K, D) float32, the projection.
        coords: (N, len(GRID_KEYS), len(GRID_VELOCITIES), K) float32 (float16 on disk).
        pitch: (N,) float32, every voice's pitch at (note, velocity), Hz (NaN: none).
        offsets: (N,) float32, semitones from ``note`` to that pitch (NaN: none).
    """

    def __init__(self, db: Path, path: Path, data: dict):
        self.db, self.path = Path(db), Path(path)
        self.meta = json.loads(str(data["meta"]))
        self.note, self.velocity = self.meta["note"], self.meta["velocity"]
        self.ids = data["ids"].astype(np.int64)
        self.splits = np.asarray(presets.SPLITS)[data["splits"]]
        self.mean = data["mean"].astype(np.float32)
        # float16 on disk (half the bytes), float32 in memory: numpy's float16 products do not
        # use BLAS and are ~50x slower.
        self.components = data["components"].astype(np.float32)
        self.coords = data["coords"].astype(np.float32)
        self.sq_norms = np.einsum("...k,...k->...", self.coords, self.coords)
        # squared distances between a start's neighbouring grid velocities: (N, keys, vels - 1)
        step = np.diff(self.coords, axis=2)
        self._gaps = np.einsum("...k,...k->...", step, step)
        del step
        self._split_masks = {s: self.splits == s for s in presets.SPLITS}
        self.pitch = data["pitch"].astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.offsets = (12 * np.log2(self.pitch / note_hz(self.note))).astype(np.float32)
        group = offset_groups(self.offsets)
        # the rows of each offset (rows are sorted by it at build time): first and end row
        self._slices: dict[int, tuple[int, int]] = {}
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            self._slices[int(g)] = (int(rows[0]), int(rows[-1]) + 1)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Index({self.db}, {len(self)} voices, pitch at note {self.note}, velocity "
                f"{self.velocity}, {self.meta['embedding']})")  # fmt: skip

    @classmethod
    def open(cls, db, note: int = 60, velocity: int = 85, build: bool = True,
             progress: bool = False, processes: int | None = None,
             rebuild: bool = False) -> Index:  # fmt: skip
        """The index of a database (or of a folder of .syx cartridges), built or rebuilt when
        missing or stale if ``build`` (always if ``rebuild``).

        Raises:
            ValueError: the database is missing or not ours; or the index is missing or stale
                and ``build`` is False.
        """
        if not 0 <= note <= 127 or not 1 <= velocity <= 127:
            raise ValueError(f"note must be 0..127 and velocity 1..127, got {note} and {velocity}")
        db = Path(db)
        if db.is_dir():
            db = library_database(db, progress)
        path = index_path(db)
        wanted = {
            "version": INDEX_VERSION,
            "db_hash": database_hash(db),
            "note": int(note),
            "velocity": int(velocity),
            "embedding": START.name,
            "embedding_params": {**dataclasses.asdict(START), "frames": PREFIX_FRAMES,
                                 "keys": list(GRID_KEYS),
                                 "velocities": list(GRID_VELOCITIES)},  # fmt: skip
        }
        reason = "missing"
        if rebuild:
            reason = "asked to rebuild"
        elif path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    data = {k: f[k] for k in f.files}
                meta = json.loads(str(data["meta"]))
                changed = [k for k, v in wanted.items() if meta.get(k) != v]
                if not changed:
                    return cls(db, path, data)
                reason = "stale: " + ", ".join(
                    "database changed"
                    if k == "db_hash"
                    else "embedding changed"
                    if k == "embedding_params"
                    else f"{k} {meta.get(k)} -> {wanted[k]}"
                    for k in changed
                )
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
                    zlib.error) as e:  # a foreign, truncated or damaged file: built again
                reason = f"unreadable, damaged or truncated ({type(e).__name__})"
        if not build:
            raise ValueError(
                f"{path}: retrieval index {reason} (build it with `companion index build "
                f"--db {db}`)"
            )
        con = presets.connect(db)
        n = con.execute("SELECT COUNT(*) FROM voices").fetchone()[0]
        con.close()
        cores = processes or default_processes()
        guess = n * BUILD_S_PER_VOICE / cores + 5.0  # renders over the cores, then the PCA
        when = f"{guess:.0f} s" if guess < 90 else f"{round(guess / 60)} min"
        print(f"companion: building the retrieval index of {db} ({reason}) -> {path}: "
              f"{n} voices, about {when} on {cores} cores, once",
              file=sys.stderr, flush=True)  # fmt: skip
        t0 = time.perf_counter()
        data = build_index(db, path, wanted, progress, processes)
        print(f"companion: index built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return cls(db, path, data)

    def _allowed(self, split: str | None, exclude_ids) -> np.ndarray:
        if split is not None and split not in presets.SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(presets.SPLITS)}")
        allowed = np.ones(len(self), bool) if split is None else self._split_masks[split].copy()
        if len(exclude_ids):
            allowed &= ~np.isin(self.ids, np.asarray(list(exclude_ids), np.int64))
        return allowed

    def keys_for(self, pitches: list[float], note: int) -> dict[int, list[tuple[int, int]]]:
        """Where each voice is compared with a recording: {key: [(first row, end row)]}.

        Args:
            pitches: the recording's pitch estimates, Hz (NaN or none: no pitch).
            note: the recording's key when it has no pitch.
        """
        keys: dict[int, list[tuple[int, int]]] = {}
        notes = [int(np.floor(69 + 12 * np.log2(f / 440.0) + 0.5)) for f in pitches
                 if np.isfinite(f) and f > 0]  # fmt: skip
        if not notes:  # no pitch: every voice at every grid key, unwarped
            return {k: [(0, len(self))] for k in GRID_KEYS}
        for p0 in dict.fromkeys(notes):
            for g, rows in self._slices.items():
                shifts = (range(-UNPITCHED_RANGE, UNPITCHED_RANGE + 1) if g == NO_PITCH
                          else (-12, 0, 12))  # fmt: skip
                base = p0 if g == NO_PITCH else p0 - g
                for j in shifts:
                    if 0 <= base + j <= 127 and rows not in keys.get(base + j, []):
                        keys.setdefault(base + j, []).append(rows)
        return keys

    def near(self, audio: np.ndarray, play: Play, pitches: list[float], k: int = 64,
             split: str | None = None, exclude_ids=()) -> list[Hit]:  # fmt: skip
        """The k voices whose starts are nearest to a recording's, each at the key where it
        sounds the recording's pitch (see the module docstring), best first.

        Args:
            audio: (T,) float32 at 22 050 Hz, the recording; play: how it was played (its
                key-on ``offset`` is read, and its ``note`` where it has no pitch).
            pitches: its pitch estimates, Hz (several: the keys of each are tried).
            split: only voices of this split (evaluation on the test split passes "train").
            exclude_ids: database ids never returned.

        Returns:
            [Hit], nearest first, each voice once (at its best key and velocity).
        """
        return self.nearest(self.distances(audio, play, pitches), k, split, exclude_ids)

    def distances(self, audio: np.ndarray, play: Play, pitches: list[float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Every voice's squared distance to a recording's start (``near``'s), at its best
        key and velocity.

        Returns:
            (N,) float64 squared distances (inf: a voice no key can play the pitch at), (N,)
            int64 keys and (N,) float64 velocities (in grid steps: 0.5 is halfway between
            the first two of GRID_VELOCITIES), rows in the index's order.
        """
        power = start_power(np.asarray(audio, np.float32)[play.offset :])
        keys = self.keys_for(pitches, play.note)
        grid = np.asarray(GRID_KEYS)
        # each key's two nearest grid keys (one where it is on the grid): the recording at key
        # w sounds like a voice at grid key g with its frequencies times 2^((w - g) / 12)
        pairs = [(w, c) for w in keys for c in np.argsort(np.abs(grid - w), kind="stable")[
            : 1 if w in GRID_KEYS or not grid[0] < w < grid[-1] else 2]]  # fmt: skip
        starts = np.stack([embed_start(power, 2.0 ** ((grid[c] - w) / 12)) for w, c in pairs])
        queries = (starts - self.mean) @ self.components.T  # (pairs, K)
        best = np.full(len(self), np.inf)
        key = np.zeros(len(self), np.int64)
        vel = np.zeros(len(self), np.float64)
        for q, (w, cell) in zip(queries, pairs):
            qq = float(q @ q)
            for a, b in keys[w]:
                c = self.coords[a:b, cell]  # (rows, velocities, K)
                d2 = np.maximum(self.sq_norms[a:b, cell] - 2.0 * (c @ q) + qq, 0.0)
                d, v = _nearest_on_segments(d2, self._gaps[a:b, cell])
                better = d < best[a:b]
                best[a:b] = np.where(better, d, best[a:b])
                key[a:b] = np.where(better, w, key[a:b])
                vel[a:b] = np.where(better, v, vel[a:b])
        return best, key, vel

    def nearest(self, found: tuple[np.ndarray, np.ndarray, np.ndarray], k: int,
                split: str | None = None, exclude_ids=()) -> list[Hit]:  # fmt: skip
        """The k nearest voices by ``distances``' output, best first, ties by id."""
        allowed = self._allowed(split, exclude_ids)
        best, key, vel = found
        best = np.where(allowed, best, np.inf)
        n = min(int(k), int(np.isfinite(best).sum()))
        if n <= 0:
            return []
        top = np.argpartition(best, n - 1)[:n] if n < len(best) else np.arange(len(best))
        top = top[np.lexsort((self.ids[top], best[top]))]
        dim = self.mean.shape[0]
        velocity = np.interp(vel, np.arange(len(GRID_VELOCITIES)), GRID_VELOCITIES)
        return [Hit(int(self.ids[r]), float(np.sqrt(max(best[r], 0.0) / dim)), int(key[r]),
                    int(round(velocity[r]))) for r in top]  # fmt: skip

    def query(self, audio: np.ndarray, k: int = 16, split: str | None = None,
              exclude_ids=()) -> list[Hit]:  # fmt: skip
        """``near`` for a sound played as the library's pitch was read (key ``note``, velocity
        ``velocity``, from sample 0): a voice's render, its pitch read as the voices' were."""
        sr = START.sample_rate
        pitch = estimate_pitch(audio, sr, start=round(PITCH_S[0] * sr), end=round(PITCH_S[1] * sr))
        play = Play(self.note, self.velocity, 3.0, 0, max(len(audio), 1), sr)
        return self.near(audio, play, [pitch] if np.isfinite(pitch) else [], k, split,
                         exclude_ids)  # fmt: skip

    def voices(self, ids) -> list[Voice]:
        """The voices of these database ids, in that order."""
        return [v for _, v in presets.load(self.db, ids=list(ids))]


def _nearest_on_segments(d2: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest point to a query on the line through each voice's starts at successive
    grid velocities (a start's log-mel moves nearly along a line between two velocities:
    measured on 300 voices at random velocities 50-120, the nearest of 3 grid velocities was
    0.163 RMS log10 units from the start at the true one, the nearest point between them
    0.090, nearer than the nearest of 5 grid velocities, 0.107-0.121).

    Args:
        d2: (rows, V) squared distances from the query to the starts at the V velocities.
        gaps: (rows, V - 1) squared distances between successive ones.

    Returns:
        (rows,) the smallest squared distance and (rows,) where it lies, in grid steps
        (0: the first velocity, 0.5: halfway to the second, ...).
    """
    a, b = d2[:, :-1], d2[:, 1:]
    g = np.maximum(gaps, 1e-12)
    # law of cosines: the query's projection on segment [a, b], as a fraction of its length
    t = np.clip((a - b + g) / (2.0 * g), 0.0, 1.0)
    seg = np.maximum(a - 2.0 * t * (a - b + g) / 2.0 + t * t * g, 0.0)
    j = np.argmin(seg, axis=1)
    rows = np.arange(len(seg))
    return seg[rows, j], j + t[rows, j]


def offset_groups(offsets: np.ndarray) -> np.ndarray:
    """(N,) offsets in semitones (NaN: none) -> (N,) int64 rounded offsets, NO_PITCH for
    none (or one beyond MAX_OFFSET: a misreading)."""
    with np.errstate(invalid="ignore"):
        g = np.floor(offsets + 0.5)
    ok = np.isfinite(g) & (np.abs(g) <= MAX_OFFSET)
    return np.where(ok, np.nan_to_num(g), NO_PITCH).astype(np.int64)


def build_index(db: Path, path: Path, meta: dict, progress: bool = False,
                processes: int | None = None) -> dict:  # fmt: skip
    """Render and embed every voice of ``db``, write the index to ``path`` atomically.

    Returns:
        The arrays written, rows sorted by pitch offset then id: mean (D,) float32,
        components (K, D) float16, coords (N, keys, velocities, K) float16, ids (N,) int64,
        splits (N,) uint8 (index into presets.SPLITS), pitch (N,) float32 (Hz, NaN: none),
        meta (JSON).
    """
    con = presets.connect(db)
    rows = con.execute("SELECT id, split FROM voices ORDER BY id").fetchall()
    con.close()
    voices = [v for _, v in presets.load(db)]
    if not voices:
        raise ValueError(f"{db}: no voices to index")
    start = time.perf_counter()
    starts, pitch = embed_voices(voices, meta["note"], meta["velocity"],
                                 processes or default_processes(), progress)  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        offsets = 12 * np.log2(pitch / note_hz(meta["note"]))
    order = np.lexsort((np.arange(len(rows)), offset_groups(offsets)))
    flat = starts.reshape(-1, starts.shape[-1])
    mean, comps = fit_pca(flat)
    comps = comps.astype(np.float16).astype(np.float32)  # as stored: queries project with these
    coords = np.concatenate([(starts[order[i : i + 1024]].astype(np.float32) - mean) @ comps.T
                             for i in range(0, len(starts), 1024)])  # fmt: skip
    del starts, flat
    meta = {**meta, "voices": len(voices), "build_s": round(time.perf_counter() - start, 2),
            "dim": int(mean.shape[0]), "components": len(comps)}  # fmt: skip
    data = {
        "mean": mean,
        "components": comps.astype(np.float16),
        "coords": coords.astype(np.float16),
        "ids": np.array([rows[i][0] for i in order], np.int64),
        "splits": np.array([presets.SPLITS.index(rows[i][1]) for i in order], np.uint8),
        "pitch": pitch[order].astype(np.float32),
        "meta": np.array(json.dumps(meta)),
    }
    clean_stale(path.parent, path.name)
    with atomic_path(path) as tmp:
        np.savez(tmp, **data)
    return data
