"""RealNVP flows (zuko): the latent flow z0 -> zK and the invertible preset regression."""

from __future__ import annotations

import torch
import zuko
from torch import nn


class RealNVP(nn.Module):
    """An invertible map R^D -> R^D made of affine coupling layers (zuko's RealNVP).

    ``forward(x)`` returns (y, log|det dy/dx|); ``inverse(y)`` returns x.
    Shapes: (B, D) in and out; the log-determinant is (B,).
    """

    def __init__(self, features: int, layers: int = 6, hidden: int = 300):
        super().__init__()
        # zuko's flow maps data -> base noise; here it is just an invertible transform, used in
        # that direction for forward().
        self.flow = zuko.flows.RealNVP(features, transforms=layers, hidden_features=(hidden,) * 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.transform().call_and_ladj(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.flow.transform().inv(y)
