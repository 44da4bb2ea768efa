"""The retrieval index of a preset database: every voice's render, as a full-resolution log-mel.

Every unique voice of a database is played once with the Dexed engine at one (note, velocity)
(default 60 / 85, 4 s as the project renders) over a worker pool on every core. Each render
becomes the log-mel spectrogram the project's retrieval is defined on (``LogMel``: 64 bands,
STFT 1024 / hop 512, every frame of the 4 s, log10 of the mel power): 11,072 numbers. The
nearest library voice is the one at the smallest L2 distance between these: the exhaustive
lookup the matcher is measured against (bench/program_quality.py).

Held whole for ~27k voices that would be 600 MB (float16), so the index keeps a PCA projection
of it: the mean, the first ``COMPONENTS`` principal directions (fitted on up to FIT_VOICES
voices, by subspace iteration on their covariance) and every voice's coordinates, float16,
beside the database (``presets.sqlite`` -> ``presets.index.npz``) with the database's content
hash, the note, the velocity and the embedding's name and version. A query is one projection
and a nearest-neighbour ranking in two stages (below); with fewer voices than components nothing
is lost (the
projection spans the library, and distances are exact). Opening an index whose database, note,
velocity or embedding changed rebuilds it (one line on stderr says so).

Chosen by measurement (bench/index_retrieval.py, figures/table_index.md: 600 test-split voices
as queries against the exhaustive search over the 21,570 train-split voices): the index's top 1
is the exhaustive top 1 for 95.5 % of queries at 1,536 components (93.8 % at 1,024, 92.3 % at
512; a randomised SVD of the same size lost 5 points, int8 coordinates 2-3), the exhaustive top
1 is always in its top 16, and where they differ the index's choice is on average 0.003 dB
(RMS log-mel) farther: near-ties. A query ranks every voice on the 256 leading components, then
a shortlist of 512 on all of them (the whole matrix was memory-bound at 24 ms). For the whole
library (26,880 voices) the file is 111 MB, a build about 100 s on 2 cores, a query 23 ms.
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

import librosa
import numpy as np
import torch

from companion.config import AudioConfig
from companion.data import presets
from companion.data.render import Play, Renderer, default_processes, pool_map
from companion.dx7.voice import Voice
from companion.io import atomic_path, clean_stale

INDEX_VERSION = 2  # bump when the file layout or the embedding's computation changes
SUFFIX = ".index.npz"
COMPONENTS = 1536  # PCA components kept (fewer voices: as many as voices)
FIT_VOICES = 8000  # voices the PCA is fitted on (a random draw, seeded)
LEAD = 256  # components of a query's first stage
SHORTLIST = 512  # voices its first stage keeps for the full distance
# core-seconds of one voice's render and embedding (measured: 26,880 voices in ~100 s on 2
# cores, 25 s of it the PCA): the build time announced
BUILD_S_PER_VOICE = 0.0056


@dataclass(frozen=True)
class LogMel:
    """The full-resolution log-mel spectrogram retrieval compares.

    |STFT|^2 (Hann, centred, zero-padded) -> mel filterbank (librosa, Slaney) -> log10,
    floored at ``floor`` -> flattened frame-major: every frame of the render is kept.

    Attributes:
        n_mels: mel bands (0 Hz to half the sample rate).
        n_fft, hop: STFT window and hop, samples at ``sample_rate``.
        floor: mel power below this counts as this (1e-8: 80 dB below a unit sine).
        n_samples: the length every input is cut or zero-padded to (4 s, as renders are).
    """

    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 512
    floor: float = 1e-8
    sample_rate: int = 22050
    n_samples: int = 88200

    @property
    def name(self) -> str:
        return f"logmel{self.n_mels}-stft{self.n_fft}-hop{self.hop}"

    @property
    def frames(self) -> int:
        return 1 + self.n_samples // self.hop

    @property
    def dim(self) -> int:
        return self.n_mels * self.frames

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(T,) or (B, T) float32 audio at ``sample_rate`` -> (dim,) or (B, dim) float32;
        audio of another length is cut or zero-padded to ``n_samples`` first."""
        audio = np.asarray(audio, np.float32)
        if audio.shape[-1] != self.n_samples:
            fixed = np.zeros((*audio.shape[:-1], self.n_samples), np.float32)
            m = min(self.n_samples, audio.shape[-1])
            fixed[..., :m] = audio[..., :m]
            audio = fixed
        # torch's CPU STFT is 5x faster than librosa's here; its complex abs is not
        # vectorised, numpy's is (see companion/data/audio.py).
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(audio)), self.n_fft, self.hop,
                          window=_hann(self.n_fft), center=True, pad_mode="constant",
                          return_complex=True).numpy()  # fmt: skip
        power = np.square(np.abs(spec))
        mel = _filters(self.sample_rate, self.n_fft, self.n_mels) @ power  # (..., mels, frames)
        out = np.log10(np.maximum(mel, self.floor)).astype(np.float32)
        return np.swapaxes(out, -1, -2).reshape(*audio.shape[:-1], self.dim)


