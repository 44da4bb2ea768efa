"""The GPU job of issues 12 and 13 on a bare device machine, in one go (scripts/device/README.md).

    python3 scripts/device/job.py --job paper|table --out $OUT [--check | --smoke]

``--job paper``: the paper config, NumCat++, one note, the whole library (issue 12).
``--job table``: the paper table's five rows (Num only, NumCat, NumCat++, NumCat++ with the MLP
regression, one note; NumCat++ with six notes) in the small config at one equal budget of
epochs, the rows trained as concurrent processes sharing the GPU when a probe says that gives
more samples per second than one process (issue 13).
``--check``: the same pipeline on 320 voices and 2 epochs (the device's short first call);
``--smoke``: the same pipeline on the CPU in the smoke config (here, and in the tests).

Stages, each timed in OUT/job.log and OUT/job.json:
 1. install: the carried wheels (wheels.sh) into /tmp (pip --no-index --no-deps), then every
    module the job needs imported once, with the GPU's name;
 2. presets: the carried cartridge library (library.tar.xz, or a folder) into a database;
 3. datasets: `dataset.build` on every core (one note; and six notes for the table);
 4. probe (table): aggregated training samples/s of one process against the five rows' at once;
 5. train: `companion train` for 1 epoch, timed; then `--resume --epochs N`, N the epochs that
    fit the deadline (a hard stop interrupts training in time; the last checkpoint is kept);
 6. export: each row's inference weights (encoder, latent flow, regression: the decoder is not
    needed to program, interpolate or generate), fp16 when fp16 weights decode the same voices as
    fp32 on test voices, with model.yaml and metrics.jsonl, in OUT/models.tar.000 ... (parts
    under 15 MiB; unpack.py makes model folders of them);
 7. evaluate: the network's answer on test voices with the paper table's metrics
    (OUT/table_main.md; OUT/eval.tar.gz holds every table file and the per-voice values).
OUT then holds at most 8 files, each under 16 MiB, 64 MiB in all (the device's limits).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SITE = Path("/tmp/companion-site")  # where the carried wheels are installed on the device

# slug: (representation, notes, regression); slugs name folders and files
ROWS = {
    "numonly": ("numonly", "single", "flow"),
    "numcat": ("numcat", "single", "flow"),
    "numcatpp": ("numcat++", "single", "flow"),
    "numcatpp-mlp": ("numcat++", "single", "mlp"),
    "numcatpp-six": ("numcat++", "six", "flow"),
}
JOBS = {"paper": ["numcatpp"], "table": list(ROWS)}
# When the weights would not fit what comes back, rows go to fp16 in this order, then rows'
# weights are left out in the other (their metrics and table rows stay): NumCat++ (program,
# interpolation) and the six-note model (the multi-note examples) are kept best.
SHRINK_ORDER = ["numcatpp-mlp", "numcat", "numonly", "numcatpp-six", "numcatpp"]
DROP_ORDER = ["numcatpp-mlp", "numcat", "numonly", "numcatpp-six"]
PART_BYTES = 15 * 2**20
MAX_PARTS = 4  # + eval.tar.gz, table_main.md, job.log, job.json = 8 files
MAX_TOTAL = 60 * 2**20  # under the 64 MiB that comes back, with room for the other files
CONCURRENT_GAIN = 1.1  # concurrent processes must beat one by this factor to be chosen


@dataclass
class Plan:
    """What a mode does; every field can be set on the command line.

    Attributes:
        config: smoke, small or paper.
        limit: voices per dataset (0: all).
        device: cuda or cpu (training).
        deadline_s: the whole job's wall time, from its start, s.
        reserve_s: of which kept after training for export and evaluation, s.
        min_epochs, max_epochs: bounds on the epochs the deadline allows.
        test_voices: test voices evaluated (0: all).
        check_voices: test voices on which fp16 and fp32 weights are compared.
        probe_s: the probe's timing window, s (0: no probe, concurrent).
        processes: CPU worker processes (dataset build, evaluation).
    """

    config: str
    limit: int
    device: str
    deadline_s: float
    reserve_s: float
    min_epochs: int
    max_epochs: int
    test_voices: int
    check_voices: int
    probe_s: float
    processes: int


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def make_plan(job: str, mode: str) -> Plan:
    """The defaults of a job and mode (real: the device's real call)."""
    config = {"paper": "paper", "table": "small"}[job]
    if mode == "smoke":
        return Plan("smoke", 0, "cpu", 400, 90, 2, 2, 16, 16, 1.0, cores())
    if mode == "check":
        return Plan(config, 320, "cuda", 150, 45, 2, 2, 32, 32, 2.0, cores())
    # real: a 540 s job inside a 600 s call; training gets what setup and the reserve leave
    # (about 7 minutes for paper, 5 for table, whose six-note dataset and probe cost more)
    return Plan(config, 0, "cuda", 540, 80 if job == "paper" else 95, 1, 400,
                0 if job == "paper" else 1000, 256, 5.0, cores())  # fmt: skip


class Log:
    """Lines with the time since the start, on stdout and appended to OUT/job.log at once (what
    a command killed at its limit leaves still comes back); job.json rewritten after each
    stage."""

    def __init__(self, out: Path):
        self.out, self.t0 = out, time.monotonic()
        self.state: dict = {"stages": {}, "rows": {}}
        out.mkdir(parents=True, exist_ok=True)
        self.file = open(out / "job.log", "w", buffering=1)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, msg: str) -> None:
        line = f"[{self.elapsed():7.1f} s] {msg}"
        print(line, flush=True)
        self.file.write(line + "\n")

    def save(self) -> None:
        from companion.io import write_atomic

        self.state["wall_s"] = round(self.elapsed(), 1)
        write_atomic(self.out / "job.json", json.dumps(self.state, indent=1, default=str) + "\n")

    def stage(self, name: str):
        log = self

        class _Stage:
            def __enter__(self):
                self.t = time.monotonic()
                log(f"== {name}")

            def __exit__(self, kind, exc, tb):
                dt = time.monotonic() - self.t
                log.state["stages"][name] = round(dt, 1)
                log(f"== {name}: {dt:.1f} s" + (f" (failed: {exc!r})" if exc else ""))
                log.save()

        return _Stage()


