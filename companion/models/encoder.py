"""The spectrogram encoder (the paper's speccnn8l1_bn), for one note or several."""

from __future__ import annotations

import torch
from torch import nn


def conv_sizes(size: int, n_layers: int) -> list[int]:
    """Sizes along one axis after each stride-2 layer: the 5x5 first (pad 2), then 4x4 (pad 1).

    Returns n_layers + 1 sizes, the input's first.
    """
    sizes = [size, (size - 1) // 2 + 1]
    for _ in range(n_layers - 1):
        sizes.append(sizes[-1] // 2)
    return sizes


def _block(conv: nn.Module, channels: int, norm: bool = True) -> list[nn.Module]:
    return [conv, *([nn.BatchNorm2d(channels)] if norm else []), nn.LeakyReLU(0.1)]


class Encoder(nn.Module):
    """Spectrograms -> mean and log-variance of q(z0 | x).

    One CNN (a 5x5 stride-2 conv 1 -> channels[0] without batch norm, 4x4 stride-2 convs with
    batch norm, a 1x1 conv to ``last_channels``, LeakyReLU 0.1) is applied to every note; with
    several notes their features are stacked and mixed by a 1x1 conv, as the paper. A linear
    layer gives the mean and log-variance.

    Input (B, notes, H, W) normalised spectrograms; output two (B, dim_z).
    """

    def __init__(self, shape: tuple[int, int], notes: int, channels: tuple[int, ...],
                 last_channels: int, dim_z: int):  # fmt: skip
        super().__init__()
        self.notes = notes
        layers = _block(nn.Conv2d(1, channels[0], 5, 2, 2), channels[0], norm=False)
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += _block(nn.Conv2d(c_in, c_out, 4, 2, 1), c_out)
        layers += _block(nn.Conv2d(channels[-1], last_channels, 1), last_channels)
        self.cnn = nn.Sequential(*layers)
        mix = _block(nn.Conv2d(notes * last_channels, last_channels, 1), last_channels)
        self.mix = nn.Sequential(*mix) if notes > 1 else nn.Identity()
        self.h = conv_sizes(shape[0], len(channels))[-1]
        self.w = conv_sizes(shape[1], len(channels))[-1]
        if self.h < 1 or self.w < 1:
            raise ValueError(f"spectrograms of {shape} are too small for {len(channels)} layers")
        self.linear = nn.Linear(last_channels * self.h * self.w, 2 * dim_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, h, w = x.shape
        feats = self.cnn(x.reshape(b * n, 1, h, w))
        feats = self.mix(feats.reshape(b, n * feats.shape[1], *feats.shape[2:]))
        mu, logvar = self.linear(feats.flatten(1)).chunk(2, dim=1)
        return mu, logvar
