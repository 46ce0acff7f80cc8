"""Despeckling networks (MK task): a residual U-Net teacher, a small student and a DnCNN baseline.

All three map a log-compressed B-mode image ``x[batch, 1, axial, lateral]`` in ``[0, 1]`` (the
scale of :func:`sonoedge.synth.speckle.simulate_bmode`) to a despeckled image on the same scale as
``x + residual`` (residual learning). Deployment-shaped: 3×3 / 2×2 convolutions, ReLU, average
pooling, nearest upsampling or transposed convolutions; every channel count a multiple of 8
(except the single image channel).

- ``teacher`` (:class:`TeacherUNet`): three-level U-Net, ``width`` channels at full resolution,
  two 3×3 convolutions per level, concatenated skips. Its last full-resolution decoder features
  are the KD feature target.
- ``student`` (:class:`StudentNet`): two-level plain-conv net — two full-resolution 3×3 convs, a
  stride-2 conv to ``2 * width`` channels, ``depth`` 3×3 convs at half resolution (where most of
  the receptive field is bought cheaply), a 2×2 transposed conv back, an additive skip and a 3×3
  conv (KD features, matched to the teacher's through a 1×1 adapter dropped at export).
- ``dncnn`` (:class:`DnCNN`): ``depth`` 3×3 conv + BatchNorm + ReLU layers at full resolution
  (Zhang et al. 2017), the classic residual denoiser; sized to the student's MACs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sonoedge.errors import ConfigError

KINDS = ("teacher", "student", "dncnn")


@dataclass(frozen=True)
class DespeckleArch:
    """Hyper-parameters that fix the weight shapes of a despeckling network."""

    kind: str
    width: int = 16
    depth: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r} is not a despeckle network: expected {KINDS}")
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"width={self.width} is invalid: expected a multiple of 8, >= 8")
        if not 1 <= self.depth <= 64:
            raise ConfigError(f"depth={self.depth} is invalid: expected 1..64")

    def to_dict(self) -> dict[str, Any]:
        return {"name": "despeckle-v1", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DespeckleArch:
        if not isinstance(data, dict) or data.get("name") != "despeckle-v1":
            raise ConfigError(f"architecture {data!r} is not a despeckle network")
        try:
            return cls(str(data["kind"]), int(data["width"]), int(data["depth"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"architecture {data!r} is incomplete: {err}") from None

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (the runtime pads by reflection)."""
        return {"teacher": 4, "student": 2, "dncnn": 1}[self.kind]

    @property
    def receptive_field(self) -> int:
        """Receptive field in input pixels (one axis)."""
        if self.kind == "dncnn":
            return 2 * self.depth + 1
        if self.kind == "student":
            # 2 full-res 3x3 (4 px), stride-2 3x3 (2 px), depth half-res 3x3 (4 px each),
            # 2x2 transposed (1 px), final 3x3 (2 px)
            return 1 + 4 + 2 + 4 * self.depth + 1 + 2
        # teacher: 2 convs per level at scales 1, 2, 4 (encoder) and 2, 1 (decoder)
        return 1 + 4 * (1 + 2 + 4 + 2 + 1) + 2 + 4


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ReLU(inplace=True))


class TeacherUNet(nn.Module):
    """Three-level residual U-Net (see the module docstring)."""

    def __init__(self, arch: DespeckleArch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.enc0 = nn.Sequential(_conv(1, w), _conv(w, w))
        self.enc1 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w))
        mid = [_conv(2 * w, 4 * w)] + [_conv(4 * w, 4 * w) for _ in range(max(1, arch.depth - 1))]
        self.mid = nn.Sequential(*mid)
        self.dec1 = nn.Sequential(_conv(6 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec0 = nn.Sequential(_conv(3 * w, w), _conv(w, w))
        self.head = nn.Conv2d(w, 1, 3, 1, 1)
        self.pool = nn.AvgPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    @property
    def feature_channels(self) -> int:
        return self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool(e0))
        m = self.mid(self.pool(e1))
        d1 = self.dec1(torch.cat([self.up(m), e1], 1))
        d0 = self.dec0(torch.cat([self.up(d1), e0], 1))
        return {"out": x + self.head(d0), "feat": d0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


class StudentNet(nn.Module):
    """Small plain-conv despeckler (see the module docstring)."""

    def __init__(self, arch: DespeckleArch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.stem = nn.Sequential(_conv(1, w), _conv(w, w))
        self.down = _conv(w, 2 * w, stride=2)
        self.body = nn.Sequential(*[_conv(2 * w, 2 * w) for _ in range(arch.depth)])
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 2, 2), nn.ReLU(inplace=True))
        self.fuse = _conv(w, w)
        self.head = nn.Conv2d(w, 1, 3, 1, 1)

    @property
    def feature_channels(self) -> int:
        return self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.stem(x)
        f = self.fuse(self.up(self.body(self.down(s))) + s)
        return {"out": x + self.head(f), "feat": f}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


class DnCNN(nn.Module):
    """DnCNN-style residual denoiser: conv-ReLU, (depth-2) × conv-BN-ReLU, conv."""

    def __init__(self, arch: DespeckleArch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        layers: list[nn.Module] = [nn.Conv2d(1, w, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(max(0, arch.depth - 2)):
            layers += [nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(w, 1, 3, 1, 1)

    @property
    def feature_channels(self) -> int:
        return self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.body(x)
        return {"out": x + self.head(f), "feat": f}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


DespeckleNet = TeacherUNet | StudentNet | DnCNN


def build(arch: DespeckleArch | dict[str, Any]) -> DespeckleNet:
    """The network for ``arch`` (a :class:`DespeckleArch` or its ``to_dict()``)."""
    if isinstance(arch, dict):
        arch = DespeckleArch.from_dict(arch)
    if arch.kind == "teacher":
        return TeacherUNet(arch)
    if arch.kind == "student":
        return StudentNet(arch)
    return DnCNN(arch)


def load_state(net: nn.Module, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load ``state`` into ``net``, refusing weights of another architecture clearly."""
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{where} holds weights of another architecture: {first}") from None


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def macs_per_pixel(net: nn.Module, size: int = 64) -> float:
    """Multiply-accumulates per input pixel (convolutions and transposed convolutions)."""
    total = [0]

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += int(out.numel()) * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels // mod.groups
            total[0] += int(inp[0].numel()) * k

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, size, size))
    net.train(was_training)
    for h in handles:
        h.remove()
    return total[0] / float(size * size)


class DespeckleDeploy(nn.Module):
    """Export graph: input ``image`` → output ``despeckled`` clipped to ``[0, 1]``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.net(x), 0.0, 1.0)