# --- 1. install -------------------------------------------------------------------------------


def install(wheels: Path | None, log: Log) -> dict:
    """Install the carried wheels into SITE and put it (and the checkout) on every import path;
    then import everything the job uses in a fresh process, which reports versions and the
    GPU."""
    paths = [str(REPO)]
    if wheels is not None:
        found = sorted(wheels.glob("*.whl"))
        if not found:
            raise SystemExit(f"job: no wheels in {wheels} (run scripts/device/wheels.sh here)")
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(SITE),
               *map(str, found)]  # fmt: skip
        subprocess.run(cmd, check=True)
        log(f"installed {len(found)} wheels into {SITE}")
        paths.insert(0, str(SITE))
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")])
    for p in reversed(paths):
        sys.path.insert(0, p)
    probe = (
        "import importlib.metadata as m, json, torch\n"
        "import dexed, librosa, soundfile, zuko, safetensors, scipy, yaml, tqdm, pandas, jinja2\n"
        "import companion.training.train, companion.evaluation.paper_table\n"
        "v = {p: m.version(p) for p in ('dexed-py', 'librosa', 'soundfile', 'zuko', 'numpy',\n"
        "     'scipy', 'numba', 'pandas', 'safetensors', 'torch')}\n"
        "gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None\n"
        "mem = torch.cuda.get_device_properties(0).total_memory if gpu else 0\n"
        "print(json.dumps({'versions': v, 'gpu': gpu, 'gpu_memory_gib': mem / 2**30,\n"
        "                  'python': __import__('sys').version.split()[0]}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit("job: the environment cannot run the job:\n" + proc.stderr[-3000:])
    env = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"python {env['python']}; gpu {env['gpu']} ({env['gpu_memory_gib']:.0f} GiB); "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))  # fmt: skip
    return env


# --- 2. presets, 3. datasets ------------------------------------------------------------------


def presets_db(cartridges: Path, work: Path, log: Log) -> Path:
    """The preset database of the carried library, built once per work folder."""
    from companion.data import presets

    db = work / "presets.sqlite"
    if db.exists():
        log(f"{db}: there already")
        return db
    if cartridges.is_file():  # library.tar.xz from wheels.sh
        folder = work / "cartridges"
        with tarfile.open(cartridges, "r:*") as tar:
            tar.extractall(folder, filter="data")
        roots = [p for p in folder.iterdir() if p.is_dir()]
        cartridges = roots[0] if len(roots) == 1 else folder
    summary = presets.build(cartridges, db, progress=False)
    log(f"{db}: {summary['unique_voices']} voices, splits {summary['splits']}")
    return db


