"""Blind enhancement networks (deconvolution + denoising): a Swin-Conv U-Net teacher and a
plain-conv student.

Both map a log-compressed B-mode image ``x[batch, 1, axial, lateral]`` in ``[0, 1]`` to an
enhanced image on the same scale as ``x + residual``.

- ``teacher`` (:class:`SwinConvUNet`): three-level U-Net (``width``, ``2 width``, ``4 width``
  channels at full, 1/2 and 1/4 resolution; stride-2 convs down, 2×2 transposed convs up, additive
  skips) built from Swin-Conv blocks in the spirit of SCUNet (Zhang et al. 2023): a 1×1 conv splits
  the channels into a convolution half (two 3×3 convs, residual) and a transformer half (window
  multi-head self-attention over ``window``×``window`` tokens, alternately shifted by half a window
  with the usual region mask, then an MLP, both pre-norm residual), a 1×1 conv fuses them back
  (block residual). ``depth`` blocks at the 1/4-resolution bottleneck, one per level elsewhere.
  Its last full-resolution decoder features are the distillation feature target.
- ``student`` (:class:`EnhanceStudent`): deployment-shaped — 3×3 convs and ReLU only, stride-2
  convs down to 1/4 resolution (``width``, ``2 width``, ``4 width`` channels), ``depth`` 3×3 convs
  there (a wide receptive field for PSF widths of several pixels, cheaply), 2×2 transposed convs
  up with additive skips and a 3×3 conv per level (``full_depth`` of them at full resolution:
  fine detail); with ``context`` every level gets whole-image per-channel offsets computed from
  the spatial mean of the bottleneck features (:class:`GlobalContext`, a ReduceMean and 1×1
  convs). No attention, no normalisation: every op exists in TensorRT, OpenVINO and
  onnxruntime; channel counts are multiples of 8. With ``space_to_depth`` (FFDNet style) a
  PixelUnshuffle(2) stem folds each 2×2 block into 4 channels, the same three levels run at 1/2,
  1/4 and 1/8 resolution (``width`` >= 16), and a PixelShuffle(2) head returns to 1 channel at
  full resolution: no convolution runs at full resolution, where 8-channel layers are too thin
  for int8 kernels and for pruning with ``round_to=8``. With ``deblur`` the student first runs
  a blind inverse-filter stage (:class:`InverseFilterBank`): fixed separable Wiener inverses
  of Gaussian PSFs of several widths, mixed per image and per axis by weights computed from
  the image's own difference statistics; the network then denoises what that stage returns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError

KINDS = ("teacher", "student")
ARCH_NAME = "enhance-v1"


@dataclass(frozen=True)
class EnhanceArch:
    """Hyper-parameters that fix the weight shapes of an enhancement network."""

    kind: str
    width: int = 8
    depth: int = 3
    window: int = 8
    head_dim: int = 8
    full_depth: int = 1
    context: bool = False
    space_to_depth: bool = False
    deblur: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r} is not an enhance network: expected {KINDS}")
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"width={self.width} is invalid: expected a multiple of 8, >= 8")
        if not 1 <= self.depth <= 32:
            raise ConfigError(f"depth={self.depth} is invalid: expected 1..32")
        if not 1 <= self.full_depth <= 8 or (self.kind == "teacher" and self.full_depth != 1):
            raise ConfigError(
                f"full_depth={self.full_depth} is invalid: expected 1..8 (students only; 1 for "
                "the teacher)"
            )
        if self.kind == "teacher" and self.context:
            raise ConfigError("context=True is a student option: expected False for the teacher")
        if self.space_to_depth and (self.kind == "teacher" or self.width < 16):
            raise ConfigError(
                f"space_to_depth=True with kind={self.kind!r}, width={self.width} is invalid: "
                "expected a student of width >= 16"
            )
        if self.deblur and self.kind == "teacher":
            raise ConfigError("deblur=True is a student option: expected False for the teacher")
        if self.window < 2 or self.window % 2:
            raise ConfigError(f"window={self.window} is invalid: expected an even number >= 2")
        if self.kind == "teacher" and (self.head_dim < 4 or (self.width // 2) % self.head_dim):
            raise ConfigError(
                f"head_dim={self.head_dim} is invalid: expected >= 4 and dividing width/2 "
                f"({self.width // 2})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"name": ARCH_NAME, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnhanceArch:
        if not isinstance(data, dict) or data.get("name") != ARCH_NAME:
            raise ConfigError(f"architecture {data!r} is not an enhance network")
        try:
            return cls(
                str(data["kind"]),
                int(data["width"]),
                int(data["depth"]),
                int(data.get("window", 8)),
                int(data.get("head_dim", 8)),
                int(data.get("full_depth", 1)),
                bool(data.get("context", False)),
                bool(data.get("space_to_depth", False)),
                bool(data.get("deblur", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"architecture {data!r} is incomplete: {err}") from None

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (the runtime pads by reflection)."""
        if self.kind == "teacher":
            return 4 * self.window
        return 8 if self.space_to_depth else 4

    @property
    def receptive_field(self) -> int:
        """Side the runtime reflect-pads smaller inputs up to: the student's conv receptive field
        (the teacher's attention makes it global within a window; its minimum is one window at
        1/4 resolution)."""
        if self.kind == "teacher":
            return 4 * self.window
        # full res: stem 3x3 (2 px); s2 3x3 (2 px); half res: s2 3x3 (4 px); quarter res: depth
        # 3x3 (8 px each); up: 2x2 transposed (4 px) + half-res 3x3 (4 px) + 2x2 (2 px) + full-res
        # 3x3 (2 px) + (full_depth - 1) more full-res 3x3 (2 px each) + head 3x3 (2 px)
        growth = 2 + 2 + 4 + 8 * self.depth + 4 + 4 + 2 + 2 * self.full_depth + 2
        # space_to_depth: the same growth on the 1/2-resolution grid of 2x2 blocks
        rf = 2 * (growth + 1) if self.space_to_depth else growth + 1
        # deblur: two separable inverse filters of DEBLUR_TAPS taps each way before the network
        return rf + 2 * (DEBLUR_TAPS - 1) if self.deblur else rf


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ReLU(inplace=True))


