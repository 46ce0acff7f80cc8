"""A small student-shaped network: plain convs, a skip connection, a transposed conv; channels
in multiples of 8. Lives in its own module so ``torch.save(model)`` can pickle it."""

from __future__ import annotations

import torch
from torch import nn


class TinyUNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        d = self.dec(self.up(self.mid(self.down(e))) + e)  # skip connection
        return x + self.head(d)
