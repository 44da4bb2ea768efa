#!/usr/bin/env bash
# What the GPU job carries to a bare device machine (scripts/device/README.md), made here where
# PyPI answers:
#   build/device/wheels/       cp312 manylinux x86_64 wheels of the packages the device's image
#                              lacks, at the versions installed in .venv (tested here);
#   build/device/cartridges/library.tar.xz   the cartridge library, one xz tarball.
# Both are under build/ (git-ignored), so they travel only when `run` names them in `carry`.
#
# Why not every dependency: the whole closure of pyproject's dependencies but torch is 51 wheels,
# 210 MB (llvmlite 60, dawdreamer 41, scipy 35, numpy 16 ...); the working tree already takes
# about 50 of the 64 MiB a call may carry. The device image has torch, numpy, scipy, numba,
# scikit-learn, safetensors, tensorboard, pyyaml, tqdm and matplotlib (device_packages.txt), and
# the job needs no dawdreamer, pyfluidsynth or lameenc (other instruments, mp3). So only the
# rest travels: about 2.5 MB. The library's 29 MB of .syx files hold many copies of the same
# banks; xz -9e (64 MiB window) makes them about 1.1 MB.
#
#   scripts/device/wheels.sh            (make device-wheels)
# Env: PY (default .venv/bin/python), COMPANION_CARTRIDGES (default ../shared/data/dx7-patch-library),
#      DEVICE_DIR (default build/device).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DEST=${DEVICE_DIR:-build/device}
CARTRIDGES=${COMPANION_CARTRIDGES:-../shared/data/dx7-patch-library}
# What the job imports (dexed-py, librosa, soundfile, zuko) and their needs that the image lacks.
PACKAGES="dexed-py librosa soundfile soxr audioread decorator pooch platformdirs cffi pycparser zuko"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"

test -x "$PY" || { echo "wheels.sh: $PY missing; run make setup first" >&2; exit 1; }
test -d "$CARTRIDGES" || { echo "wheels.sh: no cartridge library at $CARTRIDGES (set COMPANION_CARTRIDGES)" >&2; exit 1; }

# 1. wheels, pinned to what .venv runs; a fresh folder swapped in whole (one version of each).
pins=$("$PY" -c 'import sys, importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' $PACKAGES)
rm -rf "$DEST/wheels.tmp" && mkdir -p "$DEST/wheels.tmp"
# shellcheck disable=SC2086
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp $PLATFORMS -d "$DEST/wheels.tmp" $pins
rm -rf "$DEST/wheels" && mv "$DEST/wheels.tmp" "$DEST/wheels"

# Every requirement of a carried wheel (for Python 3.12 on Linux, extras left out) must be on the
# device's list or carried: a missing one would fail there, where nothing can be fetched.
"$PY" - "$DEST/wheels" scripts/device/device_packages.txt <<'EOF'
import sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

wheels, listed = Path(sys.argv[1]), Path(sys.argv[2])
have = {canonicalize_name(l) for l in listed.read_text().split() if l and not l.startswith("#")}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
names, needs = set(), {}
for whl in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    fields = [l.split(": ", 1) for l in meta.splitlines() if ": " in l]
    name = canonicalize_name(next(v for k, v in fields if k == "Name"))
    names.add(name)
    for k, v in fields:
        req = Requirement(v) if k == "Requires-Dist" else None
        if req and (req.marker is None or req.marker.evaluate(env)):
            needs.setdefault(canonicalize_name(req.name), []).append(name)
missing = {n: by for n, by in needs.items() if n not in have | names}
if missing:
    sys.exit("wheels.sh: not on the device and not carried: "
             + ", ".join(f"{n} (for {', '.join(by)})" for n, by in sorted(missing.items())))
print(f"wheels: {len(names)} packages; each requirement is carried or on the device")
EOF

# 2. the library, rebuilt only when a file in it is newer than the tarball.
lib="$DEST/cartridges/library.tar.xz"
if [ ! -f "$lib" ] || [ -n "$(find "$CARTRIDGES" -newer "$lib" -print -quit)" ]; then
  mkdir -p "$DEST/cartridges"
  src=$(cd "$CARTRIDGES" && pwd)
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$(dirname "$src")" \
    -cf - "$(basename "$src")" | xz -9e -T1 > "$lib.tmp"
  mv "$lib.tmp" "$lib"
fi

# 3. sizes: what one `run` call carries is the working tree (tracked and untracked files git
# does not ignore) plus the carried paths; the limit is 64 MiB.
"$PY" - "$DEST/wheels" "$DEST/cartridges" <<'EOF'
import subprocess, sys
from pathlib import Path

files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, text=True, check=True).stdout.split("\0")
tree = sum(Path(f).stat().st_size for f in files if f and Path(f).is_file())
carry = {p: sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file()) for p in sys.argv[1:]}
for p, n in carry.items():
    print(f"{p:36s} {n / 2**20:6.2f} MiB")
total = tree + sum(carry.values())
print(f"{'working tree':36s} {tree / 2**20:6.2f} MiB")
print(f"{'total that travels':36s} {total / 2**20:6.2f} MiB (limit 64 MiB)")
if total > 62 * 2**20:
    sys.exit("wheels.sh: too close to the 64 MiB a call may carry; carry less")
EOF
