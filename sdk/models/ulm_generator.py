"""Physics-parameter-guided microbubble frame generator (PgD): a small conditional diffusion model.

The network denoises a frame ``x_t`` (the display scale of :mod:`sonoedge.train.ulm_data`, mapped
to ``[-1, 1]``) given the bubble conditioning maps (more input channels: the amplitude splat and,
with ``pos_channels = 3``, each bubble's two-way echo phase as a splatted unit phasor, see
:func:`sonoedge.zoo.ulm.conditioning_maps`) and, through FiLM
(per-channel scale and shift in every block), the normalised physical parameter vector and the
diffusion time. It predicts the clean frame ``x_0`` (``x_0``-parameterisation suits the few-step
deterministic DDIM sampler, :func:`sample`). Noise schedule: cosine (Nichol & Dhariwal 2021) over
continuous time ``t`` in ``[0, 1]``.

Architecture (:class:`GeneratorNet`): a two-level U-Net — ``width`` channels at full resolution,
``2 * width`` at half and quarter resolution, one FiLM residual block per level on the way down
and up, concatenated skips, GroupNorm + SiLU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.zoo.ulm import from_network_scale, mirror_conditioning, mirror_set, sample_times

N_PARAMS = 7
TIME_FEATURES = 16


@dataclass(frozen=True)
class GeneratorArch:
    """Hyper-parameters that fix the generator's weight shapes, its conditioning maps and the
    scale it works on (``display_exponent``: the network sees ``2 d**e - 1`` of the display
    ``d``; 1 linear, 0.5 square root, which lifts the faint noise and clutter texture)."""

    width: int = 32
    n_params: int = N_PARAMS
    pos_channels: int = 1
    margin_px: int = 0
    display_exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"width={self.width} is invalid: expected a multiple of 8, >= 8")
        if self.pos_channels not in (1, 3):
            raise ConfigError(f"pos_channels={self.pos_channels} is invalid: expected 1 or 3")
        if self.margin_px not in (0, 2, 4):
            raise ConfigError(f"margin_px={self.margin_px} is invalid: expected 0, 2 or 4")
        if not 0.2 <= self.display_exponent <= 1.0:
            raise ConfigError(
                f"display_exponent={self.display_exponent} is invalid: expected 0.2..1.0"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"name": "ulm-generator-v1", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorArch:
        if not isinstance(data, dict) or data.get("name") != "ulm-generator-v1":
            raise ConfigError(f"architecture {data!r} is not a ULM generator")
        return cls(
            int(data["width"]),
            int(data["n_params"]),
            int(data.get("pos_channels", 1)),
            int(data.get("margin_px", 0)),
            float(data.get("display_exponent", 1.0)),
        )


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule: signal fraction ``ᾱ(t)`` for ``t`` in ``[0, 1]`` (clipped away from 0)."""
    s = 0.008
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(1e-4, 0.9999)


