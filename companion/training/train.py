"""One training loop for the CPU, one GPU and several GPUs (``torchrun ... -m companion train``).

A run folder holds::

    config.yaml            the full config and the run's settings (written at the start)
    checkpoints/latest.json -> checkpoints/epoch-NNNN/ (weights + optimizer/scheduler/RNG state)
    metrics.jsonl          one line of losses and validation metrics per epoch
    logs/                  TensorBoard (losses, validation MAE / accuracy, spectrograms)
    model.yaml, model-*.safetensors   the final model (what ``load_model`` reads)

Checkpoints are written to a new folder and then pointed at, so an interruption at any moment
leaves the previous one intact; ``resume=True`` continues from it bit for bit on the CPU. A
resume checks the run's config.yaml first: another representation, note layout, regression,
config (the number of epochs aside) or dataset (by its key, so a moved dataset is the same) is
a one-line error; a finished run is left as it is. metrics.jsonl is rewritten whole at each
epoch, and on resume cut back to the checkpoint's epochs.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from companion.config import Config, get_config
from companion.data.dataset import DeviceSplit, open_dataset
from companion.dx7.params import ENCODINGS, representation
from companion.io import atomic_dir, write_atomic
from companion.models.vae import SpectralVAE, kl_divergence, preset_loss
from companion.models.weights import load_weights, read_meta, save_model, save_weights


@dataclass
class Dist:
    """Where this process stands among torchrun's processes (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(device: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available")
    if world == 1:
        return Dist(device=torch.device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
    return Dist(dist.get_rank(), world, dev)


def _schedules(cfg, epoch: int) -> tuple[float | None, float]:
    """(learning rate to set during warm-up and at its end, else None: ReduceLROnPlateau has
    it; KL weight) for an epoch."""
    t = cfg.train
    lr = None
    if epoch <= t.lr_warmup_epochs:
        lr = t.lr * (0.1 + 0.9 * min(1.0, epoch / max(t.lr_warmup_epochs, 1)))
    ramp = min(1.0, epoch / max(t.beta_warmup_epochs, 1))
    return lr, t.beta_start + (t.beta - t.beta_start) * ramp


def _losses(model, x, params, mask, cfg, rep, sample=True) -> dict[str, torch.Tensor]:
    out = model(x, sample=sample)
    rec = F.mse_loss(out["x_hat"].float(), x)
    kl = kl_divergence(out)
    pre, parts = preset_loss(out["u"], params, mask, rep, cfg.train.ce_weight)
    return {"rec": rec, "kl": kl, "params": pre, **parts, "u": out["u"], "x_hat": out["x_hat"]}


@torch.no_grad()
def evaluate_split(model, data: DeviceSplit, cfg, rep, batch_size: int, autocast) -> dict:
    """Validation losses and parameter metrics: MAE of numerical parameters on their real
    steps (as a fraction of each range) and accuracy of categorical ones, in the encoding's
    own terms, after decoding to valid voices."""
    model.eval()
    sums, n, err, right = {}, 0, [], []
    num = rep.numerical_params
    cat = [c.param.index for c in rep.categorical]
    maxima = torch.as_tensor(rep.numerical_max, dtype=torch.float64)
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        x, params, mask = data.batch(idx)
        with autocast:
            parts = _losses(model, x, params, mask, cfg, rep, sample=False)
        for k in ("rec", "kl", "params", "mse", "ce"):
            sums[k] = sums.get(k, 0.0) + float(parts[k]) * len(idx)
        n += len(idx)
        decoded = torch.from_numpy(rep.decode(parts["u"].float().cpu().numpy()))
        true = torch.from_numpy(data.values[idx.numpy()])
        err.append(((decoded[:, num] - true[:, num]).abs() / maxima).mean(1))
        if cat:
            right.append((decoded[:, cat] == true[:, cat]).double().mean(1))
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["num_mae"] = float(torch.cat(err).mean()) if err else float("nan")
    out["cat_acc"] = float(torch.cat(right).mean()) if right else float("nan")
    model.train()
    return out


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(out: Path, model, optimizer, scheduler, epoch: int, extra: dict) -> None:
    folder = out / "checkpoints" / f"epoch-{epoch:04d}"
    with atomic_dir(folder) as tmp:  # a folder left by a killed save is replaced whole
        save_weights(model, tmp)
        buf = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch, "rng": _rng_state(), **extra}, buf)  # fmt: skip
        write_atomic(tmp / "state.pt", buf.getvalue())
    write_atomic(out / "checkpoints" / "latest.json", json.dumps({"epoch": folder.name}).encode())
    for old in (out / "checkpoints").glob("epoch-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def _latest(out: Path) -> Path | None:
    pointer = out / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    return out / "checkpoints" / json.loads(pointer.read_text())["epoch"]


def _read_run_config(out: Path) -> dict:
    path = out / "config.yaml"
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a run's config ({str(e).splitlines()[0]})") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("config"), dict)
            and isinstance(saved.get("run"), dict)):  # fmt: skip
        raise ValueError(f"{path}: not a run's config (needs config and run sections)")
    return saved


