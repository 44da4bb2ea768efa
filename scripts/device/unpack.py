"""What the device job brought back ($OUT) -> model folders the project loads.

    python scripts/device/unpack.py FROM --out FOLDER [--row ROW]

FROM holds models.tar.000 ..., job.json, job.log, table_main.md and eval.tar.gz (the
run reply's files_at). The parts are joined and checked against job.json's sha256. A job of one
row (``--job paper``) gives one model folder, FOLDER; a job of several rows (``--job table``)
gives FOLDER/<row>/ for each row whose weights came back (numonly, numcat, numcatpp,
numcatpp-mlp, numcatpp-six), or with ``--row`` that row alone as FOLDER. Each model folder
holds the weights as the project saves them (safetensors shards under 16 MiB,
model.index.json), model.yaml (with ``inference_only: true``, the precision, and
``device_run``: GPU, epochs, training time, samples/s, fp16 check) and the run's metrics.jsonl.
FOLDER/device-run/ keeps job.json, job.log and the evaluation tables.

The weights hold the encoder, the latent flow and the regression, not the decoder (not needed
to program, interpolate or generate): ``load_model`` must accept such a folder (see
scripts/device/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import yaml
from safetensors.torch import load as load_tensors

from companion.io import atomic_dir, write_atomic
from companion.models.weights import META, index_digest, save_weights

REPORTS = "device-run"


def read_archive(src: Path) -> tuple[dict, dict[str, dict[str, bytes]]]:
    """(job.json, {row: {file name: bytes}}) of a device job's output folder; a one-line
    ValueError when a part is missing or the archive differs from what the job wrote."""
    try:
        job = json.loads((src / "job.json").read_text())
    except FileNotFoundError:
        raise ValueError(f"{src}: no job.json (not what scripts/device/job.py writes)") from None
    archive = job.get("archive")
    if not archive:
        raise ValueError(f"{src / 'job.json'}: the job wrote no weights (see {src / 'job.log'})")
    try:
        blob = b"".join((src / name).read_bytes() for name in archive["parts"])
    except FileNotFoundError as e:
        raise ValueError(f"{e.filename}: missing (named by job.json)") from None
    if hashlib.sha256(blob).hexdigest() != archive["sha256"]:
        raise ValueError(f"{src}: models.tar.* differ from what the job wrote (sha256)")
    rows: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        for member in tar.getmembers():
            row, _, name = member.name.partition("/")
            if member.isfile() and name and "/" not in name:
                rows.setdefault(row, {})[name] = tar.extractfile(member).read()
    return job, rows


def write_model(files: dict[str, bytes], job: dict, row: str, folder: Path) -> None:
    """One model folder: weights re-saved by the project's writer, model.yaml naming them."""
    meta = yaml.safe_load(files["model.yaml"])
    state = load_tensors(gzip.decompress(files["weights.safetensors.gz"]))
    facts = job.get("rows", {}).get(row, {})
    plan = job.get("train_plan", {})
    meta["device_run"] = {
        "gpu": job.get("environment", {}).get("gpu"), "job": job.get("job"),
        "mode": job.get("mode"), "started": job.get("started"),
        "epochs": facts.get("epochs"), "trained_s": facts.get("trained_s"),
        "first_epoch_samples_per_s": facts.get("first_epoch_samples_per_s"),
        "rows_concurrent": plan.get("concurrent"),
        "aggregate_first_epoch_samples_per_s": plan.get("first_epoch_samples_per_s"),
        "fp16_check": facts.get("fp16_check"), "job_wall_s": job.get("wall_s"),
        "stages_s": job.get("stages"),
    }  # fmt: skip
    with atomic_dir(folder) as tmp:
        save_weights(state, tmp)
        meta["weights"] = index_digest(tmp)
        write_atomic(tmp / META, yaml.safe_dump(meta, sort_keys=False))
        write_atomic(tmp / "metrics.jsonl", files["metrics.jsonl"])


def unpack(src: str | Path, out: str | Path, row: str | None = None) -> list[Path]:
    """Model folders from a device job's output (``row``: that row alone, as ``out``);
    returns them."""
    src, out = Path(src), Path(out)
    job, rows = read_archive(src)
    with_weights = [r for r, f in rows.items() if "weights.safetensors.gz" in f]
    if row is not None and row not in with_weights:
        raise ValueError(f"{src}: no weights of row {row!r} (there: {', '.join(with_weights)})")
    made = []
    for name in [row] if row else with_weights:
        folder = out if row or len(rows) == 1 else out / name
        write_model(rows[name], job, name, folder)
        made.append(folder)
    reports = out / REPORTS
    reports.mkdir(parents=True, exist_ok=True)
    for name in ("job.json", "job.log", "table_main.md"):
        if (src / name).exists():
            write_atomic(reports / name, (src / name).read_bytes())
    if (src / "eval.tar.gz").exists():
        with tarfile.open(src / "eval.tar.gz", "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    name = Path(member.name).name
                    write_atomic(reports / name, tar.extractfile(member).read())
    for name in set(rows) - set(with_weights):  # weights left out on the device: metrics only
        write_atomic(reports / f"{name}.metrics.jsonl", rows[name]["metrics.jsonl"])
        write_atomic(reports / f"{name}.model.yaml", rows[name]["model.yaml"])
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="the folder of the job's files ($OUT as it came back)")
    p.add_argument("--out", required=True, help="model folder (one row) or folder of rows")
    p.add_argument("--row", help="only this row, as the model folder --out")
    args = p.parse_args(argv)
    try:
        made = unpack(args.src, args.out, args.row)
    except ValueError as e:
        print(f"unpack: error: {e}", file=sys.stderr)
        return 1
    for folder in made:
        print(f"{folder}: model ({yaml.safe_load((folder / META).read_text())['precision']})")
    print(f"{Path(args.out) / REPORTS}: job.json, job.log and the evaluation tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
