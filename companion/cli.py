"""The ``companion`` command.

Every subcommand exits non-zero with a one-line reason on bad input (a full disk included) and
writes its outputs through companion.io, so that an error never leaves a half-written file
behind and no output replaces a file the command reads (``_READS`` says what each reads; the
check is made here, before any work, and again by every writer). Ctrl-C and SIGTERM end it
with one line saying what is on disk (``_INTERRUPTED``), status 130 or 143.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sqlite3
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What an interrupted command leaves: every writer goes through companion.io, so never half a
# file; what differs is how to go on.
_INTERRUPTED = {
    "presets build": "the database is as it was; run it again to build",
    "dataset build": "run the same `dataset build` again to continue where it stopped",
    "train": "`companion train --resume` with the same arguments continues from the last "
    "checkpoint",
    "program": "the voices printed above are written; the others are not",
}

# What each command reads (its arguments; a folder: everything in it). No output of the
# command may be one of these (companion.io.check_output), nor an output folder one of these
# folders; None: the default the command would read.
_READS = {
    "presets build": ("cartridges",),
    "presets export": ("db",),
    "index build": ("db",),
    "dataset build": ("db",),
    "train": ("data",),
    "program": ("inputs", "model", "library"),
    "render": ("syx",),
    "evaluate": ("run", "data"),
    "interpolate": ("a", "b", "model"),
    "generate": ("model",),
    "evaluate-latent": ("run", "data"),
    "evaluate-ood": ("run", "data"),
    "ship": ("run", "data"),
}
_DEFAULT_READS = {
    "cartridges": lambda: os.environ.get("COMPANION_CARTRIDGES"),
    "library": lambda: _default_library().path,
    "model": lambda: _default_model(),
    "run": lambda: _default_model(),
}


def _default_library():
    from companion.data import library

    return library.find()


def _default_model() -> Path:
    from companion.models import default_model_dir

    return default_model_dir()


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other error of the command."""

    def error(self, message: str):
        # `program -dash.wav`: a file whose name starts with "-" reads as an option
        dashed = next((a for a in sys.argv[1:] if a.startswith("-") and len(a) > 1
                       and os.path.exists(a)), None)  # fmt: skip
        hint = f"; a file named {dashed}? put -- before it" if dashed else ""
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in lo..hi (hi None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(
                f"must be {lo}..{hi}, got {n}" if hi is not None else f"must be >= {lo}, got {n}"
            )
        return n

    return parse


def _check_folder(path: Path, name: Path | None = None) -> list[Path]:
    """Check, before any work, that folder ``path`` can be made and written in, without
    making it: a command must not compute for minutes and then fail on its first write.
    Errors name ``name`` (the file to be written in ``path``), or else ``path``.

    Returns:
        The folders that do not exist yet, innermost first (for removal if the command fails).

    Raises:
        ValueError: a file stands where a folder must be, or the folder cannot be written.
    """
    missing, p = [], path
    while not (p.exists() or p.is_symlink()):
        missing.append(p)
        p = p.parent
    name = name or path
    if not p.is_dir():
        where = "is a file, expected a folder" if p == name else f"{p} is a file, not a folder"
        raise ValueError(f"{name}: {where}")
    try:  # a real write, not os.access: root, read-only mounts and ACLs all answer right
        tempfile.TemporaryFile(dir=p).close()
    except OSError as e:
        raise ValueError(f"{name}: cannot write in {p} ({e.strerror or e})") from None
    return missing


@contextmanager
def _outputs_checked(args) -> Iterator[None]:
    """Check every output of a command before it runs; if it fails, remove the folders that
    were made for it and are still empty, so that a bad input leaves nothing behind.

    Outputs: ``--out`` / ``--out-dir`` (folders, in every subcommand), ``-o`` / ``--output``
    (a file), and the ``--db`` that ``presets build`` writes.
    """
    from companion import io

    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    folders = [Path(getattr(args, a)) for a in ("out", "out_dir") if getattr(args, a, None)]
    files = [Path(args.output)] if getattr(args, "output", None) else []
    if command == "presets build":
        files.append(Path(args.db))
    io.forget_reads()
    for name in _READS.get(command, ()):
        value = getattr(args, name, None)
        if value is None and name in _DEFAULT_READS:
            value = _DEFAULT_READS[name]()
        values = value if isinstance(value, list) else [value]
        io.reads(*values)
        for v in values:  # an output folder that is a folder the command reads
            if v is not None and Path(v).is_dir() and any(
                    os.path.realpath(f) == os.path.realpath(v) for f in folders):  # fmt: skip
                raise ValueError(f"{v}: is the folder this command reads (--{name}); write "
                                 "its outputs elsewhere")  # fmt: skip
    io.check_outputs(files)
    if command == "ship":  # its folder is replaced whole
        io.check_output(folders[0], folder=True)
    made = [m for folder in folders for m in _check_folder(folder)]
    for f in files:
        if f.is_dir():
            raise ValueError(f"{f}: is a folder, expected a file name")
        made += _check_folder(f.parent, f)
    try:
        yield
    except BaseException:
        for d in made:  # innermost first; a folder with anything in it stays
            try:
                d.rmdir()
            except OSError:
                pass
        raise


def _os_error_line(e: OSError) -> str:
    """``FILE: reason`` for an OSError about a user's path."""
    if e.filename is None:
        return e.strerror or str(e)
    path = Path(os.fsdecode(e.filename))
    reason = "no space left on device" if e.errno == errno.ENOSPC else e.strerror or str(e)
    if isinstance(e, (NotADirectoryError, FileExistsError)):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = "is a file, expected a folder" if blocker == path else (
                f"{blocker} is a file, not a folder")  # fmt: skip
    elif isinstance(e, IsADirectoryError):
        reason = "is a folder, expected a file"
    return f"{path}: {reason}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("companion")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _presets_build(args) -> None:
    from companion.data import presets

    summary = presets.build(args.cartridges, args.db, progress=sys.stderr.isatty())
    print(
        f"{args.db}: {summary['unique_voices']} unique voices from "
        f"{summary['readable_voices']} readable ({summary['skipped_voices']} corrupt skipped); "
        f"train {summary['splits']['train']} / valid {summary['splits']['valid']} / "
        f"test {summary['splits']['test']}"
    )


def _presets_info(args) -> None:
    from companion.data import presets

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
    from companion.data import presets

    rows = presets.load(args.db, split=args.split, ids=args.ids, limit=args.limit)
    if not rows:
        raise ValueError(f"{args.db}: no voices match")
    paths = presets.export([v for _, v in rows], args.output)
    print(f"wrote {len(rows)} voices to " + ", ".join(map(str, paths)))


def _index_build(args) -> None:
    import time

    from companion.matching.index import GRID_KEYS, Index

    t = time.perf_counter()
    index = Index.open(args.db, note=args.note, velocity=args.velocity,
                       progress=sys.stderr.isatty(),
                       processes=args.processes, rebuild=args.force)  # fmt: skip
    seconds = time.perf_counter() - t
    print(f"{index.path}: {len(index)} voices (starts at keys "
          f"{GRID_KEYS[0]}-{GRID_KEYS[-1]}, pitch read at note "
          f"{index.note}, velocity {index.velocity}), "
          f"{index.path.stat().st_size / 2**20:.1f} MB, {seconds:.1f} s")


def _dataset_build(args) -> None:
    from companion.data import dataset

    summary = dataset.build(
        args.db, args.config, args.out, notes=args.notes, limit=args.limit,
        processes=args.processes, progress=sys.stderr.isatty(),
    )
    print(json.dumps({"dataset": args.out, **summary}, indent=1))


def _train(args) -> None:
    from companion.training import train

    last = train.train(args.config, args.data, args.out, encoding=args.representation,
                       notes=args.notes, epochs=args.epochs, resume=args.resume,
                       device=args.device, regression=args.regression,
                       progress=sys.stderr.isatty())  # fmt: skip
    print(json.dumps({"run": args.out, **last}, indent=1))


def _note(text: str) -> list[int | str]:
    """``--note``: a MIDI note number or "auto", or a comma-separated list of them."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(part if part == "auto" else int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a MIDI note or auto: {part!r}") from None
    return out


def _numbers(kind):
    """A number, or a comma-separated list of them (one per input with --together)."""

    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None

    return parse


def _program(args) -> None:
    from companion.data import library
    from companion.matching import program

    found = library.or_generated(library.find(args.library), args.model,
                                 progress=sys.stderr.isatty())  # fmt: skip

    def report(r) -> None:  # a line as each input is done: that is the progress shown
        if r.error:
            print(f"companion: error: {r.error}", file=sys.stderr)
        else:  # the line ends with the library it was matched against
            print(f"{r.summary()}; {found.short()}", flush=True)

    one = lambda v: v[0] if isinstance(v, list) and len(v) == 1 else v  # noqa: E731
    results = program.program(args.inputs, args.out_dir, model=args.model, note=one(args.note),
                              velocity=one(args.velocity), hold=one(args.hold),
                              onset=one(args.onset),
                              quality=args.quality, budget=args.budget, library=found.path,
                              jobs=args.jobs, candidates=args.candidates, tune=not args.no_tune,
                              wav=args.wav, png=args.png, seed=args.seed, progress=False,
                              together=args.together, variants=args.variants,
                              overwrite=args.overwrite, on_result=report,
                              index_progress=sys.stderr.isatty())  # fmt: skip
    if any(r.error for r in results):
        raise SystemExit(1)


def _library_get(args) -> None:
    from companion.data import library

    library.get(library.source(args.url, args.sha256), progress=sys.stderr.isatty())


def _library_use(args) -> None:
    from companion.data import library

    path = library.use(args.folder)
    print(f"{path}: program, the app and the notebooks use it when no --library is given "
          f"(remembered in {library.config_file()})")


def _library_info(args) -> None:
    from companion.data import library

    found = library.find()
    if found.path is None and not found.how:  # the default model's, if program built it
        path = library.generated(build=False)
        found = library.Found(path, library.GENERATED) if path else found
    print(found.describe())


def _render(args) -> None:
    import soundfile as sf

    from companion.data.render import Renderer
    from companion.dx7.sysex import read_syx
    from companion.io import write_audio

    if not 0 <= args.note <= 127 or not 1 <= args.velocity <= 127:
        raise ValueError(
            f"note must be 0..127 and velocity 1..127, got {args.note} and {args.velocity}"
        )
    out = Path(args.output)
    # soundfile picks the format from the extension; RAW has no default encoding to write.
    formats = sorted(f for f in sf.available_formats() if sf.default_subtype(f))
    fmt = out.suffix[1:].upper()
    if fmt not in formats:
        raise ValueError(
            f"{out}: unknown audio extension {out.suffix!r}; use one of "
            + " ".join(f".{f.lower()}" for f in formats)
        )
    contents = read_syx(args.syx)
    if contents.error:
        raise ValueError(contents.error)
    # --index counts positions in the file, corrupt voices included, so that N is the voice a
    # librarian shows as N; a corrupt one is an error, never replaced by the next.
    total = len(contents.voices) + len(contents.skipped)
    if not 0 <= args.index < total:
        raise ValueError(
            f"{args.syx}: holds {total} voices (0..{total - 1}); --index {args.index} is not one"
        )
    voice = dict(contents.voices).get(args.index)
    if voice is None:
        bad = next(s for s in contents.skipped if s.index == args.index)
        raise ValueError(f"{args.syx}: voice {args.index} is corrupt ({bad.reason})")
    for w in contents.warnings:  # as presets build records them: the voice is still read
        where = "" if w.startswith(str(args.syx)) else f"{args.syx}: "
        print(f"companion: warning: {where}{w}", file=sys.stderr)
    renderer = Renderer()
    audio = renderer.render(voice, args.note, args.velocity)
    write_audio(out, audio, renderer.cfg.sample_rate, format=fmt)  # a failure: one line, main
    print(
        f"{out}: '{voice.display_name}' (voice {args.index}) at note {args.note}, velocity "
        f"{args.velocity}, {renderer.cfg.render_s:g} s"
    )


def _evaluate(args) -> None:
    from companion.evaluation import paper_table

    paper_table.evaluate(args.run, args.data, args.out, limit=args.limit or None,
                         progress=sys.stderr.isatty())
    print(open(Path(args.out) / "table_main.md").read())


def _interpolate(args) -> None:
    from companion.dx7.sysex import read_voices
    from companion.io import check_outputs
    from companion.latent import interpolate as ip

    check_outputs(ip.path_files(args.out_dir, args.steps, args.wav))  # before any work
    a, b = (read_voices(f)[0] for f in (args.a, args.b))
    values = ip.naive_path(a, b, args.steps) if args.naive else ip.Latent(args.model).path(
        a, b, args.steps)  # fmt: skip
    written = ip.write_path(values, ip.step_names(a, b, args.steps), args.out_dir, wav=args.wav)
    mode = "naive" if args.naive else "latent"
    print(
        f"{mode} path '{a.display_name}' -> '{b.display_name}', {args.steps} steps: "
        f"{len(written)} files in {args.out_dir}"
    )


def _generate(args) -> None:
    from companion.data.presets import export
    from companion.latent.interpolate import generate_bank

    voices = generate_bank(args.n, args.model, args.seed)
    paths = export(voices, args.output)
    print(f"{paths[0]}: {len(voices)} new voices ({voices[0].display_name} ...), seed {args.seed}")


def _evaluate_latent(args) -> None:
    from companion.evaluation import latent, paper_table

    interp = latent.interpolation(args.run, args.data, args.pairs, seed=args.seed)
    gen = latent.generation(args.run, args.data, args.voices, seed=args.seed)
    head = f"Model: {paper_table.model_name(args.run)}; {paper_table.provenance()}."
    latent.write_tables(interp, gen, head, args.out)
    for name in ("table_interpolation.md", "table_generate.md"):
        print(open(Path(args.out) / name).read())


def _sounds(args) -> None:
    from companion.data import instruments

    names = args.names or instruments.SOURCES
    paths = instruments.write_sources(names, args.out_dir, args.note, args.velocity)
    print(
        f"wrote {len(paths)} sounds (note {args.note}, velocity {args.velocity}, 4 s) to "
        f"{args.out_dir}: " + ", ".join(p.name for p in paths)
    )


def _evaluate_ood(args) -> None:
    from companion.evaluation import other_sounds

    other_sounds.evaluate_ood(args.run, args.data, args.out_dir, args.out, args.sources or None)
    print(open(Path(args.out) / "table_ood.md").read())


def _ship(args) -> None:
    from companion.publishing import modelcard

    out = modelcard.ship(args.run, args.data, args.out)
    print(f"wrote {out}/MODEL_CARD.md and the model's weights")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="companion",
        description=("Program a Dexed / DX7 from a sound; reproduce the DAFx21 paper."),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("presets", help="the preset database").add_subparsers(
        dest="action", required=True
    )
    b = pre.add_parser("build", help="read a cartridge folder into a database")
    b.add_argument("--cartridges", help="folder of .syx files (default: $COMPANION_CARTRIDGES)")
    b.add_argument("--db", required=True, help="SQLite file to write")
    b.set_defaults(func=_presets_build)
    i = pre.add_parser("info", help="counts of a database")
    i.add_argument("--db", required=True)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_presets_info)
    e = pre.add_parser("export", help="write voices as 32-voice .syx banks")
    e.add_argument("--db", required=True)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--split", choices=("train", "valid", "test"))
    which.add_argument("--ids", nargs="+", type=int, metavar="ID")
    e.add_argument("--limit", type=_int_in(1), help="first N voices")
    e.add_argument("-o", "--output", required=True, help="FILE.syx (FILE-001.syx... past 32)")
    e.set_defaults(func=_presets_export)

    ix = sub.add_parser("index", help="the retrieval index of a database").add_subparsers(
        dest="action", required=True
    )
    x = ix.add_parser("build", help="render every voice's start at a grid of keys and "
                      "velocities, store the embeddings beside the database (else built on "
                      "first use by program --library)")  # fmt: skip
    x.add_argument("--db", required=True, help="preset database, or a folder of .syx files")
    x.add_argument("--note", type=int, default=60, help="the key each voice's pitch is read at")
    x.add_argument("--velocity", type=int, default=85, help="the velocity it is read at")
    x.add_argument("--processes", type=int, help="worker processes (default: one per core)")
    x.add_argument("--force", action="store_true", help="rebuild even when up to date")
    x.set_defaults(func=_index_build)

    ds = sub.add_parser("dataset", help="the spectrogram dataset").add_subparsers(
        dest="action", required=True
    )
    d = ds.add_parser("build", help="render a database into a spectrogram cache (resumable)")
    d.add_argument("--db", required=True)
    d.add_argument("--config", default="small", help="smoke, small or paper")
    d.add_argument("--out", required=True, help="dataset folder")
    d.add_argument("--notes", choices=("single", "six"), default="single")
    d.add_argument("--limit", type=_int_in(0),
                   help="first N voices (0: all; default: the config's)")  # fmt: skip
    d.add_argument("--processes", type=_int_in(1), help="worker processes (default: one per core)")
    d.set_defaults(func=_dataset_build)

    t = sub.add_parser("train", help="train a model (torchrun -m companion train: several GPUs)")
    t.add_argument("--config", required=True, help="smoke, small or paper")
    t.add_argument("--data", required=True, help="dataset folder (companion dataset build)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--representation", default="numcat++", choices=("numonly", "numcat",
                   "numcat++"))  # fmt: skip
    t.add_argument("--notes", choices=("single", "six"), help="checked against the dataset")
    t.add_argument("--regression", default="flow", choices=("flow", "mlp"))
    t.add_argument("--epochs", type=_int_in(1), help="total epochs (default: the config's)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.set_defaults(func=_train)

    lib = sub.add_parser("library", help="the DX7 library program matches against "
                         "without --library").add_subparsers(dest="action", required=True)
    lg = lib.add_parser("get", help="download, verify and build the public DX7 collection "
                        "(15 MB, once) in the user's data folder")  # fmt: skip
    lg.add_argument("--url", help="where to download it (default: $COMPANION_LIBRARY_URL, "
                    "else GitHub's archive of the pinned commit)")  # fmt: skip
    lg.add_argument("--sha256", help="the content hash its .syx files must have (default: "
                    "$COMPANION_LIBRARY_SHA256, else the pinned collection's)")  # fmt: skip
    lg.set_defaults(func=_library_get)
    lu = lib.add_parser("use", help="remember a folder of .syx cartridges (or a preset "
                        "database) as the library")  # fmt: skip
    lu.add_argument("folder")
    lu.set_defaults(func=_library_use)
    lib.add_parser("info", help="which library program uses, and how it was found"
                   ).set_defaults(func=_library_info)  # fmt: skip

    g = sub.add_parser("program", help="audio file(s) -> DX7 voice(s) (.syx)")
    g.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files (wav, flac, ogg, mp3...)"
    )
    g.add_argument("--out-dir", required=True)
    g.add_argument("--model", help="model folder (default: companion/models/default)")
    g.add_argument("--quality", choices=("fast", "good", "best", "max"), default="good",
                   help="fast: a short search with the engine in the loop (~1 s a sound on 2 "
                   "cores); good (default): ~2.5 s; best: ~5 s; max: for offline work, a "
                   "minute a sound and twice the library voices")  # fmt: skip
    g.add_argument("--budget", type=float, help="seconds per sound (default: the quality's)")
    g.add_argument("--library", help="preset database or cartridge folder: the voices whose "
                   "sound is nearest to the input join the candidates (its retrieval index is "
                   "built on first use); 'none' for none; default: $COMPANION_LIBRARY, else "
                   "the folder of `companion library use`, else the library of `companion "
                   "library get`, else 4,096 voices the model generates (built at the first "
                   "run, once)")  # fmt: skip
    g.add_argument("--note", type=_note, default="auto",
                   help="the key it was played at: the voice plays it there (default auto: "
                   "the note of its pitch, the key a musician presses for it; 60 without a "
                   "pitch; the output line says which)")  # fmt: skip
    g.add_argument("--velocity", type=_numbers(int),
                   help="its velocity (default: chosen with the engine)")
    g.add_argument("--hold", type=_numbers(float),
                   help="seconds the key was held (default: estimated from the envelope)")
    g.add_argument("--onset", type=_numbers(float),
                   help="the key-on, seconds from the file's start (default: where the sound "
                   "starts; give it for a voice whose envelope waits before it sounds)")
    g.add_argument("--together", action="store_true",
                   help="the inputs are recordings of one sound (other keys or velocities): "
                   "one voice that matches them all, named after the first; --note, "
                   "--velocity, --hold and --onset may then list one value per input "
                   "(60,72,84)")  # fmt: skip
    g.add_argument("--variants", type=int, default=0, metavar="N",
                   help="also write NAME-variants.syx, a 32-voice bank of the N (<= 32) best "
                   "distinct answers, best first, padded with INIT VOICE")  # fmt: skip
    g.add_argument("--jobs", type=int, help="engine processes (default: one per core)")
    g.add_argument("--seed", type=int, default=0, help="seed of the latent samples")
    g.add_argument("--candidates", type=int,
                   help="the network's answer plus N - 1 latent samples (default: the "
                   "quality's; 1: the network's answer alone)")  # fmt: skip
    g.add_argument("--no-tune", action="store_true", help="do not correct the pitch")
    g.add_argument("--wav", action="store_true", help="also write the voice rendered, .wav")
    g.add_argument("--png", action="store_true", help="also write both spectrograms, .png")
    g.add_argument("--overwrite", action="store_true",
                   help="replace files of the same name in --out-dir (default: a file there "
                   "is kept, the new one numbered NAME-2.syx; an input is never replaced)")
    g.set_defaults(func=_program)

    r = sub.add_parser("render", help="play a voice of a .syx file with the Dexed engine")
    r.add_argument("syx", help=".syx file (bank, single voice, or headerless data)")
    r.add_argument("--index", type=int, default=0,
                   help="voice position in the file, from 0, corrupt voices counted")  # fmt: skip
    r.add_argument("--note", type=int, default=60, help="MIDI note 0..127 (default 60)")
    r.add_argument("--velocity", type=int, default=85, help="1..127 (default 85)")
    r.add_argument("-o", "--output", required=True,
                   help="audio file, format by extension (.wav .flac .ogg .mp3 ...)")  # fmt: skip
    r.set_defaults(func=_render)

    v = sub.add_parser("evaluate", help="the paper's table on the test split, with baselines")
    v.add_argument("--run", nargs="+", default=[], help="run or model folders (one per row)")
    v.add_argument("--data", required=True, help="dataset folder (its test split is used)")
    v.add_argument("--out", default="figures", help="where the tables go")
    v.add_argument("--limit", type=_int_in(0), default=200, help="first N test voices (0: all)")
    v.set_defaults(func=_evaluate)

    ip = sub.add_parser("interpolate", help="a path of voices between two voices")
    ip.add_argument("a", help=".syx file (its first voice)")
    ip.add_argument("b", help=".syx file (its first voice)")
    ip.add_argument("--steps", type=int, default=7, help="voices on the path, ends included")
    ip.add_argument("--out-dir", required=True)
    ip.add_argument("--model", help="model folder (default: companion/models/default)")
    ip.add_argument("--naive", action="store_true", help="linear in the parameters instead")
    ip.add_argument("--wav", action="store_true", help="also render every step, .wav")
    ip.set_defaults(func=_interpolate)

    gn = sub.add_parser("generate", help="new voices from the latent space, as a bank")
    gn.add_argument("--n", type=int, default=32, help="voices (1..32)")
    gn.add_argument("-o", "--output", required=True, help="BANK.syx")
    gn.add_argument("--model", help="model folder (default: companion/models/default)")
    gn.add_argument("--seed", type=int, default=0)
    gn.set_defaults(func=_generate)

    el = sub.add_parser("evaluate-latent", help="interpolation smoothness and new voices")
    el.add_argument("--run", help="run or model folder (default: companion/models/default)")
    el.add_argument("--data", required=True, help="dataset folder (test and train splits)")
    el.add_argument("--out", default="figures")
    el.add_argument("--pairs", type=_int_in(1), default=100, help="random test pairs")
    el.add_argument("--voices", type=_int_in(1), default=256, help="new voices measured")
    el.add_argument("--seed", type=int, default=0)
    el.set_defaults(func=_evaluate_latent)

    so = sub.add_parser("sounds", help="sounds of other instruments (soundfont, Faust) as .wav")
    so.add_argument("names", nargs="*", help="sources (default: all): gm-piano, gm-violin, "
                    "gm-flute, faust-clarinet, faust-subtractive ...")  # fmt: skip
    so.add_argument("--out-dir", required=True)
    so.add_argument("--note", type=_int_in(0, 127), default=60, help="MIDI note (default 60)")
    so.add_argument("--velocity", type=_int_in(1, 127), default=85, help="1..127 (default 85)")
    so.set_defaults(func=_sounds)

    eo = sub.add_parser("evaluate-ood", help="program sounds of other instruments vs retrieval")
    eo.add_argument("--run", help="run or model folder (default: companion/models/default)")
    eo.add_argument("--data", required=True, help="dataset folder (its train split: retrieval)")
    eo.add_argument("--out-dir", required=True, help="where the sounds and voices go")
    eo.add_argument("--out", default="figures", help="where table_ood goes")
    eo.add_argument("--sources", nargs="+", help="default: all")
    eo.set_defaults(func=_evaluate_ood)

    s = sub.add_parser("ship", help="copy a run's model to a folder with its card "
                          "(default: the shipped model, companion/models/default)")
    s.add_argument("--run", required=True)
    s.add_argument("--data", required=True, help="the dataset it was trained on (for metrics)")
    s.add_argument("--out", default="companion/models/default")
    s.set_defaults(func=_ship)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (status 143 instead of 130)."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """A warning about the user's input: one line, without our source line."""
    print(f"companion: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status. What it sets for its run (SIGTERM's handler, the
    warnings' format, the inputs it reads) is put back after, for callers in the same process."""
    from companion import io

    args = parser().parse_args(argv)
    sigterm = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    show, warnings.showwarning = warnings.showwarning, _warning_line
    try:
        return _run(args)
    finally:
        warnings.showwarning = show
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        io.forget_reads()


def _run(args) -> int:
    try:
        with _outputs_checked(args):
            args.func(args)
        sys.stdout.flush()  # a closed pipe raises here, inside the handler, not at exit
    except ValueError as e:  # bad input: one line, no traceback
        print(f"companion: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `companion ... | head`: the reader is gone; stop quietly
        # The recipe of the Python docs (signal.SIGPIPE note): point stdout at devnull so the
        # interpreter's own flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as e:  # a full disk, a folder that cannot be made: the user's path, one line
        print(f"companion: error: {_os_error_line(e)}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:  # a database that cannot be written (a full disk) or read
        db = getattr(args, "db", None)
        print(f"companion: error: {db + ': ' if db else ''}{e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        _forget_interrupt()
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        how = _INTERRUPTED.get(command, "nothing half-written")
        what = "terminated" if isinstance(e, _Terminated) else "interrupted"
        print(f"companion: {what}; {how}", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    return 0


def _forget_interrupt() -> None:
    """Ctrl-C is handled: say so to the interpreter. CPython 3.11 marks a KeyboardInterrupt
    raised inside exec() of a string (numba, dataclasses and others compile code that way) as
    unhandled even when it is caught, and then ends the process by SIGINT at exit: status -2
    instead of ours (seen in CI: an interrupt during numba's first compile)."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ValueError, AttributeError):  # another interpreter, without that flag
        pass


def _main_thread() -> bool:
    """Whether this is the main thread (signal handlers can be set only there)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
