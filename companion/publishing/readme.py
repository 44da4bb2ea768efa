"""The README's numbers, written from figures/*.csv so that no number is typed twice.

``results_block(figures)`` makes the Markdown of the results (the main job, recordings, the
paper's table) from the tables the benches and notebooks wrote; ``update(readme, figures)``
puts it between the README's markers (``make readme``); tests/test_readme.py fails when the
README's block and the tables disagree.

    python -m companion.publishing.readme [README.md] [figures]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from companion.io import write_atomic

BEGIN = "<!-- results: written by `make readme` from figures/*.csv; do not edit by hand -->"
END = "<!-- results end -->"

# table_program.csv's methods, as the README names them
PROGRAM_ROWS = {"network alone": "network alone",
                "exhaustive top 1": "nearest library voice (exhaustive log-mel search)",
                "exhaustive top 16 + selection": "its best of 16, chosen by rendering",
                "program fast": "`program --quality fast`",
                "program best": "`program --quality best`",
                "program best-nolibrary": "`program --quality best`, no library",
                "program best-generated": "`program --quality best`, a library the model "
                                          "generates (4,096 voices of its prior)"}  # fmt: skip


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _program(figures: Path) -> str:
    t = pd.read_csv(figures / "table_program.csv")
    t = t[t["bucket"] == "all"].set_index(["set", "method"])
    voices, other = t.loc["test voices"], t.loc["other instruments"]
    rows = [[name, f"{voices.at[m, 'SC']:.3f}", f"{voices.at[m, 'MFCC']:.2f}",
             f"{voices.at[m, 'SC other keys']:.3f}", f"{voices.at[m, 'near-exact %']:.0f}",
             f"{voices.at[m, 's / sound']:.2f}", f"{other.at[m, 'SC']:.3f}",
             f"{other.at[m, 'MFCC']:.2f}"] for m, name in PROGRAM_ROWS.items()
            if m in voices.index and m in other.index]  # rows a table may not have: skipped
    n, k = int(voices.at["program best", "sounds"]), int(other.at["program best", "sounds"])
    best, top1 = voices.loc["program best"], voices.loc["exhaustive top 1"]
    ratio = {c: best[c] / top1[c] for c in ("SC", "MFCC", "SC other keys")}
    return (f"**The main job** ([figures/table_program.md](figures/table_program.md)): {n} test "
            f"voices and {k} sounds of other instruments; spectral convergence (SC) and MFCC "
            "MAE, lower is better; near-exact: SC < 0.05; seconds per sound on 2 cores.\n\n"
            + _table(["method", "SC", "MFCC", "SC at other keys", "near-exact %", "s / sound",
                      "other instruments SC", "MFCC"], rows)  # fmt: skip
            + f"\n\n`best` / the exhaustive nearest voice: {ratio['SC']:.2f}x on SC, "
            f"{ratio['MFCC']:.2f}x on MFCC, {ratio['SC other keys']:.2f}x on SC at keys and "
            "velocities the input never showed (intervals and targets: the table).")


def _recordings(figures: Path) -> str:
    t = pd.read_csv(figures / "table_recordings.csv").set_index("method")
    rows = [[m, f"{r['SC']:.3f}", f"{r['MFCC']:.2f}", f"{r['near-exact %']:.0f}",
             f"{r['an octave down and up: SC']:.3f}", f"{r['in tune %']:.0f}",
             f"{int(r['silent'])}", f"{r['s / sound']:.2f}"] for m, r in t.iterrows()]  # fmt: skip
    lab = t.iloc[0]
    ratios = ", ".join(f"{m} {t.at[m, 'SC'] / lab['SC']:.2f}x" for m in t.index[1:])
    return ("**Recordings like a user's** ([figures/table_recordings.md]"
            "(figures/table_recordings.md)): test voices played at random keys, velocities, "
            "lengths and levels, written as 44.1 kHz stereo files and programmed from them "
            "(quality `good`); every answer played as program printed it (the key of the note "
            "heard), against the same voices given as the lab input with their key.\n\n"
            + _table(["input", "SC", "MFCC", "near-exact %", "an octave down and up: SC",
                      "in tune %", "silent", "s / sound"], rows)
            + f"\n\nSC against the lab input: {ratios}." + _recordings_best(figures))


def _recordings_best(figures: Path) -> str:
    """The same at ``--quality best``, with the exhaustive baselines, where it was measured."""
    path = figures / "table_recordings_best.csv"
    if not path.is_file():
        return ""
    t = pd.read_csv(path).set_index("method")
    rec, lab = t.loc["recording, as program read it"], t.loc["lab input, key given"]
    top1, top16 = t.loc["exhaustive top 1"], t.loc["exhaustive top 16 + selection"]
    keys = "six other keys: SC"
    return ("\n\nAt `--quality best` ([figures/table_recordings_best.md]"
            f"(figures/table_recordings_best.md), {int(rec['sounds'])} voices): the recording "
            f"SC {rec['SC']:.3f} ({rec['near-exact %']:.0f} % near-exact), the lab input "
            f"{lab['SC']:.3f}; the nearest library voice, found exhaustively from the true "
            f"voice's render, {top1['SC']:.3f}, its best of 16 {top16['SC']:.3f}. At six keys "
            f"and velocities the recording did not show: {rec[keys]:.3f}, against "
            f"{top16[keys]:.3f} for the best of 16 (ratios with intervals, bucket by bucket: "
            "the table).")


def _far(figures: Path) -> str:
    t = pd.read_csv(figures / "table_far_sounds.csv", dtype={"key": str})
    keys = sorted({int(k) for k in t["key"] if k != "all"})
    t = t[(t["set"] == "other instruments") & (t["key"] == "all")].set_index("method")
    methods = {"exhaustive top 1": "nearest library voice (exhaustive, at the sound's key)",
               "exhaustive top 16 + selection": "its best of 16, chosen by rendering",
               "best": "`program --quality best`"}  # fmt: skip
    rows = [[name, f"{t.at[m, 'SC']:.3f}", f"{t.at[m, 'MFCC']:.2f}",
             f"{t.at[m, 'near-exact %']:.0f}", f"{t.at[m, 's / sound']:.2f}"]
            for m, name in methods.items()]  # fmt: skip
    n = int(t.at["best", "sounds"])
    # the curve: the sounds max ran on, every method on those sounds alone
    each = pd.read_csv(figures / "table_far_sounds_sounds.csv")
    curve = sorted({m for m in each["method"] if m.startswith("max@")},
                   key=lambda m: float(m.split("@")[1]))  # fmt: skip
    on = each[each["target"].isin(each[each["method"].isin(curve)]["target"])]
    far = on["set"] == "far test voices"
    sc = {(m, f): on[(on["method"] == m) & (far == f)]["sc"].mean()
          for m in ["best", *curve] for f in (False, True)}  # fmt: skip
    curve_rows = [[f"`--quality max --budget {m.split('@')[1]}`" if m != "best" else
                   "`program --quality best`", f"{sc[m, False]:.3f}", f"{sc[m, True]:.3f}"]
                  for m in ["best", *curve]]  # fmt: skip
    k, v = on[~far]["target"].nunique(), on[far]["target"].nunique()
    return ("**Sounds no library voice is near** ([figures/table_far_sounds.md]"
            f"(figures/table_far_sounds.md)): {n} sounds of other instruments (a General MIDI "
            f"soundfont, Faust's physical models, synth patches) at keys "
            f"{', '.join(map(str, keys))}, given with their key; every answer at the sound's "
            "RMS level.\n\n"
            + _table(["method", "SC", "MFCC", "near-exact %", "s / sound"], rows)
            + f"\n\nWhat time buys (`--quality max`): SC on {k} of those instruments (key 60) "
            f"and {v} test voices no library voice is near (> 10 parameters from the nearest)."
            "\n\n" + _table(["search", "instruments SC", "far voices SC"], curve_rows))


def _main(figures: Path) -> str:
    t = pd.read_csv(figures / "table_main.csv")
    t = t[(t["label"] == "all") & (t["statistic"] == "mean")].set_index("row")
    rows = [[m, f"{t.at[m, 'num_mae']:.3f}", f"{t.at[m, 'cat_acc']:.2f}", f"{t.at[m, 'sc']:.3f}",
             f"{t.at[m, 'log_stft_mae']:.3f}", f"{t.at[m, 'mfcc_mae']:.1f}"]
            for m in t.index]  # every row, in the table's order  # fmt: skip
    return ("**The paper's table** ([figures/table_main.md](figures/table_main.md), test voices "
            "at note 60, velocity 85; means; lower is better except accuracy).\n\n"
            + _table(["model", "num. MAE", "cat. accuracy", "SC", "log-STFT MAE", "MFCC MAE"],
                     rows))  # fmt: skip


def results_block(figures: str | Path = "figures") -> str:
    """The README's results, markers included."""
    figures = Path(figures)
    parts = [_program(figures), _far(figures), _recordings(figures), _main(figures)]
    return "\n\n".join([BEGIN, *parts, END])


def update(readme: str | Path = "README.md", figures: str | Path = "figures") -> bool:
    """Write the block between the markers of ``readme``; returns whether it changed."""
    readme = Path(readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme}: no results markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + results_block(figures) + tail
    if new != text:
        write_atomic(readme, new)
    return new != text


if __name__ == "__main__":
    args = sys.argv[1:]
    changed = update(*args[:2]) if args else update()
    print("README results updated" if changed else "README results already up to date")