def _differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b])
                for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]  # fmt: skip
    a, b = (list(x) if isinstance(x, tuple) else x for x in (a, b))
    return [] if a == b else [prefix.rstrip(".")]


def _check_resume(out: Path, cfg: Config, settings: dict) -> None:
    """A one-line ValueError when ``out``'s run was started with other settings than these;
    only the number of epochs may change on resume (to train longer)."""
    saved = _read_run_config(out)
    run = saved["run"]
    names = {"encoding": "--representation", "notes": "--notes (the dataset's notes)",
             "regression": "--regression"}  # fmt: skip
    for key, option in names.items():
        if run.get(key) != settings[key]:
            raise ValueError(f"{out}: the run was started with {key} {run.get(key)!r}, not "
                             f"{settings[key]!r}; resume with the same {option} or use "
                             "another --out")  # fmt: skip
    old, new = dict(saved["config"]), cfg.to_dict()
    for c in (old, new):
        c["train"] = {k: v for k, v in dict(c.get("train") or {}).items() if k != "epochs"}
    diff = _differences(old, new)
    if diff:
        raise ValueError(f"{out}: the run was started with config {old.get('name')!r}, which "
                         f"differs in {', '.join(diff[:3])}; resume with the same --config or "
                         "use another --out")  # fmt: skip
    same = (run.get("dataset") == settings["dataset"] if run.get("dataset") and
            settings["dataset"] else run.get("data") == settings["data"])  # fmt: skip
    if not same:
        raise ValueError(f"{out}: the run was trained on other data ({run.get('data')}); "
                         "resume with the same --data or use another --out")  # fmt: skip


def _finished(out: Path, epochs: int) -> tuple[int, dict] | None:
    """(epochs trained, final metrics) when ``out`` holds a finished model of at least
    ``epochs`` epochs; None otherwise (a model.yaml of an interrupted save does not count)."""
    try:
        meta = read_meta(out)
    except ValueError:
        return None
    done = int(meta.get("epochs", 0))
    if done < epochs:
        return None
    lines = _read_metrics_lines(out)
    return done, meta.get("final") or (lines[-1] if lines else {})


