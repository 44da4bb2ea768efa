"""The retrieval index of a preset database: one render per voice, a compact audio embedding.

Every unique voice of a database is played once with the Dexed engine at one (note, velocity)
(default 60 / 85, 4 s as the project renders) over a worker pool on every core; each render
becomes a small log-mel embedding, stored as float16 beside the database
(``presets.sqlite`` -> ``presets.index.npz``) with the database's content hash, the note, the
velocity and the embedding's name and version. Opening an index whose database, note, velocity
or embedding changed rebuilds it (one line on stderr says so). A query is one matrix-vector
product against the embeddings held in memory as float32.

The embedding, chosen by measurement (``bench/index_embedding.py``, figures/table_index.md:
2,000 train-split voices as the library, 200 test-split voices as queries, all at 60 / 85;
"best" = the library voice with the lowest spectral convergence + log-STFT MAE, the paper's
metrics on STFT 1024 / 256): mel magnitudes (STFT 2048 / 1024, 64 bands) averaged over 16
equal time segments, then in dB floored at -80 dB: 1,024 numbers (2 kB) per voice, Euclidean
distance. Its top 1 holds the best library voice for 24 % of the queries and its top 16 for
66.5 % (the best of its top 16 has SC 0.652; the best in the library 0.585). Within the 64 MB
budget for ~27k voices (<= ~2.4 kB per voice) the variants were within noise of it: averaging
dB instead of magnitudes 27.5 % / 67 %, a -120 dB floor 22.5 % / 67.5 %, 64 x 8 25.5 % /
64.5 %, hop 512 25 % / 66.5 %; it is kept because pooling magnitudes before the filterbank
is the cheapest to compute (the build stays <= 1.3x the bare engine). Fewer bands lost hits
(32 x 16: 59.5 % in the top 16); 128 bands gained some (128 x 16: 26 % / 72 %) for twice the
bytes, over the budget as float16. MFCC mean / std were clearly worse (20 % / 46 %) and the
model's latent no better (mu 26 % / 63.5 %, zK 27.5 % / 64.5 %, and an encoder pass per
query, 17-24 ms). The full spectrogram the model sees, by L1 (the retrieval baseline of
figures/table_main.md), did best (32 % / 77.5 %) at 44 kB per voice and 0.6 s per query over
2,000 voices.

``bench/index_build.py`` on the whole library (26,894 voices, 2 processes on this shared
2-core machine): the build took 1.20x the bare engine on the same voices (14.8 vs 12.3 ms per
voice), the index file 52.8 MB, one query (embed 4 s of audio, rank every voice) 17.6 ms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from companion.config import AudioConfig
from companion.data import presets
from companion.data.render import Renderer, default_processes, pool_map
from companion.dx7.voice import Voice
from companion.io import atomic_path, clean_stale

INDEX_VERSION = 1  # bump when the file layout or the embedding's computation changes
SUFFIX = ".index.npz"


@dataclass(frozen=True)
class LogMel:
    """A compact log-mel embedding of one render.

    |STFT| (Hann, centred) -> mel filterbank (librosa, Slaney) -> mean over ``frames`` equal
    time segments -> 20 log10, floored at ``floor_db`` -> flattened band-major.

    Attributes:
        n_mels: mel bands (0 Hz to half the sample rate).
        frames: time segments the whole render is averaged into.
        n_fft, hop: STFT window and hop, samples at ``sample_rate``.
        floor_db: magnitudes below this (dB) count as this.
        pool: "mag" averages magnitudes then takes dB; "db" averages dB values.
    """

    n_mels: int = 64
    frames: int = 16
    n_fft: int = 2048
    hop: int = 1024
    floor_db: float = -80.0
    pool: str = "mag"
    sample_rate: int = 22050

    @property
    def name(self) -> str:
        """e.g. ``logmel64x16``, with every field that differs from the defaults appended."""
        rest = [f"{f.name}{getattr(self, f.name)}" for f in dataclasses.fields(self)
                if f.name not in ("n_mels", "frames")
                and getattr(self, f.name) != f.default]  # fmt: skip
        return "-".join([f"logmel{self.n_mels}x{self.frames}", *rest])

    @property
    def dim(self) -> int:
        return self.n_mels * self.frames

    def magnitude(self, audio: np.ndarray) -> np.ndarray:
        """(T,) float32 -> (n_fft // 2 + 1, frames) |STFT|."""
        # torch's CPU STFT is 5x faster than librosa's here; its complex abs is not
        # vectorised, numpy's is (see companion/data/audio.py).
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), self.n_fft,
                          self.hop, window=_hann(self.n_fft), center=True, pad_mode="constant",
                          return_complex=True)  # fmt: skip
        return np.abs(spec.numpy())

    def from_magnitude(self, mag: np.ndarray) -> np.ndarray:
        """(n_fft // 2 + 1, frames) |STFT| -> (dim,) float32 embedding."""
        filters = _filters(self.sample_rate, self.n_fft, self.n_mels)
        pool = _pooling(mag.shape[1], self.frames)
        floor = 10.0 ** (self.floor_db / 20.0)
        if self.pool == "mag":
            # the mel filterbank and the time average are both linear: averaging first makes
            # the filterbank product 10x smaller, with the same result
            out = 20.0 * np.log10(np.maximum(filters @ (mag @ pool), floor))
        else:
            out = (20.0 * np.log10(np.maximum(filters @ mag, floor))) @ pool
        return out.astype(np.float32).ravel()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(T,) or (B, T) float32 audio at ``sample_rate`` -> (dim,) or (B, dim) float32."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim == 2:
            return np.stack([self(a) for a in audio]) if len(audio) else np.zeros(
                (0, self.dim), np.float32)  # fmt: skip
        return self.from_magnitude(self.magnitude(audio))