# --------------------------------------------------------------------------- teacher


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, optionally shifted (with the
    region mask that stops tokens attending across the wrapped border)."""

    def __init__(self, channels: int, window: int, head_dim: int, shift: bool) -> None:
        super().__init__()
        self.channels, self.window, self.shift = channels, window, shift
        self.heads = channels // head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        n = window * window
        # relative position bias, one table per head (as in Swin)
        self.bias = nn.Parameter(torch.zeros(self.heads, (2 * window - 1) ** 2))
        idx = torch.arange(window)
        zz, xx = torch.meshgrid(idx, idx, indexing="ij")
        coords = torch.stack([zz.flatten(), xx.flatten()])  # (2, n)
        rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
        self.register_buffer("bias_index", (rel[0] * (2 * window - 1) + rel[1]).reshape(n * n))

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(windows, n, n) additive mask for the shifted layout."""
        ws, s = self.window, self.window // 2
        region = torch.zeros(h, w, device=device)
        k = 0
        for zs in (slice(0, h - ws), slice(h - ws, h - s), slice(h - s, h)):
            for xs in (slice(0, w - ws), slice(w - ws, w - s), slice(w - s, w)):
                region[zs, xs] = k
                k += 1
        win = region.reshape(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
        diff = win[:, :, None] != win[:, None, :]
        return diff.float() * -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, H, W, C) channels-last → same shape."""
        b, h, w, c = x.shape
        ws = self.window
        if self.shift:
            x = torch.roll(x, (-(ws // 2), -(ws // 2)), (1, 2))
        t = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        t = t.reshape(-1, ws * ws, c)  # (B * windows, n, C)
        qkv = self.qkv(t).reshape(t.shape[0], ws * ws, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B*win, heads, n, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        index = cast(torch.Tensor, self.bias_index)
        bias = self.bias[:, index].reshape(self.heads, ws * ws, ws * ws)
        attn = attn + bias[None]
        if self.shift:
            mask = self._mask(h, w, x.device)
            nw = mask.shape[0]
            attn = attn.reshape(b, nw, self.heads, ws * ws, ws * ws) + mask[None, :, None]
            attn = attn.reshape(-1, self.heads, ws * ws, ws * ws)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(t.shape[0], ws * ws, c)
        out = self.proj(out)
        out = out.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(b, h, w, c)
        if self.shift:
            out = torch.roll(out, (ws // 2, ws // 2), (1, 2))
        return out


class SwinConvBlock(nn.Module):
    """Split channels into a residual conv half and a window-transformer half (SCUNet style)."""

    def __init__(self, channels: int, window: int, head_dim: int, shift: bool) -> None:
        super().__init__()
        half = channels // 2
        self.n_half = half
        self.split = nn.Conv2d(channels, channels, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(half, half, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(half, half, 3, 1, 1)
        )
        self.norm1 = nn.LayerNorm(half)
        self.attn = WindowAttention(half, window, head_dim, shift)
        self.norm2 = nn.LayerNorm(half)
        self.mlp = nn.Sequential(nn.Linear(half, 2 * half), nn.GELU(), nn.Linear(2 * half, half))
        self.fuse = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, t = torch.split(self.split(x), self.n_half, 1)
        a = a + self.conv(a)
        t = t.permute(0, 2, 3, 1)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        t = t.permute(0, 3, 1, 2)
        return x + self.fuse(torch.cat([a, t], 1))


class SwinConvUNet(nn.Module):
    """Swin-Conv U-Net teacher (see the module docstring)."""

    def __init__(self, arch: EnhanceArch) -> None:
        super().__init__()
        self.arch = arch
        w, ws, hd = arch.width, arch.window, arch.head_dim

        def blocks(c: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[SwinConvBlock(c, ws, hd, shift=bool(i % 2)) for i in range(n)])

        self.stem = nn.Conv2d(1, w, 3, 1, 1)
        self.enc0 = blocks(w, 1)
        self.down0 = nn.Conv2d(w, 2 * w, 3, 2, 1)
        self.enc1 = blocks(2 * w, 1)
        self.down1 = nn.Conv2d(2 * w, 4 * w, 3, 2, 1)
        self.mid = blocks(4 * w, max(1, arch.depth))
        self.up1 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2)
        self.dec1 = blocks(2 * w, 1)
        self.up0 = nn.ConvTranspose2d(2 * w, w, 2, 2)
        self.dec0 = nn.Sequential(SwinConvBlock(w, ws, hd, shift=True), _conv(w, w))
        self.head = nn.Conv2d(w, 1, 3, 1, 1)

    @property
    def feature_channels(self) -> int:
        return self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e0 = self.enc0(self.stem(x))
        e1 = self.enc1(self.down0(e0))
        m = self.mid(self.down1(e1))
        d1 = self.dec1(self.up1(m) + e1)
        d0 = self.dec0(self.up0(d1) + e0)
        return {"out": x + self.head(d0), "feat": d0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


# --------------------------------------------------------------------------- student


class GlobalContext(nn.Module):
    """Whole-image context: the spatial mean of the bottleneck features through a 1×1 conv and
    ReLU, then one zero-initialised 1×1 conv per level (1/4, 1/2 and full resolution) whose
    output is added everywhere at that level (per-channel offsets: adaptive thresholds). The
    degradation is one per image, and local windows cannot tell light, correlated Fourier
    noise from texture. Zero-initialised: adding the branch to a trained student changes
    nothing."""

    def __init__(self, width: int) -> None:
        super().__init__()
        c = 4 * width
        self.hidden = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True))
        levels = [nn.Conv2d(c, k * width, 1) for k in (4, 2, 1)]
        for conv in levels:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(cast(torch.Tensor, conv.bias))
        self.to_levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Offsets ``(B, C, 1, 1)`` for the 1/4-, 1/2- and full-resolution features."""
        v = self.hidden(x.mean(dim=(2, 3), keepdim=True))
        return [conv(v) for conv in self.to_levels]


