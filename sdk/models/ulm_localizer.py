"""Deep-learning microbubble localiser (ULM student): heatmap + sub-pixel offsets.

Input ``x[batch, 1, axial, lateral]``: clutter-filtered envelope frames on a λ/4 grid, on the
log scale of :func:`sonoedge.train.ulm_data.localizer_input`. Output ``(batch, 3, H, W)``:
channel 0 the probability that a bubble's nearest pixel is this one, channels 1–2 the bubble's
sub-pixel offset ``(dz, dx)`` from that pixel's centre (meaningful where channel 0 is high). The
runtime decodes local maxima above a threshold into ``pixel + offset``.

With ``n_params > 0`` the network is physics-guided: a second input ``params[batch, n_params]``
(the transducer and pulse parameters that shape the PSF in wavelengths, normalised to [-1, 1])
is broadcast to constant image channels beside the frame, so the network knows the PSF it
should find instead of inferring it from crowded frames.

Deployment-shaped (DESIGN §7): 3×3 convs and ReLU, one stride-2 conv, one 2×2 transposed conv,
an additive skip; channel counts multiples of 8; input sizes a multiple of 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError


@dataclass(frozen=True)
class LocalizerArch:
    """Hyper-parameters that fix the localiser's weight shapes."""

    width: int = 16
    depth: int = 3
    n_params: int = 0

    def __post_init__(self) -> None:
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"width={self.width} is invalid: expected a multiple of 8, >= 8")
        if not 1 <= self.depth <= 16:
            raise ConfigError(f"depth={self.depth} is invalid: expected 1..16")
        if not 0 <= self.n_params <= 16:
            raise ConfigError(f"n_params={self.n_params} is invalid: expected 0..16")

    def to_dict(self) -> dict[str, Any]:
        return {"name": "ulm-localizer-v1", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalizerArch:
        if not isinstance(data, dict) or data.get("name") != "ulm-localizer-v1":
            raise ConfigError(f"architecture {data!r} is not a ULM localizer")
        return cls(int(data["width"]), int(data["depth"]), int(data.get("n_params", 0)))

    size_multiple = 2

    @property
    def receptive_field(self) -> int:
        # 2 full-res 3x3 (4), stride-2 3x3 (2), depth half-res 3x3 (4 each), 2x2 up (1), 3x3 (2)
        return 1 + 4 + 2 + 4 * self.depth + 1 + 2


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ReLU(inplace=True))


class LocalizerNet(nn.Module):
    """``forward(x, params=None) -> (B, 3, H, W)``: heatmap logit and sub-pixel offsets (see
    module doc); ``params`` ``(B, n_params)`` when the architecture has them."""

    def __init__(self, arch: LocalizerArch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.full = nn.Sequential(_conv(1 + arch.n_params, w), _conv(w, w))
        self.down = _conv(w, 2 * w, stride=2)
        self.mid = nn.Sequential(*[_conv(2 * w, 2 * w) for _ in range(arch.depth)])
        self.up = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.fuse = _conv(w, w)
        self.head = nn.Conv2d(w, 3, 1)

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        if self.arch.n_params:
            if params is None or params.shape != (x.shape[0], self.arch.n_params):
                raise ConfigError(f"this localiser needs params (batch, {self.arch.n_params})")
            b, _, h, w = x.shape
            x = torch.cat([x, params[:, :, None, None].expand(b, self.arch.n_params, h, w)], 1)
        f = self.full(x)
        h = self.mid(self.down(f))
        return self.head(self.fuse(F.relu(self.up(h)) + f))


class LocalizerDeploy(nn.Module):
    """Exported graph: input ``frames`` (and ``params`` when the architecture has them) →
    output ``maps`` (probability, dz, dx)."""

    def __init__(self, net: LocalizerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        y = self.net(x, params)
        return torch.cat([torch.sigmoid(y[:, :1]), y[:, 1:]], 1)


def build(arch: LocalizerArch | dict[str, Any]) -> LocalizerNet:
    return LocalizerNet(arch if isinstance(arch, LocalizerArch) else LocalizerArch.from_dict(arch))


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def macs_per_pixel(arch: LocalizerArch) -> float:
    """Multiply-accumulates per input pixel."""
    w = arch.width
    full = 9 * w * (1 + arch.n_params) + 9 * w * w + 9 * w * w + 3 * w
    half = (9 * w * 2 * w + arch.depth * 9 * 4 * w * w + 4 * 2 * w * w) / 4
    return float(full + half)


def focal_heatmap_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced focal loss (CenterNet) on a Gaussian-splatted target (1 at bubble
    pixels), normalised by the number of bubbles (at least 1)."""
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = target >= 0.999
    pos_loss = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    neg_loss = -(((1 - target) ** 4) * p**2 * torch.log(1 - p))[~pos].sum()
    return (pos_loss + neg_loss) / max(1, int(pos.sum()))