_CACHE: dict = {}


def _hann(n: int) -> torch.Tensor:
    return _CACHE.setdefault(("hann", n), torch.hann_window(n))


def _filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    key = ("mel", sr, n_fft, n_mels)
    if key not in _CACHE:
        _CACHE[key] = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    return _CACHE[key]


EMBEDDING = LogMel()  # the definition of retrieval's distance (see the module docstring)
HELD_S = 3.0  # how long the library's renders hold the key, s
SLOPE_S = 0.25  # s of a take's held part its continuation's slope is read from


def as_render(audio: np.ndarray, play: Play, key: int = 60, reference: int = 60,
              embedding: LogMel = EMBEDDING) -> np.ndarray:  # fmt: skip
    """A recording's log-mel as the library's render of its voice would look: key-on at
    sample 0, key held HELD_S, played at the library's ``reference`` key instead of ``key``.

    A DX7 voice played ``s`` semitones higher is, to a first approximation, the same sound
    with every frequency scaled by 2^(s / 12) (its operators' ratios follow the key), so the
    recording's power spectrum is warped in frequency by 2^((reference - key) / 12) (linear
    interpolation; power divided by the factor, so that a partial keeps its power in the mel
    bands; above the recording's top frequency its last bin goes on). Its held part is
    continued to HELD_S (each band's log-mel goes on along its slope over the last SLOPE_S,
    never rising) and its release (after key-up) follows from there, shifted by what the
    continuation added; a hold longer than HELD_S is cut to it.

    Args:
        audio: (T,) float32 at embedding.sample_rate, T = play.length.
        play: how the recording was played (its key-on offset and hold are read).
        key: the key it is taken to be played at (the octave is a choice: program.py).

    Returns:
        (embedding.dim,) float32, comparable with the library's embeddings.
    """
    e = embedding
    x = np.asarray(audio, np.float32)[play.offset :]
    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(x)), e.n_fft, e.hop,
                      window=_hann(e.n_fft), center=True, pad_mode="constant",
                      return_complex=True).numpy()  # fmt: skip
    power = np.square(np.abs(spec))  # (bins, frames)
    factor = 2.0 ** ((reference - key) / 12)
    if factor != 1.0:
        bins = np.arange(power.shape[0], dtype=np.float64)
        src = bins / factor  # output bin b reads the input at b / factor
        lo = np.clip(np.floor(src).astype(int), 0, power.shape[0] - 1)
        hi = np.clip(lo + 1, 0, power.shape[0] - 1)
        w = (src - lo)[:, None]
        # beyond the recording's top the last bin goes on: the engine's own noise floor there
        power = ((1 - w) * power[lo] + w * power[hi]) / factor
    mel = _filters(e.sample_rate, e.n_fft, e.n_mels) @ power
    logmel = np.log10(np.maximum(mel, e.floor)).T  # (frames, mels)
    frame_s = e.hop / e.sample_rate
    up = min(len(logmel), int(round(play.hold_s / frame_s)))  # the key-up frame
    held_frames = int(round(HELD_S / frame_s))
    held, release = logmel[:up], logmel[up:]
    if up < held_frames and up > 0:
        n = max(2, int(round(SLOPE_S / frame_s)))
        last = held[-n:]
        t = np.arange(len(last), dtype=np.float32)
        slope = (np.polyfit(t, last, 1)[0] if len(last) > 1 else np.zeros(e.n_mels))
        slope = np.minimum(slope, 0.0).astype(np.float32)
        more = held[-1] + slope * np.arange(1, held_frames - up + 1, dtype=np.float32)[:, None]
        more = np.maximum(more, np.log10(e.floor))
        release = release - held[-1] + more[-1]
        held = np.concatenate([held, more])
    elif up > held_frames:
        held = held[:held_frames]
    out = np.concatenate([held, release])[: e.frames]
    if len(out) < e.frames:
        out = np.concatenate([out, np.full((e.frames - len(out), e.n_mels), np.log10(e.floor))])
    return np.maximum(out, np.log10(e.floor)).astype(np.float32).reshape(e.dim)


