"""The spectrogram decoder: the encoder's mirror, with transposed convolutions."""

from __future__ import annotations

import torch
from torch import nn

from companion.models.encoder import conv_sizes


class Decoder(nn.Module):
    """z (B, dim_z) -> spectrograms (B, notes, H, W), normalised like the encoder's input.

    A linear layer to the encoder's last feature map, a 1x1 conv that un-mixes the notes
    (several notes only), then per note a 1x1 transposed conv and the stride-2 transposed convs
    in reverse order; each takes the size the matching encoder layer had as input, so the output
    is exactly (H, W).
    """

    def __init__(self, shape: tuple[int, int], notes: int, channels: tuple[int, ...],
                 last_channels: int, dim_z: int):  # fmt: skip
        super().__init__()
        self.notes, self.last = notes, last_channels
        self.hs = conv_sizes(shape[0], len(channels))[::-1]
        self.ws = conv_sizes(shape[1], len(channels))[::-1]
        self.linear = nn.Linear(dim_z, last_channels * self.hs[0] * self.ws[0])
        self.unmix = (
            nn.Sequential(nn.Conv2d(last_channels, notes * last_channels, 1),
                          nn.BatchNorm2d(notes * last_channels), nn.LeakyReLU(0.1))
            if notes > 1 else nn.Identity()
        )  # fmt: skip
        self.first = nn.Sequential(nn.ConvTranspose2d(last_channels, channels[-1], 1),
                                   nn.BatchNorm2d(channels[-1]), nn.LeakyReLU(0.1))  # fmt: skip
        rev = channels[::-1]
        self.convs = nn.ModuleList(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
                                   for c_in, c_out in zip(rev[:-1], rev[1:]))  # fmt: skip
        self.norms = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(c), nn.LeakyReLU(0.1))
                                   for c in rev[1:])  # fmt: skip
        self.out = nn.ConvTranspose2d(channels[0], 1, 5, 2, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        x = self.linear(z).reshape(b, self.last, self.hs[0], self.ws[0])
        x = self.unmix(x).reshape(b * self.notes, self.last, self.hs[0], self.ws[0])
        x = self.first(x)
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms), 1):
            x = norm(conv(x, output_size=(self.hs[k], self.ws[k])))
        x = self.out(x, output_size=(self.hs[-1], self.ws[-1]))
        return x.reshape(b, self.notes, self.hs[-1], self.ws[-1])
