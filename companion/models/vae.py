"""The paper's model: spectrogram VAE with a RealNVP latent flow and a preset regression.

x (B, notes, H, W) --encoder--> q(z0|x) --latent flow--> zK --decoder--> x_hat
                                                         zK --regression--> preset vector u (B, D)

dim z = D, the length of the chosen encoding's vector (144, 224 or 610). In u the numerical
columns are values in [0, 1] and each one-hot group holds logits.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from companion.config import Config
from companion.dx7.params import Representation, representation
from companion.io import write_atomic
from companion.models.decoder import Decoder
from companion.models.encoder import Encoder
from companion.models.flows import RealNVP
from companion.models.regression import FlowRegression, MLPRegression

REGRESSIONS = ("flow", "mlp")
LOG_2PI = math.log(2 * math.pi)
SHARD_BYTES = 15 * 2**20  # every weights file stays under 16 MiB (GitHub's soft limit)


class SpectralVAE(nn.Module):
    """Args:
    cfg: the configuration (spectrogram shape, network sizes).
    encoding: numonly, numcat or numcat++.
    notes: 1 or 6 input spectrograms.
    regression: "flow" (invertible RealNVP, the paper's) or "mlp" (the baseline).
    """

    def __init__(self, cfg: Config, encoding: str, notes: int, regression: str = "flow"):
        super().__init__()
        if regression not in REGRESSIONS:
            raise ValueError(f"unknown regression {regression!r}; choose one of {REGRESSIONS}")
        self.cfg, self.encoding, self.notes, self.regression_kind = cfg, encoding, notes, regression
        self.rep: Representation = representation(encoding)
        m, dim = cfg.model, self.rep.size
        self.dim_z = dim
        shape = cfg.audio.spectrogram_shape
        self.encoder = Encoder(shape, notes, m.channels, m.last_channels, dim)
        self.decoder = Decoder(shape, notes, m.channels, m.last_channels, dim)
        self.flow = RealNVP(dim, m.flow_layers, m.flow_hidden)
        self.regression = (
            FlowRegression(dim, m.flow_layers, m.flow_hidden) if regression == "flow"
            else MLPRegression(dim, dim, m.mlp_layers, m.mlp_hidden)
        )  # fmt: skip

    def forward(self, x: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        """x (B, notes, H, W) -> dict of mu, logvar, z0, zK (B, D), logdet (B,),
        x_hat (B, notes, H, W), u (B, D). ``sample=False`` takes z0 = mu."""
        mu, logvar = self.encoder(x)
        logvar = logvar.clamp(-20.0, 10.0)
        z0 = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        zk, logdet = self.flow(z0.float())
        return {"mu": mu, "logvar": logvar, "z0": z0, "zK": zk, "logdet": logdet,
                "x_hat": self.decoder(zk), "u": self.regression(zk)}  # fmt: skip

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The network's answer: spectrograms (B, notes, H, W) -> preset vectors u (B, D)."""
        mu, _ = self.encoder(x)
        return self.regression(self.flow(mu.float())[0])

    @torch.no_grad()
    def preset_to_latent(self, u: torch.Tensor) -> torch.Tensor:
        """Encoded presets (B, D) -> zK (B, D), through the inverse of the regression flow."""
        return self.regression.inverse(u)

    @torch.no_grad()
    def latent_to_preset(self, zk: torch.Tensor) -> torch.Tensor:
        return self.regression(zk)


def kl_divergence(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """One-sample estimate of KL(q(zK|x) || N(0, I)) through the flow, per latent dimension.

    log q0(z0|x) - log|det dzK/dz0| - log p(zK), averaged over the batch, divided by D.
    """
    mu, logvar, z0, zk = out["mu"].float(), out["logvar"].float(), out["z0"].float(), out["zK"]
    log_q0 = -0.5 * (logvar + (z0 - mu) ** 2 / logvar.exp() + LOG_2PI).sum(1)
    log_p = -0.5 * (zk**2 + LOG_2PI).sum(1)
    return (log_q0 - out["logdet"] - log_p).mean() / zk.shape[1]


def preset_loss(u: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                rep: Representation, ce_weight: float) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """MSE on numerical columns + ce_weight x cross-entropy on one-hot groups, both over the
    columns that ``mask`` keeps (parameters of inaudible operators are left out).

    Args:
        u, target: (B, D); mask: (B, D) bool.
    """
    u, maskf = u.float(), mask.float()
    cols = torch.as_tensor(rep.numerical_columns, device=u.device)
    m = maskf[:, cols]
    mse = (((u[:, cols] - target[:, cols]) ** 2) * m).sum() / m.sum().clamp_min(1)
    ce_sum, ce_n = u.new_zeros(()), u.new_zeros(())
    for c in rep.categorical:
        keep = maskf[:, c.start]
        ce = F.cross_entropy(u[:, c.slice], target[:, c.slice].argmax(1), reduction="none")
        ce_sum, ce_n = ce_sum + (ce * keep).sum(), ce_n + keep.sum()
    ce = ce_sum / ce_n.clamp_min(1)
    return mse + ce_weight * ce, {"mse": mse.detach(), "ce": ce.detach()}


# --- saving and loading ----------------------------------------------------------------------


def save_weights(model: nn.Module, folder: str | os.PathLike) -> list[Path]:
    """The state dict as safetensors shards under 16 MiB each, plus model.index.json naming them
    (written last, atomically: a reader never sees a half-written set). A tensor larger than a
    shard is cut along its first dimension into parts named ``<key>::<i>``."""
    folder = Path(folder)
    pieces, split = [], {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().contiguous().cpu()
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > SHARD_BYTES and tensor.dim() > 0:
            n = math.ceil(nbytes / SHARD_BYTES)
            parts = torch.tensor_split(tensor, n, dim=0)
            split[key] = len(parts)
            pieces += [(f"{key}::{i}", p.contiguous()) for i, p in enumerate(parts)]
        else:
            pieces.append((key, tensor))
    shards, current, size = [], {}, 0
    for key, tensor in pieces:
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[key], size = tensor, size + nbytes
    shards.append(current)
    names = [f"model-{i + 1:03d}-of-{len(shards):03d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        write_atomic(folder / name, save_tensors(shard))
    index = {"shards": names, "split": split}
    write_atomic(folder / "model.index.json", json.dumps(index, indent=1).encode())
    for old in folder.glob("model-*.safetensors"):
        if old.name not in names:
            old.unlink()
    return [folder / n for n in names]


def load_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict written by ``save_weights``."""
    folder = Path(folder)
    index = folder / "model.index.json"
    if not index.exists():
        raise ValueError(f"{folder}: no model weights (model.index.json missing)")
    meta = json.loads(index.read_text())
    state = {}
    for name in meta["shards"]:
        state.update(load_tensors((folder / name).read_bytes()))
    for key, n in meta.get("split", {}).items():
        state[key] = torch.cat([state.pop(f"{key}::{i}") for i in range(n)], dim=0)
    return state


def save_model(model: SpectralVAE, folder: str | os.PathLike, stats: dict, extra: dict) -> None:
    """Weights and model.yaml: everything ``load_model`` needs (config, encoding, notes,
    regression, the dataset's normalisation) plus ``extra`` (training facts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder)
    meta = {"config": model.cfg.to_dict(), "encoding": model.encoding, "notes": model.notes,
            "regression": model.regression_kind, "stats": {k: stats[k] for k in
            ("mean_db", "std_db")}, **extra}  # fmt: skip
    write_atomic(folder / "model.yaml", yaml.safe_dump(meta, sort_keys=False).encode())


def default_model_dir() -> Path:
    """The shipped model: $COMPANION_MODEL if set, else companion/models/default, which is part
    of the installed package (a wheel carries it)."""
    env = os.environ.get("COMPANION_MODEL")
    return Path(env) if env else Path(__file__).resolve().parent / "default"


def load_model(folder: str | os.PathLike | None = None,
               device: str = "cpu") -> tuple[SpectralVAE, dict]:  # fmt: skip
    """A saved model (a run or model folder; None: the shipped default) in eval mode, and its
    model.yaml; a one-line error if the folder holds no model."""
    folder = Path(folder) if folder is not None else default_model_dir()
    try:
        meta = yaml.safe_load((folder / "model.yaml").read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a model folder (model.yaml missing)") from None
    cfg = Config.from_dict(meta["config"])
    model = SpectralVAE(cfg, meta["encoding"], meta["notes"], meta["regression"])
    model.load_state_dict(load_weights(folder))
    return model.to(device).eval(), meta
