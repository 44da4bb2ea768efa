"""The ``companion`` command.

Every subcommand exits non-zero with a one-line reason on bad input and writes its outputs
through temporary files, so that an error never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import sys


def _presets_build(args) -> None:
    from . import presets

    summary = presets.build(args.cartridges, args.db)
    print(
        f"{args.db}: {summary['unique_voices']} unique voices from "
        f"{summary['readable_voices']} readable ({summary['skipped_voices']} corrupt skipped); "
        f"train {summary['splits']['train']} / valid {summary['splits']['valid']} / "
        f"test {summary['splits']['test']}"
    )


def _presets_info(args) -> None:
    from . import presets

    summary = presets.info(args.db)
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"database        {args.db}")
    print(
        f"cartridges      {summary['cartridges']} ({summary['files']} files, "
        f"{summary['files_without_voices']} without DX7 voices)"
    )
    print(f"unique voices   {summary['unique_voices']}")
    print(f"readable voices {summary['readable_voices']}")
    print(f"skipped voices  {summary['skipped_voices']} (corrupt: a parameter out of range)")
    for reason, n in list(summary["skipped_reasons"].items())[:5]:
        print(f"  {n:6d}  {reason}")
    print(f"checksum warnings {summary['checksum_warnings']} (voices kept)")
    print("splits          " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    print("families        " + ", ".join(f"{k} {v}" for k, v in summary["families"].items()))


def _presets_export(args) -> None:
    from . import presets

    rows = presets.load(args.db, split=args.split, ids=args.ids, limit=args.limit)
    if not rows:
        raise ValueError(f"{args.db}: no voices match")
    paths = presets.export([v for _, v in rows], args.output)
    print(f"wrote {len(rows)} voices to " + ", ".join(map(str, paths)))


def _dataset_build(args) -> None:
    from . import dataset

    summary = dataset.build(
        args.db, args.config, args.out, notes=args.notes, limit=args.limit, processes=args.processes
    )
    print(json.dumps({"dataset": args.out, **summary}, indent=1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="companion",
        description=("Program a Dexed / DX7 from a sound; reproduce the DAFx21 paper."),
    )
    sub = p.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("presets", help="the preset database").add_subparsers(
        dest="action", required=True
    )
    b = pre.add_parser("build", help="read a cartridge folder into a database")
    b.add_argument("--cartridges", help="folder of .syx files (default: $COMPANION_CARTRIDGES)")
    b.add_argument("--db", required=True, help="SQLite file to write")
    b.set_defaults(run=_presets_build)
    i = pre.add_parser("info", help="counts of a database")
    i.add_argument("--db", required=True)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(run=_presets_info)
    e = pre.add_parser("export", help="write voices as 32-voice .syx banks")
    e.add_argument("--db", required=True)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--split", choices=("train", "valid", "test"))
    which.add_argument("--ids", nargs="+", type=int, metavar="ID")
    e.add_argument("--limit", type=int)
    e.add_argument("-o", "--output", required=True, help="FILE.syx (FILE-001.syx... past 32)")
    e.set_defaults(run=_presets_export)

    ds = sub.add_parser("dataset", help="the spectrogram dataset").add_subparsers(
        dest="action", required=True
    )
    d = ds.add_parser("build", help="render a database into a spectrogram cache (resumable)")
    d.add_argument("--db", required=True)
    d.add_argument("--config", default="small", help="smoke, small or paper")
    d.add_argument("--out", required=True, help="dataset folder")
    d.add_argument("--notes", choices=("single", "six"), default="single")
    d.add_argument("--limit", type=int, help="first N voices (0: all; default: the config's)")
    d.add_argument("--processes", type=int, help="worker processes (default: one per core)")
    d.set_defaults(run=_dataset_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as e:  # bad input: one line, no traceback
        print(f"companion: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("companion: interrupted (a dataset build resumes where it stopped)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
