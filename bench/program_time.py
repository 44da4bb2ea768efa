"""Time of `companion program` per input against the number of candidates, in one run.

    .venv/bin/python bench/program_time.py --db data/presets.sqlite [--model DIR]

Renders N test-split voices to .wav files, then programs them with K = 1, 4, 8, 16 candidates
(tuning on), and prints seconds per input, the mean log-mel distance to the input, and the ratio
of each K's time to K = 1 (the network's answer alone). The default K is the largest whose time
stays under 1 s per input on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from companion.data import presets
from companion.data.render import Renderer
from companion.matching.program import Programmer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--model")
    p.add_argument("--inputs", type=int, default=20)
    p.add_argument("--candidates", type=int, nargs="+", default=[1, 4, 8, 16])
    args = p.parse_args()
    voices = presets.load(args.db, split="test", limit=args.inputs)
    renderer = Renderer()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for vid, voice in voices:
            paths.append(Path(tmp) / f"{vid:06d}.wav")
            sf.write(paths[-1], renderer.render(voice), 22050)
        rows = []
        for k in args.candidates:
            prog = Programmer(args.model, candidates=k)
            prog.run(paths[0])  # warm-up (first calls compile librosa's numba code)
            t = time.perf_counter()
            dist = [prog.run(path).distance_db for path in paths]
            rows.append((k, (time.perf_counter() - t) / len(paths), float(np.mean(dist))))
    print(f"{len(paths)} test-split voices rendered at (60, 85), model {args.model or 'default'}")
    print(f"{'candidates':>10s} {'s/input':>8s} {'log-mel dist dB':>16s} {'time / K=1':>11s}")
    for k, sec, dist in rows:
        print(f"{k:10d} {sec:8.3f} {dist:16.2f} {sec / rows[0][1]:11.2f}")


if __name__ == "__main__":
    main()
