"""`companion library get` against building the same library by hand, on the same files.

    .venv/bin/python bench/library_get.py --cartridges ../shared/data/dx7-patch-library
        [--out figures]

The cartridges (every .syx file and the LICENSE) are zipped like GitHub's archive of a commit
(one top folder) and served by a local HTTP server on 127.0.0.1. Timed, one after the other,
each as the command a user runs, in a fresh data folder:

- get: `companion library get --url http://127.0.0.1:PORT/... --sha256 HASH` (download,
  unpack, verify, preset database, retrieval index, everything renamed into place);
- by hand: `companion presets build` then `companion index build` on the same folder.

Target (issue 25): get <= 1.3x by hand. Writes figures/table_library_get.md / .csv.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd

from companion.evaluation.paper_table import provenance
from companion.evaluation.tables import write_table

TARGET = 1.3


def archive_of(root: Path, out: Path) -> str:
    """Zip every .syx file and LICENSE of ``root`` under one top folder; returns the content
    hash ``companion library get`` checks (the issue's recipe, written out here)."""
    lines = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and (p.suffix.lower() == ".syx" or rel == "LICENSE"):
                zf.write(p, f"collection-0123abc/{rel}")
                if p.suffix.lower() == ".syx":
                    lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    return hashlib.sha256("".join(sorted(lines, key=lambda x: x.split("  ", 1)[1]))
                          .encode()).hexdigest()  # fmt: skip


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cartridges", required=True)
    ap.add_argument("--out", default="figures")
    args = ap.parse_args()
    root = Path(args.cartridges)
    companion = [sys.executable, "-m", "companion"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sha = archive_of(root, tmp / "a.zip")
        size = (tmp / "a.zip").stat().st_size
        handler = type("H", (http.server.SimpleHTTPRequestHandler,),
                       {"log_message": lambda *a: None})  # fmt: skip
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/a.zip"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_LIBRARY")}
        env.update(XDG_DATA_HOME=str(tmp / "data"), XDG_CONFIG_HOME=str(tmp / "cfg"),
                   XDG_CACHE_HOME=str(tmp / "cache"))  # fmt: skip
        get = timed([*companion, "library", "get", "--url", url, "--sha256", sha], env)
        db = tmp / "hand" / "presets.sqlite"
        db.parent.mkdir()
        build = timed([*companion, "presets", "build", "--cartridges", str(root), "--db",
                       str(db)], env)  # fmt: skip
        index = timed([*companion, "index", "build", "--db", str(db)], env)
        server.shutdown()
    ratio = get / (build + index)
    mark = "met" if ratio <= TARGET else "MISSED"
    t = pd.DataFrame([
        {"way": "companion library get (download, verify, build)", "seconds": get},
        {"way": "presets build + index build", "seconds": build + index},
        {"way": "  presets build", "seconds": build},
        {"way": "  index build", "seconds": index},
    ])  # fmt: skip
    note = (f"`bench/library_get.py` on {os.cpu_count()} CPU cores, {provenance()}: "
            f"{root.name}'s .syx files ({size / 2**20:.1f} MB zipped) served on 127.0.0.1.")
    line = f"get / by hand: {ratio:.2f} (target <= {TARGET}): {mark}"
    write_table(Path(args.out) / "table_library_get", t, caption=note, notes=[line])
    print(t.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(line)


if __name__ == "__main__":
    main()
