"""Memory of `companion program` over many inputs: it must stay flat.

    .venv/bin/python bench/program_memory.py --db data/presets.sqlite [--inputs 120]
        [--quality fast]

Renders N test-split voices to .wav files in a scratch folder, programs them all in one call
(as `companion program *.wav` does) and reads this process's resident memory (VmRSS) after
each input. Prints the RSS after the first 10 inputs, after all of them, and the growth per
input beyond the first 10 (an earlier version grew about 30 MB per input).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from companion.data import presets
from companion.data.render import Renderer
from companion.io import write_audio
from companion.matching.program import program


def rss_mb() -> float:
    """This process's resident set size, MB (Linux: /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--inputs", type=int, default=120)
    ap.add_argument("--quality", default="fast")
    args = ap.parse_args()
    renderer = Renderer()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = []
        for vid, voice in presets.load(args.db, split="test"):
            audio = renderer.render(voice)
            if np.abs(audio).max() > 1e-3:
                paths.append(write_audio(tmp / f"{vid:06d}.wav", audio, 22050))
            if len(paths) == args.inputs:
                break
        trace = []
        program(paths, tmp / "out", quality=args.quality, progress=False,
                on_result=lambda r: trace.append(rss_mb()))  # fmt: skip
    first, last = trace[min(9, len(trace) - 1)], trace[-1]
    per = (last - first) / max(1, len(trace) - 10)
    print(f"{len(trace)} inputs, quality {args.quality}: RSS {first:.0f} MB after 10, "
          f"{last:.0f} MB after {len(trace)}; {per:+.2f} MB per input after the first 10")


if __name__ == "__main__":
    main()
