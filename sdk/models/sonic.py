"""SONIC networks: power Doppler from an IQ ensemble (teacher: long, student: short).

Input ``x[batch, 2 * n_frames, axial, lateral]``: the ensemble's SVD component energies per pixel
(``n_frames`` channels) and their tail sums (the power Doppler of an SVD filter at every low
cutoff, ``n_frames`` channels), log-compressed — see :func:`sonoedge.zoo.sonic.ensemble_features`
(numpy, torch-free; a small eigen-decomposition of the ``N × N`` Gram matrix). The network learns
where, pixel by pixel and with spatial context, blood ends and clutter/noise begin, and denoises
the result. Output ``y[batch, 1, axial, lateral]``: blood power mapped to ``[0, 1]``
(``dB = DB_LOW + y * DB_SPAN``, dB relative to the tissue power).

Architecture (deployment-shaped: 1×1/3×3 convolutions, ReLU, average pooling, nearest upsampling;
every channel count a multiple of 8):

1. ``mix``: 1×1 convolutions over the component features, then a 3×3 block — the
   *clutter-suppressed features* (deep supervision 1 targets the SVD power Doppler of the same
   ensemble from them);
2. a two-level U-Net with a global-context branch at the bottleneck (deep supervision 2 targets the
   SVD power Doppler of the long ensemble; knowledge distillation matches these features to the
   teacher's);
3. a 1×1 head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sonoedge.errors import ConfigError


@dataclass(frozen=True)
class SonicArch:
    """Hyper-parameters that fix the weight shapes of a :class:`SonicNet`."""

    n_frames: int
    n_filters: int = 16
    width: int = 24

    def __post_init__(self) -> None:
        if self.n_frames < 2:
            raise ConfigError(f"n_frames={self.n_frames!r} is invalid: expected >= 2")
        if self.n_filters < 4 or (2 * self.n_filters) % 8:
            raise ConfigError(
                f"n_filters={self.n_filters!r} is invalid: expected >= 4 with 2*n_filters a "
                "multiple of 8"
            )
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"width={self.width!r} is invalid: expected a multiple of 8")

    def to_dict(self) -> dict[str, Any]:
        return {"name": "sonic-svdnet-v1", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SonicArch:
        name = data.get("name")
        if name != "sonic-svdnet-v1":
            raise ConfigError(
                f"architecture {name!r} is not a SONIC network: expected 'sonic-svdnet-v1'",
                hint="these weights were trained for another model; pick a SONIC checkpoint",
            )
        try:
            return cls(int(data["n_frames"]), int(data["n_filters"]), int(data["width"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"architecture record {data!r} is incomplete: {err}") from None


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class SonicNet(nn.Module):
    """Component features → clutter-suppressed features → U-Net → blood power in ``[0, 1]``."""

    def __init__(self, arch: SonicArch) -> None:
        super().__init__()
        self.arch = arch
        f, w = 2 * arch.n_filters, arch.width
        self.mix = nn.Sequential(
            nn.Conv2d(2 * arch.n_frames, f, 1),
            nn.ReLU(True),
            nn.Conv2d(f, f, 1),
            nn.ReLU(True),
        )
        self.enc1 = _block(f, w)
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(True))
        self.enc2 = _block(2 * w, 2 * w)
        self.context = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2 * w, 2 * w, 1),
            nn.ReLU(True),
            nn.Conv2d(2 * w, 2 * w, 1),
        )
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * w, w, 3, padding=1),
            nn.ReLU(True),
        )
        self.dec = _block(2 * w, w)
        self.head = nn.Conv2d(w, 1, 1)
        # Training-only heads (deep supervision); not part of the exported graph.
        self.ds_filtered = nn.Conv2d(w, 1, 1)
        self.ds_bottleneck = nn.Conv2d(2 * w, 1, 1)

    @property
    def feature_channels(self) -> int:
        return 2 * self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All intermediate maps: ``filtered``, ``bottleneck`` and ``out``."""
        e1 = self.enc1(self.mix(x))
        b = self.enc2(self.down(e1))
        b = b + self.context(b)
        d = self.dec(torch.cat([self.up(b), e1], dim=1))
        return {"filtered": e1, "bottleneck": b, "out": self.head(d)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


class SonicDeploy(nn.Module):
    """The exported graph: input → blood power in ``[0, 1]`` (clipped)."""

    def __init__(self, net: SonicNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.net(x), 0.0, 1.0)


def count_parameters(module: nn.Module, deploy_only: bool = True) -> int:
    names = ("ds_filtered", "ds_bottleneck") if deploy_only else ()
    return sum(p.numel() for n, p in module.named_parameters() if n.split(".")[0] not in names)


def build(arch: SonicArch | dict[str, Any]) -> SonicNet:
    """A fresh network for ``arch`` (an :class:`SonicArch` or its ``to_dict()`` record)."""
    if isinstance(arch, dict):
        arch = SonicArch.from_dict(arch)
    return SonicNet(arch)


def load_state(net: SonicNet, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load weights, refusing weights of another shape with a message that says what fits."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[:3]
        raise ConfigError(
            f"{where} does not hold weights of {net.arch.to_dict()}: mismatched tensors {detail} "
            "(the weights come from another architecture or ensemble length)",
            hint="load them into the network they were trained with",
        )
    net.load_state_dict(state)
