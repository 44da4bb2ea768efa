"""One training loop for the CPU, one GPU and several GPUs (``torchrun ... -m companion train``).

A run folder holds::

    config.yaml            the full config and the run's settings (written at the start)
    checkpoints/latest.json -> checkpoints/epoch-NNNN/ (weights + optimizer/scheduler/RNG state)
    metrics.jsonl          one line of losses and validation metrics per epoch
    logs/                  TensorBoard (losses, validation MAE / accuracy, spectrograms)
    model.yaml, model-*.safetensors   the final model (what ``load_model`` reads)

Checkpoints are written to a new folder and then pointed at, so an interruption at any moment
leaves the previous one intact; ``resume=True`` continues from it bit for bit on the CPU.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from companion.config import get_config
from companion.data.dataset import open_dataset
from companion.dx7.params import ENCODINGS, representation
from companion.io import write_atomic
from companion.models.vae import (
    SpectralVAE,
    kl_divergence,
    load_weights,
    preset_loss,
    save_model,
    save_weights,
)

RAM_BUDGET = 12 * 2**30  # spectrogram caches up to this size are loaded whole on the CPU


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


class Split:
    """One split on the training device: spectrograms (float16, whole when they fit, else
    memory-mapped), encoded presets and loss masks."""

    def __init__(self, folder: Path, split: str, encoding: str, stats: dict, device):
        spec = np.load(folder / f"{split}.spec.npy", mmap_mode="r")
        self.values = np.load(folder / f"{split}.voices.npy").astype(np.int64)
        rep = representation(encoding)
        self.device = device
        self.mean, self.std = float(stats["mean_db"]), float(stats["std_db"])
        budget = RAM_BUDGET
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget = int(0.6 * free)
        self.whole = spec.nbytes <= budget
        self.spec = torch.from_numpy(np.array(spec)).to(device) if self.whole else spec
        self.params = torch.from_numpy(rep.encode(self.values)).to(device)
        self.mask = torch.from_numpy(rep.loss_mask(self.values)).to(device)

    def __len__(self) -> int:
        return len(self.values)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(normalised spectrograms (B, notes, H, W) float32, presets (B, D), masks (B, D))."""
        if self.whole:
            x = self.spec[idx.to(self.device)]
        else:
            order = np.sort(idx.numpy())  # memory-mapped reads are faster in file order
            idx = torch.from_numpy(order)
            x = torch.from_numpy(np.asarray(self.spec[order])).to(self.device)
        x = (x.float() - self.mean) / self.std
        idx = idx.to(self.device)
        return x, self.params[idx], self.mask[idx]


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
def evaluate_split(model, data: Split, cfg, rep, batch_size: int, autocast) -> dict:
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
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    save_weights(model, folder)
    buf = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "rng": _rng_state(), **extra}, buf)  # fmt: skip
    write_atomic(folder / "state.pt", buf.getvalue())
    write_atomic(out / "checkpoints" / "latest.json", json.dumps({"epoch": folder.name}).encode())
    for old in (out / "checkpoints").glob("epoch-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def _latest(out: Path) -> Path | None:
    pointer = out / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    return out / "checkpoints" / json.loads(pointer.read_text())["epoch"]


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
    out = Path(out)
    if (out / "config.yaml").exists() and not resume:
        raise ValueError(f"{out}: a run is already there; pass --resume or another --out")
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
    start, elapsed = 0, 0.0
    settings = {"encoding": encoding, "notes": info.notes, "regression": regression,
                "data": str(Path(data).resolve()), "world_size": d.world}  # fmt: skip
    if resume and (ckpt := _latest(out)) is not None:
        model.load_state_dict(load_weights(ckpt))
        state = torch.load(ckpt / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, elapsed = state["epoch"] + 1, state.get("elapsed_s", 0.0)
        _set_rng_state(state["rng"])
    elif d.main:
        out.mkdir(parents=True, exist_ok=True)
        text = cfg.to_yaml() + yaml.safe_dump({"run": settings}, sort_keys=False)
        write_atomic(out / "config.yaml", text.encode())
        (out / "metrics.jsonl").unlink(missing_ok=True)
    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if cuda else None
        )
    train_data = Split(info.path, "train", encoding, info.stats, d.device)
    valid_data = Split(info.path, "valid", encoding, info.stats, d.device)
    per_rank = max(1, t.batch_size // d.world)
    if len(train_data) < per_rank * d.world:
        raise ValueError(
            f"{data}: {len(train_data)} training voices, fewer than one batch "
            f"({t.batch_size}); build a larger dataset"
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    writer = _writer(out) if d.main else None
    last = {}
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
        if d.main:
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


def _log(writer, out: Path, metrics: dict, model, valid: Split, autocast) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
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


def read_metrics(run: str | os.PathLike) -> list[dict]:
    """The per-epoch metrics of a run (for plots)."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise ValueError(f"{run}: not a training run (metrics.jsonl missing)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
