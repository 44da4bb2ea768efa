"""Retrieval index: build time against the bare Dexed engine on the same voices in the same run,
the index's size and one query's time.

    mkdir -p data/helperE && cp data/presets.sqlite data/helperE/
    OMP_NUM_THREADS=1 .venv/bin/python bench/index_build.py --db data/helperE/presets.sqlite

Prints: the bare engine over the worker pool (one 4 s render per voice, nothing kept), the
full index build (``Index.open`` on a copy of the database: content hash, every voice's pitch
and its starts at every key and velocity of the grid, the projection, writing the file) over
the same pool, and their ratio; the index file's size; one query (a render's pitch, its start
warped to the grid key nearest each voice's, every voice ranked) and opening an existing
index.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from companion.config import AudioConfig
from companion.data import presets
from companion.data.render import Renderer, _RendererFactory, default_processes, pool_map
from companion.matching.index import Index


def _render_only(renderer: Renderer, voices) -> None:
    for v in voices:
        renderer.render(v, 60, 85)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, help="a copy of the library database")
    p.add_argument("--processes", type=int, default=default_processes())
    p.add_argument("--chunk", type=int, default=32, help="voices per job (as the index build)")
    args = p.parse_args()
    voices = [v for _, v in presets.load(args.db)]
    jobs = [voices[i : i + args.chunk] for i in range(0, len(voices), args.chunk)]
    print(f"{len(voices)} voices, {args.processes} processes")

    t = time.perf_counter()
    for _ in pool_map(_render_only, jobs, _RendererFactory(AudioConfig()), args.processes,
                      total=len(voices), desc="bare engine"):  # fmt: skip
        pass
    bare = time.perf_counter() - t

    with tempfile.TemporaryDirectory(dir=Path(args.db).parent) as tmp:
        db = Path(tmp) / Path(args.db).name
        shutil.copyfile(args.db, db)
        t = time.perf_counter()
        index = Index.open(db, processes=args.processes, progress=True)
        build = time.perf_counter() - t
        size = index.path.stat().st_size
        t = time.perf_counter()
        index = Index.open(db, build=False)
        reopen = time.perf_counter() - t

        audio = Renderer().render(voices[len(voices) // 2], 60, 85)
        index.query(audio, 16)  # warm
        query = []
        for _ in range(50):
            t = time.perf_counter()
            index.query(audio, 16, split="train")
            query.append(time.perf_counter() - t)
    query_ms = 1e3 * np.median(query)

    print(f"bare engine      {bare:7.1f} s  ({1e3 * bare / len(voices):.2f} ms / voice)")
    print(f"index build      {build:7.1f} s  ({1e3 * build / len(voices):.2f} ms / voice)")
    print(f"build / engine   {build / bare:7.2f} x")
    print(f"index size       {size / 2**20:7.1f} MB  ({size / len(voices):.0f} bytes / voice)")
    print(f"one query        {query_ms:7.2f} ms (a render's pitch, its start at every key "
          "and velocity of the grid where each voice sounds it)")
    print(f"open (hash db + load index) {reopen:.2f} s")


if __name__ == "__main__":
    main()