def build_dataset(db: Path, plan: Plan, notes: str, work: Path, log: Log) -> Path:
    from companion.data import dataset

    out = work / "datasets" / f"{plan.config}-{notes}-{plan.limit or 'all'}"
    t = time.monotonic()
    summary = dataset.build(db, plan.config, out, notes=notes, limit=plan.limit,
                            processes=plan.processes, progress=False)  # fmt: skip
    n = sum(summary["splits"].values())
    dt = time.monotonic() - t
    log(f"{out.name}: {n} voices {summary['splits']} in {dt:.1f} s "
        f"({n / max(dt, 1e-9):.0f} voices/s on {plan.processes} processes)")  # fmt: skip
    return out


# --- 4. probe ---------------------------------------------------------------------------------


def probe(rows: list[str], plan: Plan, work: Path, log: Log) -> dict:
    """Aggregated training samples/s of one process (NumCat++ one note, else the first row)
    against all rows' processes at once, each over the same window after its warm-up."""
    result = {}
    alone = ["numcatpp"] if "numcatpp" in rows else rows[:1]
    for label, group in (("one process", alone), (f"{len(rows)} processes", rows)):
        sync = work / "probe" / label.replace(" ", "-")
        sync.mkdir(parents=True, exist_ok=True)
        for f in sync.iterdir():
            f.unlink()
        procs = []
        for slug in group:
            enc, notes, reg = ROWS[slug]
            cmd = [sys.executable, str(HERE / "probe.py"), "--config", plan.config,
                   "--encoding", enc, "--notes", "6" if notes == "six" else "1",
                   "--regression", reg, "--device", plan.device, "--sync", str(sync),
                   "--name", slug, "--warmup", "5" if plan.device == "cuda" else "1"]  # fmt: skip
            env = _child_env(len(group), plan)
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE))  # fmt: skip
        while len(list(sync.glob("ready-*"))) < len(group):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("job: a probe failed: " + _stderr_of(procs))
            time.sleep(0.05)
        from companion.io import write_atomic

        write_atomic(sync / "go", json.dumps({"start": time.time() + 0.5,
                                              "window_s": plan.probe_s}))  # fmt: skip
        for p in procs:
            if p.wait():
                raise SystemExit("job: a probe failed: " + _stderr_of(procs))
        each = [json.loads((sync / f"result-{s}.json").read_text()) for s in group]
        total = sum(r["samples_per_s"] for r in each)
        result[label] = {"samples_per_s": total,
                         "per_process": {r["name"]: r["samples_per_s"] for r in each}}  # fmt: skip
        log(
            f"probe, {label}: {total:.0f} samples/s in all ("
            + ", ".join(f"{r['name']} {r['samples_per_s']:.0f}" for r in each)
            + ")"
        )
    one, many = (result[k]["samples_per_s"] for k in result)
    result["chosen"] = "concurrent" if many >= CONCURRENT_GAIN * one else "one after another"
    log(f"probe: {len(rows)} processes give {many / one:.2f}x the samples/s of one: "
        f"training the rows {result['chosen']}")  # fmt: skip
    return result


def _stderr_of(procs) -> str:
    for p in procs:
        if p.poll() not in (None, 0):
            return p.stderr.read().decode(errors="replace")[-2000:]
    return "(no message)"


# --- 5. train ---------------------------------------------------------------------------------