_CACHE: dict = {}


def _hann(n: int) -> torch.Tensor:
    return _CACHE.setdefault(("hann", n), torch.hann_window(n))


def _pooling(n: int, frames: int) -> np.ndarray:
    """(n, frames) matrix averaging n STFT frames into ``frames`` equal segments (a BLAS
    product: 10x faster than np.add.reduceat along the frame axis)."""
    key = ("pool", n, frames)
    if key not in _CACHE:
        edges = np.linspace(0, n, frames + 1).round().astype(int)
        pool = np.zeros((n, frames), np.float32)
        for j in range(frames):
            pool[edges[j] : edges[j + 1], j] = 1.0 / (edges[j + 1] - edges[j])
        _CACHE[key] = pool
    return _CACHE[key]


def _filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    key = ("mel", sr, n_fft, n_mels)
    if key not in _CACHE:
        _CACHE[key] = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    return _CACHE[key]


EMBEDDING = LogMel()  # the measured choice (see the module docstring)


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
    """$XDG_CACHE_HOME/companion (default ~/.cache/companion)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "companion"


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
    if db.is_file() and sig_file.is_file() and sig_file.read_text().strip() == sig:
        return db
    print(f"companion: reading the cartridges of {root} into {db}", file=sys.stderr)
    presets.build(root, db, progress=progress)
    from companion.io import write_atomic

    write_atomic(sig_file, sig + "\n")
    return db


class _Worker:
    """Picklable ``setup`` for ``pool_map``: one engine and the embedding in each worker."""

    def __init__(self, cfg: AudioConfig, embedding: LogMel, note: int, velocity: int):
        self.cfg, self.embedding, self.note, self.velocity = cfg, embedding, note, velocity

    def __call__(self) -> tuple:
        return Renderer(self.cfg), self.embedding, self.note, self.velocity


def _embed_chunk(ctx: tuple, voices: list[Voice]) -> np.ndarray:
    renderer, embedding, note, velocity = ctx
    out = np.empty((len(voices), embedding.dim), np.float32)
    for i, v in enumerate(voices):
        out[i] = embedding(renderer.render(v, note, velocity))
    return out


def embed_voices(voices: list[Voice], note: int = 60, velocity: int = 85,
                 embedding: LogMel = EMBEDDING, processes: int | None = None,
                 progress: bool = False, chunk: int = 32) -> np.ndarray:  # fmt: skip
    """Render every voice once and embed it, over a worker pool.

    Returns:
        (len(voices), embedding.dim) float32.
    """
    jobs = [voices[i : i + chunk] for i in range(0, len(voices), chunk)]
    worker = _Worker(AudioConfig(), embedding, note, velocity)
    parts = list(pool_map(_embed_chunk, jobs, worker, processes, total=len(voices),
                          desc="index", progress=progress))  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, embedding.dim), np.float32)


class Index:
    """Embeddings of every voice of a database, for nearest-neighbour queries by audio.

    Attributes:
        db: the database. path: the index file. note, velocity: how every voice was played.
        ids: (N,) int64 database ids. splits: (N,) str. meta: what the file records.
    """

    def __init__(self, db: Path, path: Path, data: dict, embedding: LogMel = EMBEDDING):
        self.db, self.path, self.embedding = Path(db), Path(path), embedding
        self.meta = json.loads(str(data["meta"]))
        self.note, self.velocity = self.meta["note"], self.meta["velocity"]
        self.ids = data["ids"].astype(np.int64)
        self.splits = np.asarray(presets.SPLITS)[data["splits"]]
        # float16 on disk (half the bytes), float32 in memory: numpy's float16 products do not
        # use BLAS and are ~50x slower.
        self.matrix = data["embeddings"].astype(np.float32)
        # centred, so that |a|^2 + |b|^2 - 2 a.b below does not lose float32 digits to the
        # large common offset of dB values
        self.center = self.matrix.mean(0) if len(self.matrix) else 0.0
        self.matrix -= self.center
        self.sq_norms = np.einsum("ij,ij->i", self.matrix, self.matrix)
        self._split_masks = {s: self.splits == s for s in presets.SPLITS}

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Index({self.db}, {len(self)} voices, note {self.note}, velocity "
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
            "embedding": EMBEDDING.name,
            "embedding_params": dataclasses.asdict(EMBEDDING),
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
            except (OSError, ValueError, KeyError) as e:  # a foreign or damaged file
                reason = f"unreadable ({e})"
        if not build:
            raise ValueError(
                f"{path}: retrieval index {reason} (build it with `companion index build "
                f"--db {db}`)"
            )
        print(f"companion: building the retrieval index of {db} ({reason}) -> {path}",
              file=sys.stderr)  # fmt: skip
        return cls(db, path, build_index(db, path, wanted, progress, processes))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """(T,) float32 audio at 22 050 Hz -> (D,) float32; cut or zero-padded to the
        project's 4 s first, so that time segments line up with the library's renders."""
        n = AudioConfig().n_samples
        audio = np.asarray(audio, np.float32)
        if audio.shape[-1] != n:
            fixed = np.zeros((*audio.shape[:-1], n), np.float32)
            m = min(n, audio.shape[-1])
            fixed[..., :m] = audio[..., :m]
            audio = fixed
        return self.embedding(audio)

    def query(self, audio: np.ndarray, k: int = 16, split: str | None = None,
              exclude_ids=()) -> list[tuple[int, float]]:  # fmt: skip
        """The k voices whose renders are nearest to ``audio``, best first.

        Args:
            audio: (T,) float32 at 22 050 Hz (the input as ``load_audio`` gives it).
            split: only voices of this split (evaluation on the test split passes "train").
            exclude_ids: database ids never returned.

        Returns:
            [(database id, distance)], distance = RMS difference of the embeddings, dB.
        """
        return self.query_embedding(self.embed(audio), k, split, exclude_ids)

    def query_embedding(self, e: np.ndarray, k: int = 16, split: str | None = None,
                        exclude_ids=()) -> list[tuple[int, float]]:  # fmt: skip
        """``query`` for an embedding (D,) already computed."""
        if split is not None and split not in presets.SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(presets.SPLITS)}")
        e = np.asarray(e, np.float32) - self.center
        # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: one BLAS product for the whole library
        d2 = self.sq_norms - 2.0 * (self.matrix @ e) + float(e @ e)
        allowed = np.ones(len(self), bool) if split is None else self._split_masks[split].copy()
        if len(exclude_ids):
            allowed &= ~np.isin(self.ids, np.asarray(list(exclude_ids), np.int64))
        d2 = np.where(allowed, d2, np.inf)
        k = min(int(k), int(allowed.sum()))
        if k <= 0:
            return []
        top = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
        top = top[np.lexsort((self.ids[top], d2[top]))]  # ties: lower id first
        rms = np.sqrt(np.maximum(d2[top], 0.0) / self.embedding.dim)
        return [(int(self.ids[i]), float(r)) for i, r in zip(top, rms)]

    def voices(self, ids) -> list[Voice]:
        """The voices of these database ids, in that order."""
        return [v for _, v in presets.load(self.db, ids=list(ids))]


def build_index(db: Path, path: Path, meta: dict, progress: bool = False,
                processes: int | None = None) -> dict:  # fmt: skip
    """Render and embed every voice of ``db``, write the index to ``path`` atomically.

    Returns:
        The arrays written: embeddings (N, D) float16, ids (N,) int64, splits (N,) uint8
        (index into presets.SPLITS), meta (JSON text).
    """
    con = presets.connect(db)
    rows = con.execute("SELECT id, split FROM voices ORDER BY id").fetchall()
    con.close()
    voices = [v for _, v in presets.load(db)]
    if not voices:
        raise ValueError(f"{db}: no voices to index")
    start = time.perf_counter()
    emb = embed_voices(voices, meta["note"], meta["velocity"], EMBEDDING,
                       processes or default_processes(), progress)  # fmt: skip
    meta = {**meta, "voices": len(voices), "build_s": round(time.perf_counter() - start, 2),
            "dim": EMBEDDING.dim}  # fmt: skip
    data = {
        "embeddings": emb.astype(np.float16),
        "ids": np.array([r[0] for r in rows], np.int64),
        "splits": np.array([presets.SPLITS.index(r[1]) for r in rows], np.uint8),
        "meta": np.array(json.dumps(meta)),
    }
    clean_stale(path.parent, path.name)
    with atomic_path(path) as tmp:
        np.savez(tmp, **data)
    return data
