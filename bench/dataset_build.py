"""Dataset build speed against the bare Dexed engine on the same voices, in the same run.

    .venv/bin/python bench/dataset_build.py --db data/presets.sqlite --voices 1000 --config paper

Prints the time of: the bare engine in one process (one render per voice, nothing else), the
bare engine over the worker pool (all cores), and `companion dataset build` (render, mel
spectrogram, labels, cache on disk); then the build's time as a ratio of each. The target is a
build at most 1.5x the bare engine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from companion.config import NOTE_LAYOUTS, get_config
from companion.data import dataset, presets
from companion.data.render import Renderer, default_processes, render_many


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--voices", type=int, default=1000)
    p.add_argument("--config", default="paper")
    p.add_argument("--notes", default="single", choices=tuple(NOTE_LAYOUTS))
    p.add_argument("--processes", type=int, default=default_processes())
    args = p.parse_args()
    cfg = get_config(args.config)
    voices = [v for _, v in presets.load(args.db, limit=args.voices)]
    notes = NOTE_LAYOUTS[args.notes]

    renderer = Renderer(cfg.audio)
    t = time.perf_counter()
    for v in voices:
        renderer.render_notes(v, notes)
    engine_one = time.perf_counter() - t

    t = time.perf_counter()
    render_many(voices, notes, cfg.audio, processes=args.processes, chunk=cfg.chunk, progress=False)
    engine_pool = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        dataset.build(
            args.db,
            args.config,
            tmp,
            notes=args.notes,
            limit=len(voices),
            processes=args.processes,
            progress=False,
        )
        build = time.perf_counter() - t

    n = len(voices)
    print(
        f"{n} voices, config {cfg.name} {cfg.audio.spectrogram_shape}, notes {args.notes}, "
        f"{args.processes} processes"
    )
    print(
        f"{'bare engine, 1 process':32s} {engine_one:7.2f} s  {1e3 * engine_one / n:6.2f} ms/voice"
    )
    print(f"{'bare engine, pool':32s} {engine_pool:7.2f} s  {1e3 * engine_pool / n:6.2f} ms/voice")
    print(f"{'dataset build':32s} {build:7.2f} s  {1e3 * build / n:6.2f} ms/voice")
    print(f"ratio build / bare engine (1 process): {build / engine_one:.2f}  (target <= 1.5)")
    print(f"ratio build / bare engine (pool):      {build / engine_pool:.2f}")


if __name__ == "__main__":
    main()
