"""Preset regression zK -> learnable preset vector: the paper's RealNVP, or an MLP baseline."""

from __future__ import annotations

import torch
from torch import nn

from companion.models.flows import RealNVP


class FlowRegression(nn.Module):
    """Invertible: ``forward`` maps zK to the preset vector, ``inverse`` a preset vector to zK
    (how a preset is placed in the latent space for interpolation). Shapes (B, D)."""

    invertible = True

    def __init__(self, dim: int, layers: int, hidden: int):
        super().__init__()
        self.flow = RealNVP(dim, layers, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow(z)[0]

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        return self.flow.inverse(u)


class MLPRegression(nn.Module):
    """The baseline: an MLP of ``layers`` hidden layers. Not invertible. (B, dim_z) -> (B, D)."""

    invertible = False

    def __init__(self, dim_z: int, dim: int, layers: int, hidden: int):
        super().__init__()
        mods, width = [], dim_z
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*mods, nn.Linear(width, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "the MLP regression is not invertible; train with --regression flow"
        )
