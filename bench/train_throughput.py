"""Training throughput of the paper's model: samples/s, parameter count, peak memory.

    .venv/bin/python bench/train_throughput.py [--configs paper small] [--device cpu|cuda]

Each config runs in its own process (so that peak memory is its own): a few warm-up steps,
then timed training steps (forward, losses, backward, Adam) on batches of the config's size,
with random spectrograms and presets of the right shapes (the loop's data are in memory, so the
data source does not change the speed). NumCat++, one note, flow regression, unless told.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(config: str, device: str, encoding: str, notes: int, steps: int, batch: int | None):
    import torch

    from companion.config import get_config
    from companion.dx7.params import representation
    from companion.models.vae import SpectralVAE, kl_divergence, preset_loss

    cfg = get_config(config)
    batch = batch or cfg.train.batch_size
    rep = representation(encoding)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = SpectralVAE(cfg, encoding, notes).to(dev)
    cuda = dev.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    x = torch.randn(batch, notes, *cfg.audio.spectrogram_shape, device=dev)
    values = torch.randint(0, 2, (batch, 145))
    target = torch.from_numpy(rep.encode(values.numpy())).to(dev)
    mask = torch.ones_like(target, dtype=torch.bool)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    def step():
        with autocast:
            out = model(x)
            loss = torch.nn.functional.mse_loss(out["x_hat"].float(), x) + 0.2 * kl_divergence(out)
            loss = loss + preset_loss(out["u"], target, mask, rep, 0.2)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip
    return {"config": config, "device": device, "spectrogram": list(cfg.audio.spectrogram_shape),
            "batch": batch, "params": sum(p.numel() for p in model.parameters()),
            "samples_per_s": steps * batch / dt, "peak_mib": peak / 2**20,
            "threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["paper", "small"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoding", default="numcat++")
    p.add_argument("--notes", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        r = measure(args.one, args.device, args.encoding, args.notes, args.steps, args.batch)
        print(json.dumps(r))
        return
    rows = []
    for config in args.configs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            config,
            "--device",
            args.device,
            "--encoding",
            args.encoding,
            "--notes",
            str(args.notes),
            "--steps",
            str(args.steps),
        ]
        cmd += ["--batch", str(args.batch)] if args.batch else []
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                              check=True).stdout.splitlines()[-1]))  # fmt: skip
    print(f"{'config':8s} {'device':6s} {'spectrogram':>12s} {'batch':>5s} {'params':>11s} "
          f"{'samples/s':>10s} {'peak MiB':>9s}")  # fmt: skip
    for r in rows:
        shape = "x".join(map(str, r["spectrogram"]))
        print(f"{r['config']:8s} {r['device']:6s} {shape:>12s} {r['batch']:5d} {r['params']:11,d} "
              f"{r['samples_per_s']:10.1f} {r['peak_mib']:9.0f}")  # fmt: skip
    base = rows[0]["samples_per_s"]
    for r in rows[1:]:
        print(f"{r['config']} / {rows[0]['config']} throughput: {r['samples_per_s'] / base:.2f}x")


if __name__ == "__main__":
    main()