def _child_env(concurrent: int, plan: Plan) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["OMP_NUM_THREADS"] = str(max(1, plan.processes // max(concurrent, 1)))
    return env


def _train_cmd(slug: str, data: Path, run: Path, epochs: int, resume: bool, plan: Plan):
    enc, notes, reg = ROWS[slug]
    cmd = [sys.executable, "-m", "companion", "train", "--config", plan.config, "--data",
           str(data), "--out", str(run), "--representation", enc, "--notes", notes,
           "--regression", reg, "--epochs", str(epochs), "--device", plan.device]  # fmt: skip
    return cmd + (["--resume"] if resume else [])


def run_group(jobs: list[tuple[str, list[str]]], plan: Plan, logs: Path, stop_at: float,
              log: Log) -> dict[str, float]:  # fmt: skip
    """Run training commands at once; each one's wall time, s. Past ``stop_at`` (monotonic)
    every one still running is interrupted (SIGINT: the CLI stops between two writes, the last
    checkpoint stays whole)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs, began, wall = {}, time.monotonic(), {}
    for slug, cmd in jobs:
        f = open(logs / f"{slug}.log", "a")
        procs[slug] = (subprocess.Popen(cmd, env=_child_env(len(jobs), plan), stdout=f,
                                        stderr=subprocess.STDOUT), f)  # fmt: skip
    stopped = False
    while any(p.poll() is None for p, _ in procs.values()):
        if not stopped and time.monotonic() > stop_at:
            log("deadline: interrupting training (the last checkpoint is kept)")
            for p, _ in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            stopped = True
            stop_at = time.monotonic() + 60
        elif stopped and time.monotonic() > stop_at:
            for p, _ in procs.values():
                if p.poll() is None:
                    p.kill()
        for slug, (p, _) in procs.items():
            if p.poll() is not None and slug not in wall:
                wall[slug] = time.monotonic() - began
        time.sleep(0.2)
    for slug, (p, f) in procs.items():
        f.close()
        wall.setdefault(slug, time.monotonic() - began)
        if p.returncode and not stopped:
            tail = (logs / f"{slug}.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"job: training {slug} failed ({p.returncode}):\n{tail}")
    return wall


def train_rows(rows: list[str], data: dict[str, Path], plan: Plan, concurrent: bool,
               work: Path, log: Log) -> dict[str, Path]:  # fmt: skip
    """1 epoch of every row, timed; then every row resumed to the epochs that fit the
    deadline (the same for every row). Returns each row's run folder."""
    from companion.training.train import read_metrics

    runs = {s: work / "runs" / s for s in rows}
    train_end = log.t0 + plan.deadline_s - plan.reserve_s
    hard_stop = log.t0 + plan.deadline_s - 0.6 * plan.reserve_s
    groups = [rows] if concurrent else [[s] for s in rows]

    def phase(epochs: int, resume: bool) -> dict[str, float]:
        wall = {}
        for group in groups:
            jobs = [(s, _train_cmd(s, data[ROWS[s][1]], runs[s], epochs, resume, plan))
                    for s in group]  # fmt: skip
            wall.update(run_group(jobs, plan, work / "logs", hard_stop, log))
        return wall

    wall1 = phase(1, False)
    first = {s: read_metrics(runs[s])[0] for s in rows}
    for s in rows:
        log(f"{s}: epoch 1 in {first[s]['elapsed_s']:.1f} s ({wall1[s]:.1f} s with start-up), "
            f"{first[s]['samples_per_s']:.0f} samples/s")  # fmt: skip
    agg = sum(first[s]["samples_per_s"] for s in rows)
    log(f"first epoch: {agg:.0f} samples/s in all"
        + (" (rows concurrent)" if concurrent and len(rows) > 1 else ""))  # fmt: skip
    # what a call costs besides its epochs (start-up, loading the cache, the final save), and
    # one epoch, for the slowest row (concurrent) or all rows together (one after another)
    combine = max if concurrent else sum
    overhead = combine(wall1[s] - first[s]["elapsed_s"] for s in rows)
    epoch_s = combine(first[s]["elapsed_s"] for s in rows)
    left = train_end - time.monotonic() - overhead
    fit = 1 + int(0.92 * left / epoch_s) if left > 0 else 1
    epochs = max(plan.min_epochs, min(plan.max_epochs, fit))
    log.state["train_plan"] = {"epoch_s": epoch_s, "overhead_s": overhead, "left_s": left,
                               "epochs": epochs, "concurrent": concurrent,
                               "first_epoch_samples_per_s": agg}  # fmt: skip
    log(f"{left:.0f} s left for training: {epochs} epochs of about {epoch_s:.1f} s")
    if epochs > 1:
        phase(epochs, True)
    for s in rows:
        m = read_metrics(runs[s])
        log.state["rows"][s] = {
            "epochs": m[-1]["epoch"], "trained_s": m[-1]["elapsed_s"],
            "first_epoch_samples_per_s": m[0]["samples_per_s"],
            "last_epoch_samples_per_s": m[-1]["samples_per_s"],
            "val": {k: v for k, v in m[-1].items() if k.startswith("val_")},
            "interrupted": not (runs[s] / "model.yaml").exists(),
        }  # fmt: skip
        log(
            f"{s}: {m[-1]['epoch']} epochs, {m[-1]['elapsed_s']:.0f} s of training, "
            f"val num MAE {m[-1]['val_num_mae']:.3f}, cat acc {m[-1]['val_cat_acc']:.3f}"
        )
    return runs


# --- 6. export --------------------------------------------------------------------------------


def trained_model(run: Path, data: Path):
    """(model on the CPU in eval mode, its model.yaml dict) of a run; from its last checkpoint
    when training was interrupted before the final save."""
    import yaml

    from companion.config import Config
    from companion.data.dataset import open_dataset
    from companion.models.vae import SpectralVAE, load_model, load_weights
    from companion.training.train import read_metrics

    if (run / "model.yaml").exists():
        return load_model(run)
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    written = yaml.safe_load((run / "config.yaml").read_text())
    settings, metrics = written["run"], read_metrics(run)
    cfg = Config.from_dict(written).replace(train={"epochs": metrics[-1]["epoch"]})
    n_notes = 6 if settings["notes"] == "six" else 1
    model = SpectralVAE(cfg, settings["encoding"], n_notes, settings["regression"])
    model.load_state_dict(load_weights(run / "checkpoints" / pointer["epoch"]))
    stats = open_dataset(data).stats
    meta = {"config": cfg.to_dict(), "encoding": settings["encoding"], "notes": n_notes,
            "regression": settings["regression"],
            "stats": {k: stats[k] for k in ("mean_db", "std_db")}, "settings": settings,
            "epochs": metrics[-1]["epoch"], "trained_s": metrics[-1]["elapsed_s"],
            "final": metrics[-1], "counts": stats["splits"],
            "interrupted": "stopped by the deadline: the last checkpoint's weights"}  # fmt: skip
    return model.eval(), meta


def split_inputs(model, meta: dict, data: Path, n: int):
    """(normalised test spectrograms (n, model.notes, H, W) float32, their voices (n, 145))
    from a dataset (one-note models take note (60, 85) of a six-note dataset)."""
    import numpy as np
    import torch

    from companion.data.dataset import open_dataset
    from companion.evaluation.paper_table import main_note

    info = open_dataset(data)
    spec = np.load(info.path / "test.spec.npy", mmap_mode="r")[: n or None]
    values = np.load(info.path / "test.voices.npy").astype(np.int64)[: n or None]
    x = torch.from_numpy(np.asarray(spec, np.float32)) - meta["stats"]["mean_db"]
    x = x / meta["stats"]["std_db"]
    if model.notes == 1 and x.shape[1] != 1:
        k = main_note(info)
        x = x[:, k : k + 1]
    return x, values


def infer_voices(model, x, batch: int = 64):
    """Decoded voices (N, 145) int64 of the network's answer to spectrograms x (CPU)."""
    import numpy as np
    import torch

    with torch.no_grad():
        u = torch.cat([model.infer(x[i : i + batch]) for i in range(0, len(x), batch)])
    return np.asarray(model.rep.decode(u.float().numpy()), np.int64)


def inference_state(model, fp16: bool) -> dict:
    """The state dict without the decoder; floating tensors in fp16 when asked."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("decoder."):
            continue
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if fp16 and v.is_floating_point() else v
    return out


def rounded(model):
    """A copy of the model whose floating weights went through fp16 (as loading fp16 weights
    into the fp32 network does)."""
    import copy

    import torch

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for v in twin.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    return twin


def compare_fp16(model, meta: dict, data: Path, n: int) -> dict:
    """Voices decoded by fp32 and fp16 weights (fp32 arithmetic on the CPU, as users run it)
    on the first n test voices: the share of identical voices and of differing parameters."""
    x, _ = split_inputs(model, meta, data, n)
    a, b = infer_voices(model, x), infer_voices(rounded(model), x)
    same = (a == b).all(axis=1)
    return {"voices": len(a), "identical_voices": float(same.mean()),
            "differing_parameters": float((a != b).mean())}  # fmt: skip


def export(runs: dict[str, Path], data: dict[str, Path], plan: Plan, out: Path,
           log: Log) -> dict:  # fmt: skip
    """OUT/models.tar.NNN (parts under 15 MiB): per row, weights.safetensors.gz (inference
    only), model.yaml and metrics.jsonl. A row's weights are fp16 where fp16 weights decode the
    same voices as fp32 on ``check_voices`` test voices (>= 99 %), else fp32; while the archive
    would not fit, rows go to fp16 (SHRINK_ORDER), then rows' weights are left out (DROP_ORDER).
    Returns {slug: (model, meta, fp16)}."""
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    import yaml
    from safetensors.torch import save as save_tensors

    from companion.io import write_atomic

    models, fp16 = {}, {}
    for s, run in runs.items():
        model, meta = trained_model(run, data[ROWS[s][1]])
        check = compare_fp16(model, meta, data[ROWS[s][1]], plan.check_voices)
        models[s], fp16[s] = (model, meta), check["identical_voices"] >= 0.99
        log.state["rows"].setdefault(s, {})["fp16_check"] = check
        log(f"{s}: fp16 weights decode {check['identical_voices']:.1%} of {check['voices']} "
            f"test voices as fp32 weights do ({check['differing_parameters']:.2%} of parameters "
            f"differ): {'fp16' if fp16[s] else 'fp32'}")  # fmt: skip
    packed: dict[tuple[str, bool], bytes] = {}  # (row, fp16) -> gzipped safetensors

    def pack(rows_precisions) -> None:
        # gzip (zlib) releases the GIL: rows compress in parallel
        todo = [k for k in rows_precisions if k not in packed]
        blobs = [save_tensors(inference_state(models[s][0], h)) for s, h in todo]
        with ThreadPoolExecutor(max(1, len(todo))) as pool:
            for k, z in zip(todo, pool.map(lambda b: gzip.compress(b, 6, mtime=0), blobs)):
                packed[k] = z

    dropped: list[str] = []
    while True:
        pack([(s, fp16[s]) for s in models if s not in dropped])
        size = sum(len(packed[(s, fp16[s])]) for s in models if s not in dropped)
        if -(-size // PART_BYTES) <= MAX_PARTS and size <= MAX_TOTAL - 2**20:
            break
        half = next((s for s in SHRINK_ORDER if s in models and not fp16[s]), None)
        if half is not None:
            fp16[half] = True
            log(f"weights {size / 2**20:.1f} MiB do not fit: {half} in fp16")
            continue
        drop = next((s for s in DROP_ORDER if s in models and s not in dropped), None)
        if drop is None or len(dropped) + 1 >= len(models):
            raise SystemExit(f"job: the weights ({size / 2**20:.1f} MiB) cannot come back")
        dropped.append(drop)
        log(f"weights {size / 2**20:.1f} MiB do not fit: leaving out {drop}'s weights")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for s, (_, meta) in models.items():
            shipped = _shipped_meta(meta, fp16[s], s in dropped)
            files = {"model.yaml": yaml.safe_dump(shipped, sort_keys=False).encode(),
                     "metrics.jsonl": (runs[s] / "metrics.jsonl").read_bytes()}  # fmt: skip
            if s not in dropped:
                files["weights.safetensors.gz"] = packed[(s, fp16[s])]
            for name, blob in files.items():
                info = tarfile.TarInfo(f"{s}/{name}")
                info.size, info.mtime = len(blob), int(time.time())
                tar.addfile(info, io.BytesIO(blob))
    blob = buf.getvalue()
    for old in out.glob("models.tar.*"):
        old.unlink()
    names = []
    for i in range(0, len(blob), PART_BYTES):
        names.append(f"models.tar.{i // PART_BYTES:03d}")
        write_atomic(out / names[-1], blob[i : i + PART_BYTES])
    log.state["archive"] = {"parts": names, "bytes": len(blob),
                            "sha256": hashlib.sha256(blob).hexdigest(), "dropped": dropped,
                            "precision": {s: "fp16" if h else "fp32"
                                          for s, h in fp16.items()}}  # fmt: skip
    log(
        f"models.tar: {len(blob) / 2**20:.1f} MiB in {len(names)} parts ("
        + ", ".join(f"{s} {'fp16' if h else 'fp32'}" for s, h in fp16.items())
        + (f"; weights left out: {', '.join(dropped)}" if dropped else "")
        + ")"
    )
    return {s: (m, meta, fp16[s]) for s, (m, meta) in models.items()}


def _shipped_meta(meta: dict, fp16: bool, dropped: bool) -> dict:
    meta = {k: v for k, v in meta.items() if k != "weights"}  # unpack writes a new index
    meta["inference_only"] = True  # encoder, latent flow and regression; no decoder
    meta["precision"] = "fp16" if fp16 else "fp32"
    if dropped:
        meta["weights_left_out"] = "did not fit what comes back from the device"
    return meta


# --- 7. evaluate ------------------------------------------------------------------------------


class _Renderers:
    """Picklable ``setup`` for pool_map: one engine per worker."""

    def __init__(self, audio):
        self.audio = audio

    def __call__(self):
        from companion.data.render import Renderer

        return Renderer(self.audio)


def _metrics_chunk(renderer, job):
    """Audio metrics of every row's voices against the original, for a chunk of test voices."""
    from companion.dx7.voice import Voice
    from companion.evaluation.metrics import audio_metrics

    originals, preds = job
    out = []
    for i, v in enumerate(originals):
        target = renderer.render(Voice.from_values(v))
        out.append({name: audio_metrics(target, renderer.render(Voice.from_values(p[i])))
                    for name, p in preds.items()})  # fmt: skip
    return out


def evaluate(models: dict, data: dict[str, Path], plan: Plan, gpu: str, out: Path,
             work: Path, log: Log) -> dict:  # fmt: skip
    """The network's answer of every row on the first ``test_voices`` test voices: the paper
    table's parameter and audio metrics, through the table writer of paper_table; the weights
    are those exported (fp16-rounded where shipped so)."""
    import numpy as np

    from companion.data.dataset import open_dataset
    from companion.data.render import pool_map
    from companion.evaluation.metrics import parameter_metrics
    from companion.evaluation.paper_table import PAPER_ROWS, Measured
    from companion.io import write_atomic

    dataset = data["six"] if "six" in data else data["single"]
    info = open_dataset(dataset)
    n = plan.test_voices or info.stats["splits"]["test"]
    preds, sources = {}, {}
    for s, (model, meta, fp16) in models.items():
        name = next(r[3] for r in PAPER_ROWS if r[:3] == ROWS[s])
        x, values = split_inputs(model, meta, dataset, n)
        preds[name] = infer_voices(rounded(model) if fp16 else model, x)
        speed = log.state["rows"].get(s, {}).get("first_epoch_samples_per_s", 0)
        sources[name] = (f"{s} ({model.cfg.name} config, {gpu}, {meta['epochs']} epochs, "
                         f"{meta.get('trained_s', 0) / 60:.1f} min of training, "
                         f"{'fp16' if fp16 else 'fp32'} weights, "
                         f"{speed:.0f} samples/s in epoch 1)")  # fmt: skip
    n = len(values)
    chunk = 8
    jobs = [(values[i : i + chunk], {k: p[i : i + chunk] for k, p in preds.items()})
            for i in range(0, n, chunk)]  # fmt: skip
    per_voice = [m for part in pool_map(_metrics_chunk, jobs, _Renderers(info.audio),
                                        plan.processes, count=lambda j: len(j[0]), total=n,
                                        progress=False) for m in part]  # fmt: skip
    results = {}
    for name, pred in preds.items():
        per = parameter_metrics(values, pred)
        for key in per_voice[0][name]:
            per[key] = np.array([m[name][key] for m in per_voice])
        results[name] = per
    labels = np.load(info.path / "test.labels.npy")[:n]
    ids = np.load(info.path / "test.ids.npy")[:n]
    tables = work / "eval"
    summary = Measured(results, labels, sources, info, ids, preds, values, None).tables(tables)
    write_atomic(out / "table_main.md", (tables / "table_main.md").read_bytes())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(tables.iterdir()):
            tar.add(f, arcname=f"eval/{f.name}")
    write_atomic(out / "eval.tar.gz", buf.getvalue())
    means = {k: v["all/mean"] for k, v in summary.items()}
    log.state["evaluation"] = {"test_voices": n, "dataset": info.path.name, "means": means}
    for name, m in means.items():
        log(
            f"{name}: SC {m['sc']:.3f}, log STFT MAE {m['log_stft_mae']:.3f}, MFCC MAE "
            f"{m['mfcc_mae']:.2f}, num MAE {m['num_mae']:.3f}, cat acc {m['cat_acc']:.3f}"
        )
    return means


# --- the job ----------------------------------------------------------------------------------


def check_out(out: Path) -> list[tuple[str, int]]:
    """The files in OUT against what comes back from the device: at most 8, each under 16 MiB,
    64 MiB in all, plain names."""
    files = sorted((p.name, p.stat().st_size) for p in out.iterdir() if p.is_file())
    bad = [n for n, _ in files if not all(c.isalnum() or c in "._-" for c in n)]
    if len(files) > 8 or any(s >= 16 * 2**20 for _, s in files) or bad or \
            sum(s for _, s in files) > 64 * 2**20:  # fmt: skip
        raise SystemExit(f"job: {out} would not come back whole: {files}")
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--job", choices=tuple(JOBS), required=True)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="320 voices, 2 epochs, on the GPU")
    mode.add_argument("--smoke", action="store_true", help="smoke config on the CPU")
    p.add_argument("--out", default=os.environ.get("OUT"), help="default: $OUT")
    p.add_argument("--work", help="datasets and runs (default: build/device/work)")
    p.add_argument("--wheels", help="wheels to install (default on the device: "
                   "build/device/wheels; none with --smoke)")  # fmt: skip
    p.add_argument(
        "--cartridges",
        default=str(REPO / "build/device/cartridges/library.tar.xz"),
        help="library.tar.xz or a folder of .syx files",
    )
    p.add_argument("--rows", nargs="+", choices=tuple(ROWS), help="default: the job's")
    types = {"str": str, "int": int, "float": float}
    for f in dataclasses.fields(Plan):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=types[str(f.type)],
                       help="default: the mode's")  # fmt: skip
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))  # companion.io (no dependencies) writes job.json from the start
    if not args.out:
        p.error("--out is needed where $OUT is not set")
    mode_name = "smoke" if args.smoke else "check" if args.check else "real"
    plan = make_plan(args.job, mode_name)
    for f in dataclasses.fields(Plan):
        value = getattr(args, f.name)
        if value is not None:
            plan = dataclasses.replace(plan, **{f.name: type(getattr(plan, f.name))(value)})
    out = Path(args.out)
    work = Path(args.work) if args.work else REPO / "build/device/work"
    wheels = Path(args.wheels) if args.wheels else (None if args.smoke else
                                                   REPO / "build/device/wheels")  # fmt: skip
    rows = args.rows or JOBS[args.job]
    log = Log(out)
    log.state.update({"job": args.job, "mode": mode_name, "rows": {},
                      "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                      "plan": dataclasses.asdict(plan)})  # fmt: skip
    log(f"job {args.job} ({mode_name}): rows {', '.join(rows)}; {plan}")
    try:
        with log.stage("install"):
            env = install(wheels, log)
            log.state["environment"] = env
        gpu = env["gpu"] if plan.device == "cuda" else "CPU"
        if plan.device == "cuda" and not env["gpu"]:
            raise SystemExit("job: no CUDA GPU here (use --smoke on a CPU)")
        here = work / (f"{args.job}-{mode_name}")
        if here.exists():  # runs of an earlier call on this machine: start over
            import shutil

            shutil.rmtree(here)
        with log.stage("presets"):
            db = presets_db(Path(args.cartridges), work, log)
        with log.stage("datasets"):
            layouts = sorted({ROWS[s][1] for s in rows}, key=["single", "six"].index)
            data = {notes: build_dataset(db, plan, notes, work, log) for notes in layouts}
        concurrent = True
        if len(rows) > 1 and plan.probe_s > 0:
            with log.stage("probe"):
                log.state["probe"] = probe(rows, plan, here, log)
                concurrent = log.state["probe"]["chosen"] == "concurrent"
        with log.stage("train"):
            runs = train_rows(rows, data, plan, concurrent, here, log)
        with log.stage("export"):
            models = export(runs, data, plan, out, log)
        with log.stage("evaluate"):
            evaluate(models, data, plan, gpu, out, here, log)
    except BaseException as e:  # the reason goes into job.log too: it is what comes back
        import traceback

        log("FAILED: " + "".join(traceback.format_exception_only(e)).strip()[-3000:])
        raise
    finally:
        log.state["wall_s"] = round(log.elapsed(), 1)
        log(
            f"job wall time {log.elapsed():.0f} s (device time adds the machine's start and the "
            "transfers: see the run reply's lease.held_s)"
        )
        log.save()
    files = check_out(out)
    log("OUT: " + ", ".join(f"{n} {s / 2**20:.2f} MiB" for n, s in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