def train(config: str, data: str | os.PathLike, out: str | os.PathLike,
          encoding: str = "numcat++", notes: str | None = None, epochs: int | None = None,
          resume: bool = False, device: str = "auto", regression: str = "flow",
          progress: bool = True, max_batches: int | None = None) -> dict:  # fmt: skip
    """Train a model on a dataset folder; returns the last epoch's metrics.

    Args:
        config: smoke, small or paper (the dataset must have been built with the same audio
            settings).
        encoding: numonly, numcat or numcat++.
        notes: single or six; checked against the dataset (None: the dataset's).
        epochs: total epochs (default: the config's).
        resume: continue from the run folder's last checkpoint.
        max_batches: stop each epoch after this many batches (benchmarks).
    """
    cfg = get_config(config)
    if epochs is not None:
        cfg = cfg.replace(train={"epochs": int(epochs)})
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown representation {encoding!r}; choose one of {ENCODINGS}")
    info = open_dataset(data)
    if info.audio != cfg.audio:
        raise ValueError(
            f"{data}: built with config {info.config!r}, whose spectrograms differ "
            f"from config {config!r}; build a dataset with --config {config}"
        )
    if notes is not None and notes != info.notes:
        raise ValueError(f"{data}: holds '{info.notes}' notes, not '{notes}'")
    for split in ("train", "valid"):
        if not info.stats["splits"].get(split):
            raise ValueError(f"{data}: the {split} split is empty; build the dataset with a "
                             "larger --limit")  # fmt: skip
    if regression not in ("flow", "mlp"):
        raise ValueError(f"unknown regression {regression!r}; choose flow or mlp")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, expected a run folder")
    settings = {"encoding": encoding, "notes": info.notes, "regression": regression,
                "data": str(Path(data).resolve()), "dataset": info.header.get("key"),
                "world_size": int(os.environ.get("WORLD_SIZE", "1"))}  # fmt: skip
    if (out / "config.yaml").exists():
        if not resume:
            raise ValueError(f"{out}: a run is already there; pass --resume or another --out")
        _check_resume(out, cfg, settings)
        finished = _finished(out, cfg.train.epochs)
        if finished is not None:
            print(
                f"companion: notice: {out} is a finished run of {finished[0]} epochs; nothing "
                "to resume (pass --epochs N with N larger to train on)",
                file=sys.stderr,
            )
            return finished[1]
    d = _setup(device)
    t = cfg.train
    torch.manual_seed(t.seed)
    np.random.seed(t.seed)
    random.seed(t.seed)
    rep = representation(encoding)
    n_notes = 6 if info.notes == "six" else 1
    model = SpectralVAE(cfg, encoding, n_notes, regression).to(d.device)
    cuda = d.device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=t.plateau_factor, patience=t.plateau_patience
    )
    start, elapsed, last = 0, 0.0, {}
    if resume and (ckpt := _latest(out)) is not None:
        model.load_state_dict(load_weights(ckpt))
        state = torch.load(ckpt / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, elapsed = state["epoch"] + 1, state.get("elapsed_s", 0.0)
        _set_rng_state(state["rng"])
        # a kill between an epoch's metrics line and its checkpoint left a line that this run
        # writes again: keep only the epochs the checkpoint holds
        lines = _read_metrics_lines(out)
        kept = [m for m in lines if m.get("epoch", 0) <= start]
        if d.main and kept != lines:
            _write_metrics(out, kept)
        last = kept[-1] if kept and kept[-1].get("epoch") == start else {}
    elif d.main:
        out.mkdir(parents=True, exist_ok=True)
        text = cfg.to_yaml() + yaml.safe_dump({"run": settings}, sort_keys=False)
        write_atomic(out / "config.yaml", text)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if cuda else None
        )
    train_data = DeviceSplit(info.path, "train", encoding, d.device)
    valid_data = DeviceSplit(info.path, "valid", encoding, d.device)
    per_rank = max(1, t.batch_size // d.world)
    if len(train_data) < per_rank * d.world:
        raise ValueError(
            f"{data}: {len(train_data)} training voices, fewer than one batch "
            f"({t.batch_size}); build a larger dataset"
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    writer = _writer(out) if d.main else None
    for epoch in range(start, t.epochs):
        began = time.perf_counter()
        lr, beta = _schedules(cfg, epoch)
        if lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr
        perm = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(
            t.seed * 100_003 + epoch))  # fmt: skip
        perm = perm[d.rank :: d.world]
        steps = len(perm) // per_rank
        if max_batches is not None:
            steps = min(steps, max_batches)
        sums = {}
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch",
                   disable=not (progress and d.main), leave=False)  # fmt: skip
        model.train()
        for step in bar:
            x, params, mask = train_data.batch(perm[step * per_rank : (step + 1) * per_rank])
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                parts = _losses(net, x, params, mask, cfg, rep)
            loss = parts["rec"] + beta * parts["kl"] + t.params_weight * parts["params"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch + 1}: the loss is {float(loss)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k in ("rec", "kl", "params"):
                sums[k] = sums.get(k, 0.0) + float(parts[k].detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.4f}")
        train_metrics = {k: v / max(steps, 1) for k, v in sums.items()}
        val = evaluate_split(model, valid_data, cfg, rep, per_rank, autocast)
        val_loss = val["rec"] + beta * val["kl"] + t.params_weight * val["params"]
        if epoch >= t.lr_warmup_epochs:
            scheduler.step(val_loss)
        elapsed += time.perf_counter() - began
        last = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "beta": beta,
                "samples_per_s": steps * per_rank * d.world / (time.perf_counter() - began),
                "elapsed_s": elapsed, **{f"train_{k}": v for k, v in train_metrics.items()},
                **{f"val_{k}": v for k, v in val.items()}, "val_loss": val_loss}  # fmt: skip
        if d.main:  # the metrics line first: a kill before the checkpoint is undone on resume
            _log(writer, out, last, model, valid_data, autocast)
            _save_checkpoint(out, model, optimizer, scheduler, epoch, {"elapsed_s": elapsed})
    if d.main:
        save_model(model, out, info.stats, {"settings": settings, "epochs": t.epochs,
                   "trained_s": elapsed, "final": last,
                   "counts": info.stats["splits"]})  # fmt: skip
        if writer is not None:
            writer.close()
    if d.world > 1:
        dist.barrier()
    return last


def _writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a run must not die for its logs
        return None
    return SummaryWriter(str(out / "logs"))


def _log(writer, out: Path, metrics: dict, model, valid: DeviceSplit, autocast) -> None:
    _write_metrics(out, [*_read_metrics_lines(out), metrics])
    if writer is None:
        return
    step = metrics["epoch"]
    for key, value in metrics.items():
        if key != "epoch":
            writer.add_scalar(key.replace("_", "/", 1), value, step)
    model.eval()
    with torch.no_grad(), autocast:
        x, _, _ = valid.batch(torch.arange(min(4, len(valid))))
        x_hat = model(x, sample=False)["x_hat"].float()
    model.train()
    for k in range(len(x)):  # input above, reconstruction below, first note
        pair = torch.cat([x[k, 0], x_hat[k, 0]], dim=0).flip(0)
        pair = (pair - pair.min()) / (pair.max() - pair.min() + 1e-8)
        writer.add_image(f"spectrogram/{k}", pair[None], step)
    writer.flush()


def _read_metrics_lines(out: Path) -> list[dict]:
    """metrics.jsonl's lines ([] without the file); a torn last line (a kill while an older
    version appended) is dropped."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def _write_metrics(out: Path, lines: list[dict]) -> None:
    """metrics.jsonl rewritten whole, atomically (a few hundred short lines at most)."""
    write_atomic(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in lines))


def read_metrics(run: str | os.PathLike) -> list[dict]:
    """The per-epoch metrics of a run (for plots)."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise ValueError(f"{run}: not a training run (metrics.jsonl missing)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