def fit_pca(features: np.ndarray, k: int = COMPONENTS, fit: int = FIT_VOICES,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The mean and the first principal directions of a set of embeddings.

    With fewer voices than ``k`` + 1, every direction they span (an exact SVD): distances in
    the projection are the full distances. Otherwise a subspace iteration (3 rounds, 256 extra
    directions) on the covariance of ``fit`` voices drawn at random: measured as good as an
    exact eigendecomposition on this data (top-1 agreement 96.3 vs 96.2 %) in 20 s instead of
    150 s; torch.svd_lowrank of the same size lost 5 points.

    Args:
        features: (N, D) float16 or float32.

    Returns:
        mean (D,) float32 and components (K, D) float32 (orthonormal rows), K <= k.
    """
    n = len(features)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, fit, replace=False)) if n > fit else np.arange(n)
    mean = _chunked_mean(features)
    x = torch.from_numpy(features[rows].astype(np.float32) - mean)
    if n <= k + 1:
        _, sv, vh = torch.linalg.svd(x, full_matrices=False)
        keep = sv > sv.max() * 1e-6 if len(sv) else sv > 0
        return mean, vh[keep].numpy()
    cov = x.T @ x
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(cov.shape[0], min(k + 256, cov.shape[0]), generator=gen)
    for _ in range(3):
        basis, _ = torch.linalg.qr(cov @ basis)
    _, u = torch.linalg.eigh(basis.T @ cov @ basis)
    comps = (basis @ u).T.flip(0)[:k]  # largest eigenvalues first
    return mean, comps.contiguous().numpy()


def _chunked_mean(features: np.ndarray, chunk: int = 4096) -> np.ndarray:
    total = np.zeros(features.shape[1], np.float64)
    for i in range(0, len(features), chunk):
        total += features[i : i + chunk].astype(np.float64).sum(0)
    return (total / len(features)).astype(np.float32)


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
    """Picklable ``setup`` for ``pool_map``: one engine and the embedding in each worker."""

    def __init__(self, cfg: AudioConfig, embedding: LogMel, note: int, velocity: int):
        self.cfg, self.embedding, self.note, self.velocity = cfg, embedding, note, velocity

    def __call__(self) -> tuple:
        return Renderer(self.cfg), self.embedding, self.note, self.velocity


def _embed_chunk(ctx: tuple, voices: list[Voice]) -> np.ndarray:
    renderer, embedding, note, velocity = ctx
    out = np.empty((len(voices), embedding.dim), np.float16)  # half the memory, 3 digits
    for i, v in enumerate(voices):
        out[i] = embedding(renderer.render(v, note, velocity))
    return out


def embed_voices(voices: list[Voice], note: int = 60, velocity: int = 85,
                 embedding: LogMel = EMBEDDING, processes: int | None = None,
                 progress: bool = False, chunk: int = 32) -> np.ndarray:  # fmt: skip
    """Render every voice once and embed it, over a worker pool.

    Returns:
        (len(voices), embedding.dim) float16.
    """
    jobs = [voices[i : i + chunk] for i in range(0, len(voices), chunk)]
    worker = _Worker(AudioConfig(), embedding, note, velocity)
    parts = list(pool_map(_embed_chunk, jobs, worker, processes, total=len(voices),
                          desc="index", progress=progress))  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, embedding.dim), np.float16)


class Index:
    """Every voice of a database as PCA coordinates of its render's log-mel, for
    nearest-neighbour queries by audio.

    Attributes:
        db: the database. path: the index file. note, velocity: how every voice was played.
        ids: (N,) int64 database ids. splits: (N,) str. meta: what the file records.
        mean: (D,) float32 and components: (K, D) float32, the projection.
        coords: (N, K) float32, every voice's coordinates (float16 on disk).
    """

    def __init__(self, db: Path, path: Path, data: dict, embedding: LogMel = EMBEDDING):
        self.db, self.path, self.embedding = Path(db), Path(path), embedding
        self.meta = json.loads(str(data["meta"]))
        self.note, self.velocity = self.meta["note"], self.meta["velocity"]
        self.ids = data["ids"].astype(np.int64)
        self.splits = np.asarray(presets.SPLITS)[data["splits"]]
        self.mean = data["mean"].astype(np.float32)
        # float16 on disk (half the bytes), float32 in memory: numpy's float16 products do not
        # use BLAS and are ~50x slower.
        self.components = data["components"].astype(np.float32)
        self.coords = data["coords"].astype(np.float32)
        self.sq_norms = np.einsum("ij,ij->i", self.coords, self.coords)
        # the first stage of a query: the leading components only, held apart so that one
        # pass reads 6x fewer bytes (the whole matrix took 24 ms a query, memory-bound)
        self.lead = np.ascontiguousarray(self.coords[:, :LEAD])
        self.lead_sq = np.einsum("ij,ij->i", self.lead, self.lead)
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
        guess = n * BUILD_S_PER_VOICE / cores + 25.0  # renders over the cores, then the PCA
        print(f"companion: building the retrieval index of {db} ({reason}) -> {path}: "
              f"{n} voices, about {guess / 60:.0f} min on {cores} cores, once",
              file=sys.stderr, flush=True)  # fmt: skip
        t0 = time.perf_counter()
        data = build_index(db, path, wanted, progress, processes)
        print(f"companion: index built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return cls(db, path, data)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """(T,) float32 audio at 22 050 Hz -> (K,) float32 coordinates (cut or zero-padded
        to the project's 4 s first, so that frames line up with the library's renders)."""
        return self.components @ (self.embedding(audio) - self.mean)

    def embed_take(self, audio: np.ndarray, play: Play, key: int) -> np.ndarray:
        """A recording (``as_render``) -> (K,) float32 coordinates."""
        e = as_render(audio, play, key, self.note, self.embedding)
        return self.components @ (e - self.mean)

    def query(self, audio: np.ndarray, k: int = 16, split: str | None = None,
              exclude_ids=()) -> list[tuple[int, float]]:  # fmt: skip
        """The k voices whose renders are nearest to ``audio``, best first.

        Args:
            audio: (T,) float32 at 22 050 Hz (the input as ``load_audio`` gives it).
            split: only voices of this split (evaluation on the test split passes "train").
            exclude_ids: database ids never returned.

        Returns:
            [(database id, distance)], distance = RMS difference of the log10 mel values
            (within the projection).
        """
        return self.query_embedding(self.embed(audio), k, split, exclude_ids)

    def query_embedding(self, e: np.ndarray, k: int = 16, split: str | None = None,
                        exclude_ids=()) -> list[tuple[int, float]]:  # fmt: skip
        """``query`` for coordinates (K,) already computed by ``embed``."""
        if split is not None and split not in presets.SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(presets.SPLITS)}")
        e = np.asarray(e, np.float32)
        allowed = np.ones(len(self), bool) if split is None else self._split_masks[split].copy()
        if len(exclude_ids):
            allowed &= ~np.isin(self.ids, np.asarray(list(exclude_ids), np.int64))
        k = min(int(k), int(allowed.sum()))
        if k <= 0:
            return []
        # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: a BLAS product over the leading components of
        # every voice, then every component of a shortlist (which holds the full top 16 on
        # all 600 queries of bench/index_retrieval.py)
        lead = self.lead_sq - 2.0 * (self.lead @ e[:LEAD])
        lead = np.where(allowed, lead, np.inf)
        n = min(len(lead), max(SHORTLIST, 4 * k))
        short = np.argpartition(lead, n - 1)[:n] if n < len(lead) else np.arange(len(lead))
        short = short[np.isfinite(lead[short])]
        d2 = self.sq_norms[short] - 2.0 * (self.coords[short] @ e) + float(e @ e)
        order = np.lexsort((self.ids[short], d2))[:k]  # ties: lower id first
        top, d2 = short[order], d2[order]
        rms = np.sqrt(np.maximum(d2, 0.0) / self.embedding.dim)
        return [(int(self.ids[i]), float(r)) for i, r in zip(top, rms)]

    def voices(self, ids) -> list[Voice]:
        """The voices of these database ids, in that order."""
        return [v for _, v in presets.load(self.db, ids=list(ids))]


def build_index(db: Path, path: Path, meta: dict, progress: bool = False,
                processes: int | None = None) -> dict:  # fmt: skip
    """Render and embed every voice of ``db``, write the index to ``path`` atomically.

    Returns:
        The arrays written: mean (D,) float32, components (K, D) float16, coords (N, K)
        float16, ids (N,) int64, splits (N,) uint8 (index into presets.SPLITS), meta (JSON).
    """
    con = presets.connect(db)
    rows = con.execute("SELECT id, split FROM voices ORDER BY id").fetchall()
    con.close()
    voices = [v for _, v in presets.load(db)]
    if not voices:
        raise ValueError(f"{db}: no voices to index")
    start = time.perf_counter()
    features = embed_voices(voices, meta["note"], meta["velocity"], EMBEDDING,
                            processes or default_processes(), progress)  # fmt: skip
    mean, comps = fit_pca(features)
    comps = comps.astype(np.float16).astype(np.float32)  # as stored: queries project with these
    coords = np.concatenate([(features[i : i + 4096].astype(np.float32) - mean) @ comps.T
                             for i in range(0, len(features), 4096)])  # fmt: skip
    del features
    meta = {**meta, "voices": len(voices), "build_s": round(time.perf_counter() - start, 2),
            "dim": EMBEDDING.dim, "components": len(comps)}  # fmt: skip
    data = {
        "mean": mean,
        "components": comps.astype(np.float16),
        "coords": coords.astype(np.float16),
        "ids": np.array([r[0] for r in rows], np.int64),
        "splits": np.array([presets.SPLITS.index(r[1]) for r in rows], np.uint8),
        "meta": np.array(json.dumps(meta)),
    }
    clean_stale(path.parent, path.name)
    with atomic_path(path) as tmp:
        np.savez(tmp, **data)
    return data