DEBLUR_SIGMAS_PX = (0.4, 0.55, 0.7, 0.9, 1.15, 1.5)
"""Gaussian PSF σ (px, per axis) the inverse-filter bank inverts; identity is the seventh choice.
The degradation model draws σ in 0.3..0.5 + 2.5 × severity px; past 1.5 px the noise that comes
with such blur leaves little for a linear inverse to gain."""
DEBLUR_NSR = 0.03
"""Noise-to-signal ratio of each 1-D Wiener inverse (0.03 held up best on dev frames when the
estimated σ was 30 % off either way)."""
DEBLUR_TAPS = 13
DEBLUR_LAGS = (1, 2, 4)
DEBLUR_LOGIT_GAIN = 8.0
"""The selector's logits are its MLP's output times this: Adam moves them this much faster than
the rest of a network it is added to (fine-tuning at the network's learning rate)."""


def wiener_taps(sigma_px: float, nsr: float = DEBLUR_NSR, taps: int = DEBLUR_TAPS) -> np.ndarray:
    """A ``taps``-long 1-D Wiener inverse ``H / (H² + nsr)`` of a continuous Gaussian of
    ``sigma_px`` (``H = exp(-2π²σ²f²)``), truncated and scaled to DC gain 1."""
    n = 512
    f = np.fft.fftfreq(n)
    h = np.exp(-2.0 * (math.pi * sigma_px * f) ** 2)
    kernel = np.roll(np.real(np.fft.ifft(h / (h * h + nsr))), taps // 2)[:taps]
    return np.asarray(kernel / kernel.sum(), np.float64)


class InverseFilterBank(nn.Module):
    """Blind, per-image separable deconvolution: ``x + Σ β_i (A_i − δ) * x`` along the axial
    axis, then the same with weights ``γ`` along the lateral axis. ``A_i`` are the fixed 1-D
    Wiener inverses of :data:`DEBLUR_SIGMAS_PX`; ``β`` and ``γ`` (softmax over the bank and
    identity) come from a small MLP on whole-image statistics: log energies of differences at
    lags 1, 2, 4 px and of the second difference along each axis, relative to the image's
    variance (they tell blur width from Fourier-domain noise from white noise). Initialised to
    pick the identity (a stage added to a trained network hardly changes it).

    Its channels are its filters: structured pruning leaves the whole stage alone."""

    prunable = False

    def __init__(self) -> None:
        super().__init__()
        k = len(DEBLUR_SIGMAS_PX)
        bank = np.stack([wiener_taps(s) for s in DEBLUR_SIGMAS_PX])
        bank[:, DEBLUR_TAPS // 2] -= 1.0  # A_i - delta: the detail each inverse adds
        kernel = torch.tensor(bank, dtype=torch.float32)
        self.axial = nn.Conv2d(1, k, (DEBLUR_TAPS, 1), padding=0, bias=False)
        self.lateral = nn.Conv2d(1, k, (1, DEBLUR_TAPS), padding=0, bias=False)
        self.axial.weight.data.copy_(kernel.view(k, 1, DEBLUR_TAPS, 1))
        self.lateral.weight.data.copy_(kernel.view(k, 1, 1, DEBLUR_TAPS))
        for conv in (self.axial, self.lateral):
            conv.weight.requires_grad_(False)
        n_features = 2 * (len(DEBLUR_LAGS) + 1)
        self.select = nn.Sequential(
            nn.Linear(n_features, 32), nn.ReLU(inplace=True), nn.Linear(32, 2 * (k + 1))
        )
        last = cast(nn.Linear, self.select[2])
        nn.init.zeros_(last.weight)
        bias = torch.zeros(2, k + 1)
        bias[:, k] = 6.0 / DEBLUR_LOGIT_GAIN  # identity
        last.bias.data.copy_(bias.view(-1))

    @staticmethod
    def features(x: torch.Tensor) -> torch.Tensor:
        """``(B, 8)`` whole-image statistics of ``x`` ``(B, 1, H, W)``."""
        var = x.var(dim=(1, 2, 3)) + 1e-6
        feats = []
        for dim in (2, 3):
            n = x.shape[dim]
            for lag in DEBLUR_LAGS:
                d = x.narrow(dim, lag, n - lag) - x.narrow(dim, 0, n - lag)
                feats.append(torch.log(d.pow(2).mean(dim=(1, 2, 3)) / var + 1e-6))
            mid = x.narrow(dim, 1, n - 2)
            d2 = x.narrow(dim, 2, n - 2) + x.narrow(dim, 0, n - 2) - 2.0 * mid
            feats.append(torch.log(d2.pow(2).mean(dim=(1, 2, 3)) / var + 1e-6))
        return torch.stack(feats, dim=1)

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Axial and lateral mixing weights ``(B, K + 1, 1, 1)`` each (last: identity)."""
        logits = DEBLUR_LOGIT_GAIN * self.select(self.features(x)).view(x.shape[0], 2, -1)
        w = torch.softmax(logits, dim=2)
        return w[:, 0, :, None, None], w[:, 1, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.weights(x)
        k = len(DEBLUR_SIGMAS_PX)
        half = DEBLUR_TAPS // 2
        x = x + _mix(self.axial(F.pad(x, (0, 0, half, half), mode="reflect")), beta[:, :k])
        return x + _mix(self.lateral(F.pad(x, (half, half, 0, 0), mode="reflect")), gamma[:, :k])


def _mix(detail: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_i weights_i · detail_i`` per image (``detail`` ``(B, K, H, W)``, ``weights``
    ``(B, K, 1, 1)``) as one batched matrix product: on CPUs a single pass over the K maps where a
    broadcast multiply and a channel sum take two (OpenVINO: the stage 2.0 → 1.1 ms at 256×256)."""
    b, k, h, w = detail.shape
    mixed = torch.matmul(weights.reshape(b, 1, k), detail.reshape(b, k, h * w))
    return mixed.reshape(b, 1, h, w)


class EnhanceStudent(nn.Module):
    """Plain-conv three-level enhancer (see the module docstring)."""

    def __init__(self, arch: EnhanceArch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.deblur = InverseFilterBank() if arch.deblur else None
        fold = 2 if arch.space_to_depth else 1
        self.unshuffle = nn.PixelUnshuffle(fold) if fold > 1 else None
        self.stem = _conv(fold * fold, w)
        self.down0 = _conv(w, 2 * w, stride=2)
        self.down1 = _conv(2 * w, 4 * w, stride=2)
        self.context = GlobalContext(w) if arch.context else None
        self.body = nn.Sequential(*[_conv(4 * w, 4 * w) for _ in range(arch.depth)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), nn.ReLU(inplace=True))
        self.fuse1 = _conv(2 * w, 2 * w)
        self.up0 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 2, 2), nn.ReLU(inplace=True))
        self.fuse0 = _conv(w, w)
        self.refine = nn.Sequential(*[_conv(w, w) for _ in range(arch.full_depth - 1)])
        self.head = nn.Conv2d(w, fold * fold, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(fold) if fold > 1 else None

    @property
    def feature_channels(self) -> int:
        return self.arch.width

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``out`` (full resolution) and ``feat``, the last decoder features (at 1/2 resolution
        with ``space_to_depth``)."""
        if self.deblur is not None:
            x = self.deblur(x)
        u = x if self.unshuffle is None else self.unshuffle(x)
        s0 = self.stem(u)
        s1 = self.down0(s0)
        m = self.down1(s1)
        c4, c2, c1 = self.context(m) if self.context is not None else (0.0, 0.0, 0.0)
        m = self.body(m + c4)
        d1 = self.fuse1(self.up1(m) + s1 + c2)
        d0 = self.refine(self.fuse0(self.up0(d1) + s0 + c1))
        out = u + self.head(d0)  # space_to_depth: the residual is added before the shuffle,
        # at 1/2 resolution (the same sum; full-resolution 1-channel ops are slow on CPUs)
        return {"out": out if self.shuffle is None else self.shuffle(out), "feat": d0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


EnhanceNet = SwinConvUNet | EnhanceStudent


def build(arch: EnhanceArch | dict[str, Any]) -> EnhanceNet:
    """The network for ``arch`` (an :class:`EnhanceArch` or its ``to_dict()``)."""
    if isinstance(arch, dict):
        arch = EnhanceArch.from_dict(arch)
    return SwinConvUNet(arch) if arch.kind == "teacher" else EnhanceStudent(arch)


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def macs_per_pixel(net: nn.Module, size: int | None = None) -> float:
    """Multiply-accumulates per input pixel: convolutions, transposed convolutions, linear layers
    and the two matrix products of every window attention (``2 n d`` per token and head)."""
    arch = getattr(net, "arch", None)
    if size is None:
        size = max(64, 2 * arch.size_multiple) if isinstance(arch, EnhanceArch) else 64
    total = [0]

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += int(out.numel()) * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels // mod.groups
            total[0] += int(inp[0].numel()) * k
        elif isinstance(mod, nn.Linear):
            total[0] += int(out.numel()) * mod.in_features
        elif isinstance(mod, WindowAttention):
            tokens = int(out.numel()) // mod.channels
            total[0] += 2 * tokens * mod.window * mod.window * mod.channels

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, WindowAttention)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, size, size))
    net.train(was_training)
    for h in handles:
        h.remove()
    return total[0] / float(size * size)


def load_state(net: nn.Module, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load ``state`` into ``net``, refusing weights of another architecture clearly."""
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{where} holds weights of another architecture: {first}") from None


class EnhanceDeploy(nn.Module):
    """Export graph: input ``image`` → output ``enhanced`` clipped to ``[0, 1]``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.net(x), 0.0, 1.0)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad ``x`` (B, C, H, W) at the bottom/right to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x, h, w