def time_features(t: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features ``(B, TIME_FEATURES)`` of times ``(B,)`` in ``[0, 1]``."""
    half = TIME_FEATURES // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1000.0) / half))
    ang = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([torch.sin(ang), torch.cos(ang)], 1)


class FilmBlock(nn.Module):
    """Residual block: GN → SiLU → 3×3 conv, FiLM from the embedding, GN → SiLU → 3×3 conv."""

    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(8 if c_in % 8 == 0 else 1, c_in)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb, 2 * c_out)
        self.n2 = nn.GroupNorm(8, c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = self.n2(h) * (1 + scale) + shift
        h = self.c2(F.silu(h))
        return h + self.skip(x)


class GeneratorNet(nn.Module):
    """``forward(x_t, pos_map, cond, t) -> x_0`` estimate, ``(B, 1, H, W)`` (H, W multiples of 4);
    ``pos_map`` ``(B, pos_channels, H + 2 m, W + 2 m)`` with ``m = margin_px`` (bubbles just
    outside the frame, whose PSFs reach into it); ``cond`` ``(B, n_params)`` normalised
    parameters, ``t`` ``(B,)`` in ``[0, 1]``. With a margin the frame is zero-padded to the maps'
    grid and the estimate cropped back."""

    def __init__(self, arch: GeneratorArch) -> None:
        super().__init__()
        self.arch = arch
        w, emb = arch.width, 4 * arch.width
        self.embed = nn.Sequential(
            nn.Linear(arch.n_params + TIME_FEATURES, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        self.stem = nn.Conv2d(1 + arch.pos_channels, w, 3, padding=1)
        self.d1 = FilmBlock(w, w, emb)
        self.down1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.d2 = FilmBlock(2 * w, 2 * w, emb)
        self.down2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid = FilmBlock(2 * w, 2 * w, emb)
        self.up2 = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2)
        self.u2 = FilmBlock(4 * w, 2 * w, emb)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.u1 = FilmBlock(2 * w, w, emb)
        self.out = nn.Sequential(nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, 1, 3, padding=1))

    def forward(
        self, x_t: torch.Tensor, pos_map: torch.Tensor, cond: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        e = self.embed(torch.cat([cond, time_features(t)], 1))
        pad = self.arch.margin_px
        if pad:
            x_t = F.pad(x_t, (pad, pad, pad, pad))
        h0 = self.d1(self.stem(torch.cat([x_t, pos_map], 1)), e)
        h1 = self.d2(self.down1(h0), e)
        m = self.mid(self.down2(h1), e)
        u = self.u2(torch.cat([self.up2(m), h1], 1), e)
        u = self.u1(torch.cat([self.up1(u), h0], 1), e)
        out = self.out(u)
        return out[:, :, pad:-pad, pad:-pad] if pad else out


def build(arch: GeneratorArch | dict[str, Any]) -> GeneratorNet:
    return GeneratorNet(arch if isinstance(arch, GeneratorArch) else GeneratorArch.from_dict(arch))


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def diffusion_loss(
    net: GeneratorNet,
    x0: torch.Tensor,
    pos_map: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """MSE of the ``x_0`` estimate at a random time, weighted by ``min(SNR, 5) / SNR`` + 1
    (the signal-to-noise clipped weighting that keeps high-noise steps learning)."""
    b = x0.shape[0]
    t = torch.rand(b, generator=generator)
    ab = alpha_bar(t)[:, None, None, None]
    noise = torch.randn(x0.shape, generator=generator)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    pred = net(x_t, pos_map, cond, t)
    snr = ab / (1 - ab)
    weight = torch.clamp(snr, max=5.0) / snr + 1.0
    return (weight * (pred - x0) ** 2).mean()


@torch.no_grad()
def sample(
    net: GeneratorNet,
    pos_map: npt.NDArray[np.float32],
    cond: npt.NDArray[np.float32],
    steps: int = 10,
    seed: int = 0,
    batch: int = 64,
    noise: npt.NDArray[np.float32] | None = None,
    time_power: float = 1.0,
    mirror_average: int = 1,
) -> npt.NDArray[np.float32]:
    """Deterministic DDIM sampling (``eta = 0``) of frames ``(S, H, W)`` on the display scale
    ``[0, 1]`` for conditioning maps ``(S, H, W)`` (one channel, no margin) or
    ``(S, C, H + 2 m, W + 2 m)`` (``m = net.arch.margin_px``) and normalised parameter vectors
    ``(S, 7)``.
    The starting noise comes from ``seed`` (same seed, same frames) unless given
    (``(S, 1, H, W)``); times as :func:`sonoedge.zoo.ulm.sample_times` with ``time_power``; each
    step's estimate averaged over ``mirror_average`` mirror images as
    :meth:`sonoedge.zoo.ulm.UlmGenerator.sample`."""
    if steps < 1:
        raise ConfigError(f"steps={steps} is invalid: expected >= 1")
    mirrors = mirror_set(mirror_average)
    net.eval()
    gen = torch.Generator().manual_seed(int(seed))
    maps = pos_map[:, None] if pos_map.ndim == 3 else pos_map
    margin = net.arch.margin_px
    s, _, h, w = maps.shape
    h, w = h - 2 * margin, w - 2 * margin
    out = np.empty((s, h, w), np.float32)
    times = torch.from_numpy(sample_times(steps, time_power)).float()
    for i in range(0, s, batch):
        chunk = np.ascontiguousarray(maps[i : i + batch], np.float32)
        pm = torch.from_numpy(np.concatenate([mirror_conditioning(chunk, *m) for m in mirrors]))
        c = torch.from_numpy(np.ascontiguousarray(cond[i : i + batch], np.float32))
        c = c.repeat(len(mirrors), 1)
        n = chunk.shape[0]
        x = torch.randn((n, 1, h, w), generator=gen)
        if noise is not None:
            x = torch.from_numpy(np.ascontiguousarray(noise[i : i + batch], np.float32))
        for k in range(steps):
            t, t_next = times[k], times[k + 1]
            ab = alpha_bar(t.expand(n))[:, None, None, None]
            x_all = torch.cat([_flip(x, *m) for m in mirrors])
            est = net(x_all, pm, c, t.expand(len(x_all))).chunk(len(mirrors))
            x0 = torch.stack([_flip(e, *m) for e, m in zip(est, mirrors, strict=True)])
            x0 = x0.mean(0).clamp(-1.0, 1.0)
            if k == steps - 1:
                x = x0
                break
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            ab_next = alpha_bar(t_next.expand(n))[:, None, None, None]
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        out[i : i + n] = from_network_scale(x[:, 0].numpy(), net.arch.display_exponent)
    return out


def _flip(x: torch.Tensor, lateral: bool, axial: bool) -> torch.Tensor:
    dims = [d for d, on in ((-1, lateral), (-2, axial)) if on]
    return torch.flip(x, dims) if dims else x
