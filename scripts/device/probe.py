"""Training throughput of one row in a window shared with other processes (job.py's probe).

    python3 scripts/device/probe.py --config small --encoding numcat++ --notes 1 \
        --regression flow --device cuda --sync DIR --name numcatpp

Builds the row's model as ``companion train`` does (channels-last and bf16 autocast on a GPU,
Adam), takes batches of the config's size from random spectrograms and valid random voices held
on the device, runs a few warm-up steps, writes ``DIR/ready-NAME``, then waits for ``DIR/go``
(JSON: the start time, time.time(), and the window in s) so that every process of a probe counts
its steps over the same window. Each step does what the training loop does, reading the losses
back to the host as it does. Writes ``DIR/result-NAME.json``: samples/s over the window.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from companion.config import get_config
from companion.dx7.params import representation
from companion.dx7.voice import PARAM_MAX
from companion.io import write_atomic
from companion.models.vae import SpectralVAE, kl_divergence, preset_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--encoding", required=True)
    p.add_argument("--notes", type=int, choices=(1, 6), required=True)
    p.add_argument("--regression", default="flow")
    p.add_argument("--device", default="cuda")
    p.add_argument("--sync", required=True, help="folder of the ready / go / result files")
    p.add_argument("--name", required=True)
    p.add_argument("--warmup", type=int, default=5, help="steps before the window")
    args = p.parse_args()
    sync = Path(args.sync)

    cfg = get_config(args.config)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    rep = representation(args.encoding)
    model = SpectralVAE(cfg, args.encoding, args.notes, args.regression).to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    batch = cfg.train.batch_size
    x = torch.randn(batch, args.notes, *cfg.audio.spectrogram_shape, device=dev)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    values = np.random.default_rng(0).integers(0, PARAM_MAX + 1, (batch, 145))
    target = torch.from_numpy(rep.encode(values)).to(dev)
    mask = torch.from_numpy(rep.loss_mask(values)).to(dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    t = cfg.train

    def step() -> None:
        with autocast:
            out = model(x)
            rec = torch.nn.functional.mse_loss(out["x_hat"].float(), x)
            kl = kl_divergence(out)
            pre = preset_loss(out["u"], target, mask, rep, t.ce_weight)[0]
        loss = rec + t.beta * kl + t.params_weight * pre
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for v in (rec, kl, pre, loss):  # the training loop reads these back every step
            float(v.detach())

    for _ in range(args.warmup):
        step()
    write_atomic(sync / f"ready-{args.name}", b"")
    go = sync / "go"
    while not go.exists():
        time.sleep(0.01)
    plan = json.loads(go.read_text())
    start, window = float(plan["start"]), float(plan["window_s"])
    while time.time() < start:
        time.sleep(0.001)
    steps = 0
    while time.time() < start + window:
        step()
        steps += 1
    if cuda:
        torch.cuda.synchronize()
    seconds = time.time() - start
    result = {"name": args.name, "steps": steps, "batch": batch, "seconds": seconds,
              "samples_per_s": steps * batch / seconds}  # fmt: skip
    write_atomic(sync / f"result-{args.name}.json", json.dumps(result))


if __name__ == "__main__":
    main()
