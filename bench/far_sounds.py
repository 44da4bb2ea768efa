"""`program` on sounds no library voice is near: other instruments at several keys, and the
quality-against-time curve of `--quality max`.

    .venv/bin/python bench/far_sounds.py --db data/presets.sqlite [--keys 48 60 72]
        [--sources ...] [--qualities best best-noblocks] [--curve 1 5 15 60 ...]
        [--curve-sounds 10] [--far-voices 10] [--out figures]

Sounds (companion.data.instruments.WIDE_SOURCES, 29 of them): General MIDI instruments of the
FluidR3 soundfont played by FluidSynth (18), Faust's physical models played by DawDreamer (6),
and synth patches written in Faust here (5: subtractive, additive, two-operator FM at an
inharmonic ratio, detuned saws, a square pluck); each at every key of ``--keys`` (velocity 85,
held 3 s, 4 s, peak 0.9), given to program with its key as a user gives ``--note``.

Rows, all in this run, every answer rendered at the sound's key and brought to its RMS level
before it is compared:

- exhaustive top 1: the train voice nearest by full-resolution log-mel L2, against every train
  voice rendered at that key (bench/program_quality.py's Train, one feature matrix per key);
- exhaustive top 16 + selection: its 16 nearest, the best chosen by rendering (the loss);
- `program` at each quality of ``--qualities`` (and search designs: best-noblocks is best
  without the block moves of companion.matching.search), with the train split's index;
- the curve: `program --quality max --budget S` for each S of ``--curve``, on the first
  ``--curve-sounds`` instruments at key 60 and ``--far-voices`` test voices of the > 10
  bucket (learnable parameters differing from the nearest train voice), beside `best`.

Ratios of means against the exhaustive top 16 + selection get bootstrap 95 % intervals (2,000
resamples of the sounds); designs are compared with their quality on the same sounds.
Writes figures/table_far_sounds.md / .csv and table_far_sounds_sounds.csv (every answer).
Seconds are wall time on this machine's cores: run it alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from program_quality import (
    BUCKETS,
    DESIGNS,
    EXH1,
    EXH16,
    NEAR_EXACT,
    Train,
    boot_ratio,
    metrics,
    publish,
)

from companion.data import presets
from companion.data.instruments import WIDE_SOURCES, render_source
from companion.data.render import Renderer
from companion.evaluation.paper_table import provenance
from companion.matching.index import Index
from companion.matching.loss import Target
from companion.matching.program import Programmer

TARGETS = [("best", 0.55, "sc"), ("best", 0.40, "mfcc"), ("max@60", 0.45, "sc")]  # issue 26


def family(name: str) -> str:
    """soundfont, physical model or synth patch: the group a source's row falls in."""
    if name.startswith("gm-"):
        return "soundfont"
    models = ("clarinet", "violin", "flute", "guitar", "marimba", "djembe")
    return "physical model" if name.removeprefix("faust-") in models else "synth patch"


