"""The paper's model: spectrogram VAE with a RealNVP latent flow and a preset regression.

x (B, notes, H, W) --encoder--> q(z0|x) --latent flow--> zK --decoder--> x_hat
                                                         zK --regression--> preset vector u (B, D)

dim z = D, the length of the chosen encoding's vector (144, 224 or 610). In u the numerical
columns are values in [0, 1] and each one-hot group holds logits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from companion.config import Config
from companion.dx7.params import Representation, representation
from companion.models import default_model_dir
from companion.models.decoder import Decoder
from companion.models.encoder import Encoder
from companion.models.flows import RealNVP
from companion.models.regression import FlowRegression, MLPRegression
from companion.models.weights import (  # noqa: F401 (save_* re-exported for older imports)
    META,
    SHARD_BYTES,
    load_weights,
    read_meta,
    save_model,
    save_weights,
)

REGRESSIONS = ("flow", "mlp")
LOG_2PI = math.log(2 * math.pi)


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
        if self.decoder is None:
            raise ValueError("this model was shipped for inference only (no decoder): it "
                             "programs, interpolates and generates, but cannot train")
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


# --- loading (saving and the weight files: companion.models.weights) ---------------------


def load_model(folder: str | os.PathLike | None = None,
               device: str = "cpu") -> tuple[SpectralVAE, dict]:  # fmt: skip
    """A saved model (a run or model folder; None: the shipped default) in eval mode, and its
    model.yaml; a one-line error if the folder holds no model."""
    folder = Path(folder) if folder is not None else default_model_dir()
    meta = read_meta(folder)
    try:
        cfg = Config.from_dict(meta["config"])
        model = SpectralVAE(cfg, meta["encoding"], meta["notes"], meta["regression"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"{folder / META}: not a model description ({e})") from None
    state, expected = load_weights(folder), model.state_dict()
    inference_only = bool(meta.get("inference_only"))
    if inference_only:  # shipped without the decoder: programming never needs it
        expected = {k: v for k, v in expected.items() if not k.startswith("decoder.")}
    missing, unknown = expected.keys() - state.keys(), state.keys() - expected.keys()
    wrong = [k for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape]
    if missing or unknown or wrong:
        first = sorted(missing or unknown or wrong)[0]
        what = "missing" if missing else "unknown" if unknown else "of another shape"
        raise ValueError(f"{folder}: the weights do not fit {META} ({first!r} {what}, "
                         f"{len(missing) + len(unknown) + len(wrong)} tensors differ)")  # fmt: skip
    model.load_state_dict(state, strict=not inference_only)
    if inference_only:
        model.decoder = None
    return model.to(device).eval(), meta
