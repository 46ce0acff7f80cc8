"""Echogenicity maps (dB relative to background tissue) and point targets on a grid.

Kinds: ``homogeneous``, ``cyst`` (one anechoic cyst), ``points`` (point targets on weak
background), ``layers`` (tissue layers), ``random`` (layers, cysts, hyperechoic lesions, an
anechoic vessel and a few point targets at random), ``wires`` (a few strong reflectors in water:
an anechoic field, as wire and needle phantoms and the PLUS N-wire recordings show) and
``wires_broad`` (the same plus 1-4 small bright elliptical discs, +20...+45 dB: echoes as broad and
saturated as the N-wire recordings' wires).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid

PhantomKind = Literal["homogeneous", "cyst", "points", "layers", "random", "wires", "wires_broad"]
PHANTOM_KINDS: tuple[PhantomKind, ...] = (
    "homogeneous",
    "cyst",
    "points",
    "layers",
    "random",
    "wires",
    "wires_broad",
)
ANECHOIC_DB = -60.0
"""Level used for cysts and vessel lumens (no scatterers to speak of)."""


@dataclass(frozen=True)
class Phantom:
    """Echogenicity ``echo_db[axial, lateral]`` on ``grid`` plus point targets."""

    grid: Grid
    echo_db: npt.NDArray[np.float32]
    points_m: npt.NDArray[np.float64]
    points_amplitude: npt.NDArray[np.float64]

    def amplitude_at(
        self, z_m: npt.NDArray[np.float64], x_m: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Scatterer amplitude multiplier ``10^(dB/20)`` at positions (nearest pixel, clamped)."""
        (h, w), (dz, dx), (z0, x0) = self.grid.shape, self.grid.spacing_m, self.grid.origin_m
        iz = np.clip(np.rint((z_m - z0) / dz).astype(np.int64), 0, h - 1)
        ix = np.clip(np.rint((x_m - x0) / dx).astype(np.int64), 0, w - 1)
        return np.asarray(10.0 ** (self.echo_db[iz, ix].astype(np.float64) / 20.0))


def make_phantom(kind: PhantomKind, grid: Grid, rng: np.random.Generator) -> Phantom:
    """An echogenicity phantom of ``kind`` on ``grid``."""
    if kind not in PHANTOM_KINDS:
        raise ConfigError(f"phantom={kind!r} is invalid: expected one of {PHANTOM_KINDS}")
    zc, xc = grid.centres_m()
    zz, xx = np.meshgrid(zc, xc, indexing="ij")
    z0, z1, x0, x1 = grid.extent_m()
    depth, width = z1 - z0, x1 - x0
    echo = np.zeros(grid.shape, dtype=np.float64)
    points: list[tuple[float, float]] = []
    amps: list[float] = []

    def disc(cz: float, cx: float, rz: float, rx: float) -> npt.NDArray[np.bool_]:
        return ((zz - cz) / rz) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0

    if kind == "cyst":
        r = 0.15 * min(depth, width)
        echo[disc(z0 + depth / 2, x0 + width / 2, r, r)] = ANECHOIC_DB
    elif kind == "points":
        echo[:] = -40.0
        for fz in (0.2, 0.4, 0.6, 0.8):
            for fx in (0.25, 0.5, 0.75):
                points.append((z0 + fz * depth, x0 + fx * width))
                amps.append(10.0)
    elif kind in ("wires", "wires_broad"):
        echo[:] = ANECHOIC_DB
        for _ in range(int(rng.integers(2, 9))):
            points.append((rng.uniform(z0, z1), rng.uniform(x0, x1)))
            amps.append(float(10.0 ** rng.uniform(1.0, 2.5)))
        if kind == "wires_broad":
            span = min(depth, width)
            for _ in range(int(rng.integers(1, 5))):
                rz, rx = span * rng.uniform(0.01, 0.04), span * rng.uniform(0.02, 0.10)
                ellipse = disc(rng.uniform(z0, z1), rng.uniform(x0, x1), rz, rx)
                echo[ellipse] = rng.uniform(20.0, 45.0)
    elif kind in ("layers", "random"):
        n_layers = int(rng.integers(2, 5))
        bounds = np.sort(rng.uniform(0.1, 0.9, size=n_layers - 1)) * depth + z0
        tilt = rng.uniform(-0.15, 0.15, size=n_layers - 1)
        levels = rng.uniform(-8.0, 6.0, size=n_layers)
        layer = np.zeros(grid.shape, dtype=np.int64)
        for b, t in zip(bounds, tilt, strict=True):
            layer += zz > b + t * (xx - x0 - width / 2)
        echo = levels[layer]
    if kind == "random":
        for _ in range(int(rng.integers(0, 4))):
            r = rng.uniform(0.04, 0.12) * min(depth, width)
            cz, cx = rng.uniform(z0 + r, z1 - r), rng.uniform(x0 + r, x1 - r)
            echo[disc(cz, cx, r, r * rng.uniform(0.7, 1.4))] = ANECHOIC_DB
        for _ in range(int(rng.integers(0, 3))):
            r = rng.uniform(0.04, 0.12) * min(depth, width)
            cz, cx = rng.uniform(z0 + r, z1 - r), rng.uniform(x0 + r, x1 - r)
            echo[disc(cz, cx, r, r * rng.uniform(0.7, 1.4))] += rng.uniform(4.0, 12.0)
        if rng.uniform() < 0.5:
            cz, r = rng.uniform(z0 + 0.2 * depth, z1 - 0.2 * depth), rng.uniform(0.02, 0.06) * depth
            slope = rng.uniform(-0.3, 0.3)
            echo[np.abs(zz - cz - slope * (xx - x0)) <= r] = ANECHOIC_DB
        for _ in range(int(rng.integers(0, 4))):
            points.append((rng.uniform(z0, z1), rng.uniform(x0, x1)))
            amps.append(float(rng.uniform(5.0, 30.0)))
    return Phantom(
        grid=grid,
        echo_db=echo.astype(np.float32),
        points_m=np.array(points, dtype=np.float64).reshape(-1, 2),
        points_amplitude=np.array(amps, dtype=np.float64),
    )