def ratio_ci(df: pd.DataFrame, row: str, base: str, col: str, n_boot: int = 2000,
             where: pd.Series | None = None) -> tuple[float, float, float]:  # fmt: skip
    """Ratio of means (row / base) over the sounds both have, bootstrap 95 % interval."""
    sel = df if where is None else df[where]
    a = sel[sel["method"] == row].set_index("target")[col]
    b = sel[sel["method"] == base].set_index("target")[col]
    a, b = a.align(b, join="inner")
    return boot_ratio(a.to_numpy(float), b.to_numpy(float), n_boot)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="preset database of the whole library")
    ap.add_argument("--keys", type=int, nargs="+", default=[48, 60, 72])
    ap.add_argument("--sources", nargs="+", default=WIDE_SOURCES)
    ap.add_argument("--qualities", nargs="*", default=["best", "best-noblocks"],
                    help=f"qualities, or search designs: {', '.join(DESIGNS)}")  # fmt: skip
    ap.add_argument("--curve", nargs="*", default=["1", "5", "15", "60"],
                    help="--budget seconds of the max curve; DESIGN@S for a search design "
                    "at S seconds (max-noblocks@15)")  # fmt: skip
    ap.add_argument("--curve-sounds", type=int, default=10)
    ap.add_argument("--far-voices", type=int, default=10)
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--out", default="figures")
    ap.add_argument("--cache", default="data/bench-cache", help="train features kept here")
    args = ap.parse_args()
    index = Index.open(args.db, progress=True)
    trains = {k: Train(args.db, Path(args.cache), note=k) for k in args.keys}
    renderer = Renderer()
    # (name, audio, key, set): the instruments at every key, then the far test voices
    sounds = [(f"{s} @{k}", render_source(s, k), k, family(s))
              for k in args.keys for s in args.sources]  # fmt: skip
    train60 = trains.get(60) or Train(args.db, Path(args.cache))
    rng = np.random.default_rng(0)
    test = presets.load(args.db, split="test")
    far = []
    for i in rng.permutation(len(test)):
        if len(far) >= args.far_voices:
            break
        vid, voice = test[i]
        audio = renderer.render(voice)
        d = train60.distance(voice.values)
        if np.sqrt(np.mean(audio**2)) > 1e-3 and d >= BUCKETS[-1][0]:
            far.append((f"test {vid}", audio, 60, "far test voices"))
    curve_set = [s for s in sounds if s[2] == 60][: args.curve_sounds] + far
    sounds += far
    print(f"{len(sounds)} sounds, {len(curve_set)} in the curve", file=sys.stderr)

    rows = []

    def add(method, sound, voice, evals, seconds):
        name, audio, key, where = sound
        rows.append({"set": where, "target": name, "key": key, "method": method,
                     "evals": evals, "seconds": seconds,
                     **metrics(audio, renderer.render(voice, key, 85))})  # fmt: skip

    for sound in sounds:  # the baselines, at the sound's key
        name, audio, key, _ = sound
        train = trains.get(key) or train60
        t0 = time.perf_counter()
        voices = train.nearest(audio, 16)
        t1 = time.perf_counter() - t0
        add(EXH1, sound, voices[0], 1, t1)
        t0 = time.perf_counter()
        losses = Target(audio).loss(np.stack([renderer.render(v, key, 85) for v in voices]))
        add(EXH16, sound, voices[int(np.argmin(losses))], 16, t1 + time.perf_counter() - t0)
    runs = [(q, None, sounds) for q in args.qualities]
    runs += [("best", None, curve_set)] if "best" not in args.qualities else []
    curve = [(c.split("@")[0], float(c.split("@")[1])) if "@" in c else ("max", float(c))
             for c in args.curve]  # fmt: skip
    runs += [(m, b, curve_set) for m, b in curve]
    for method, budget, which in runs:
        quality, options, _ = DESIGNS.get(method, (method, {}, "train"))
        label = f"{method}@{budget:g}" if budget is not None else method
        print(f"program {label}: {len(which)} sounds", file=sys.stderr)
        with Programmer(library=index, quality=quality, jobs=args.jobs, split="train",
                        budget=budget) as prog:  # fmt: skip
            prog.search_options = options
            prog.warm_up()
            for sound in which:
                name, audio, key, _ = sound
                t0 = time.perf_counter()
                r = prog.run_audio(audio, Path(name), note=key)
                add(label, sound, r.voice, r.evals, time.perf_counter() - t0)
    df = pd.DataFrame(rows)
    df["near"] = df["sc"] < NEAR_EXACT
    instruments = df[df["set"] != "far test voices"]
    parts = [instruments.assign(set="other instruments", key="all"),
             instruments.assign(key="all"), instruments.assign(set="other instruments"),
             df[df["set"] == "far test voices"].assign(key="all")]  # fmt: skip
    g = pd.concat(parts).groupby(["set", "key", "method"], sort=False)
    table = pd.DataFrame({
        "SC": g["sc"].mean(), "SC median": g["sc"].median(), "log-STFT": g["log_stft"].mean(),
        "MFCC": g["mfcc"].mean(), "near-exact %": 100 * g["near"].mean(),
        "evaluations": g["evals"].mean(), "s / sound": g["seconds"].mean(), "sounds": g.size(),
    }).reset_index()  # fmt: skip
    lines = []
    for label, limit, col in TARGETS:
        if (instruments["method"] == label).any():
            r, lo, hi = ratio_ci(instruments, label, EXH16, col)
            mark = "met" if hi <= limit else ("met on the mean" if r <= limit else "MISSED")
            lines.append(f"other instruments: program {label} / {EXH16} on {col}: {r:.2f} "
                         f"[95 % CI {lo:.2f}-{hi:.2f}] (target <= {limit}): {mark}")  # fmt: skip
    for row, (quality, _, _) in DESIGNS.items():
        for where, part in (("other instruments", instruments),
                            ("far test voices", df[df["set"] == "far test voices"])):  # fmt: skip
            have = set(part["method"])
            if row in have and quality in have:
                for col in ("sc", "mfcc"):
                    r, lo, hi = ratio_ci(part, row, quality, col)
                    lines.append(f"{where}: {row} / {quality} on {col}: {r:.2f} "
                                 f"[95 % CI {lo:.2f}-{hi:.2f}] (design, paired)")  # fmt: skip
    curve_names = {s[0] for s in curve_set}
    in_curve = df[df["target"].isin(curve_names)]
    is_far = in_curve["set"] == "far test voices"
    for m, b in curve:
        for where, part in (("curve instruments", in_curve[~is_far]),
                            ("curve far voices", in_curve[is_far])):  # fmt: skip
            label = f"{m}@{b:g}"
            if len(part) and (part["method"] == label).any():
                r, lo, hi = ratio_ci(part, label, "best", "sc")
                sc = part[part["method"] == label]["sc"].mean()
                lines.append(f"{where}: {m} --budget {b:g} SC {sc:.3f}, / best: {r:.2f} "
                             f"[95 % CI {lo:.2f}-{hi:.2f}]")  # fmt: skip
            base = f"{DESIGNS[m][0]}@{b:g}" if m in DESIGNS else None
            if base and len(part) and (part["method"] == base).any():
                r, lo, hi = ratio_ci(part, label, base, "sc")
                lines.append(f"{where}: {label} / {base} on sc: {r:.2f} "
                             f"[95 % CI {lo:.2f}-{hi:.2f}] (design, paired)")  # fmt: skip
    note = (f"`bench/far_sounds.py` on {os.cpu_count()} CPU cores, {provenance()}; library: the "
            f"train split of {Path(args.db).name}. {len(args.sources)} sounds of other "
            f"instruments at keys {', '.join(map(str, args.keys))} (velocity 85, held 3 s, "
            f"4 s), given with their key; {len(far)} test voices of the > 10 bucket at key 60. "
            "Every answer rendered at the sound's key and brought to its RMS level; SC: "
            "spectral convergence; MAEs of log10 |STFT| and of 13 MFCCs; lower is better; "
            "near-exact: SC < 0.05. 'max@S': `--quality max --budget S`, on "
            f"{len(curve_set)} sounds (the curve).")  # fmt: skip
    publish(Path(args.out) / "table_far_sounds", table, note, "Targets and designs", lines, df)


if __name__ == "__main__":
    main()
