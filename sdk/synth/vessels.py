"""Random branching vessel trees with Poiseuille flow, and particles (blood, bubbles) in them.

A tree is a set of straight cylindrical segments in the image plane. Each particle sits at a
fixed radial offset ``r`` from its segment's axis and moves along it at the Poiseuille speed
``v_max (1 - (r / R)²)``; when it leaves the segment's end it re-enters at the start, which keeps
the particle density constant and positions a continuous function of time between wraps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VesselTree:
    """Segments from ``start_m[i]`` to ``end_m[i]`` ((axial, lateral), metres), with lumen
    radius ``radius_m[i]`` and centreline speed ``v_max_m_s[i]`` (flow runs start → end)."""

    start_m: FloatArray
    end_m: FloatArray
    radius_m: FloatArray
    v_max_m_s: FloatArray

    @property
    def n_segments(self) -> int:
        return len(self.radius_m)

    @property
    def length_m(self) -> FloatArray:
        return np.asarray(np.hypot(*(self.end_m - self.start_m).T))

    def directions(self) -> tuple[FloatArray, FloatArray]:
        """Unit vectors along each segment and normal to it, ``(n, 2)`` each."""
        d = (self.end_m - self.start_m) / np.maximum(self.length_m, 1e-12)[:, None]
        return d, np.stack([-d[:, 1], d[:, 0]], axis=1)

    def translated(self, offset_m: npt.ArrayLike) -> VesselTree:
        """The same tree moved by ``offset_m`` = (dz, dx)."""
        d = np.asarray(offset_m, dtype=np.float64).reshape(1, 2)
        return VesselTree(self.start_m + d, self.end_m + d, self.radius_m, self.v_max_m_s)

    def lumen_area_m2(self) -> float:
        return float(np.sum(2 * self.radius_m * self.length_m))

    def rasterize(self, grid: Grid) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Lumen mask and mean axial velocity (m/s, positive = away from the probe) on ``grid``."""
        zc, xc = grid.centres_m()
        zz, xx = np.meshgrid(zc, xc, indexing="ij")
        mask = np.zeros(grid.shape, dtype=bool)
        vz = np.zeros(grid.shape, dtype=np.float32)
        best = np.full(grid.shape, np.inf)
        d, _ = self.directions()
        for i in range(self.n_segments):
            rel_z, rel_x = zz - self.start_m[i, 0], xx - self.start_m[i, 1]
            along = rel_z * d[i, 0] + rel_x * d[i, 1]
            across = np.abs(rel_x * d[i, 0] - rel_z * d[i, 1])
            inside = (along >= 0) & (along <= self.length_m[i]) & (across <= self.radius_m[i])
            rel = across / self.radius_m[i]
            closer = inside & (rel < best)
            best[closer] = rel[closer]
            speed = self.v_max_m_s[i] * (1 - rel**2)
            vz[closer] = (speed * d[i, 0])[closer]
            mask |= inside
        return mask, vz


@dataclass(frozen=True)
class Particles:
    """Particles in a tree: segment index, start offset along it (m) and radial offset (m)."""

    segment: npt.NDArray[np.int64]
    s0_m: FloatArray
    r_m: FloatArray

    def __len__(self) -> int:
        return len(self.segment)


def random_tree(
    rng: np.random.Generator,
    extent_m: tuple[float, float, float, float],
    radius_range_m: tuple[float, float] = (0.15e-3, 1.0e-3),
    speed_range_m_s: tuple[float, float] = (1e-3, 50e-3),
    levels: int = 3,
) -> VesselTree:
    """A random binary tree of ``levels`` generations inside ``(z0, z1, x0, x1)``.

    The root enters from a random point near the edge heading inwards in any direction; each
    segment splits into two at 20–50° with radii scaled by Murray's law (2^(-1/3)). Speeds are
    drawn log-uniformly from ``speed_range_m_s`` per segment.
    """
    r_lo, r_hi = radius_range_m
    v_lo, v_hi = speed_range_m_s
    if not 0 < r_lo <= r_hi:
        raise ConfigError(f"radius_range_m={radius_range_m!r} is invalid: expected 0 < low <= high")
    if not 0 < v_lo <= v_hi:
        raise ConfigError(
            f"speed_range_m_s={speed_range_m_s!r} is invalid: expected 0 < low <= high"
        )
    if not 1 <= levels <= 6:
        raise ConfigError(f"levels={levels!r} is invalid: expected 1..6")
    z0, z1, x0, x1 = extent_m
    size = min(z1 - z0, x1 - x0)
    centre = np.array([(z0 + z1) / 2, (x0 + x1) / 2])
    angle = rng.uniform(0, 2 * math.pi)
    half = np.array([(z1 - z0) / 2, (x1 - x0) / 2])
    start = centre - 0.9 * half * np.array([math.cos(angle), math.sin(angle)])
    heading = angle + rng.uniform(-0.4, 0.4)
    radius = rng.uniform(r_lo, r_hi)
    starts, ends, radii, speeds = [], [], [], []
    stack = [(start, heading, radius, 0)]
    while stack:
        p, th, r, level = stack.pop()
        length = size * rng.uniform(0.25, 0.5) / (1 + 0.3 * level)
        q = p + length * np.array([math.cos(th), math.sin(th)])
        starts.append(p)
        ends.append(q)
        radii.append(max(r, r_lo * 0.5))
        speeds.append(math.exp(rng.uniform(math.log(v_lo), math.log(v_hi))))
        if level + 1 < levels:
            child_r = r * 2 ** (-1 / 3)
            for sign in (-1.0, 1.0):
                stack.append((q, th + sign * rng.uniform(0.35, 0.87), child_r, level + 1))
    return VesselTree(
        start_m=np.array(starts),
        end_m=np.array(ends),
        radius_m=np.array(radii),
        v_max_m_s=np.array(speeds),
    )


def merge_trees(trees: list[VesselTree]) -> VesselTree:
    """One tree holding the segments of several."""
    return VesselTree(
        start_m=np.concatenate([t.start_m for t in trees]),
        end_m=np.concatenate([t.end_m for t in trees]),
        radius_m=np.concatenate([t.radius_m for t in trees]),
        v_max_m_s=np.concatenate([t.v_max_m_s for t in trees]),
    )


def seed_particles(tree: VesselTree, rng: np.random.Generator, n: int) -> Particles:
    """``n`` particles spread uniformly over the lumen area of ``tree``."""
    area = 2 * tree.radius_m * tree.length_m
    segment = rng.choice(tree.n_segments, size=n, p=area / area.sum())
    s0 = rng.uniform(0, 1, size=n) * tree.length_m[segment]
    r = rng.uniform(-1, 1, size=n) * tree.radius_m[segment]
    return Particles(segment=segment.astype(np.int64), s0_m=s0, r_m=r)


def particle_positions(
    tree: VesselTree, particles: Particles, t_s: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Positions at times ``t_s``: axial ``(n_t, n)``, lateral ``(n_t, n)`` and wrap counts.

    The wrap count says how many times a particle has re-entered its segment; a new count is a
    new physical particle (used for track identities).
    """
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))[:, None]
    seg = particles.segment
    length = tree.length_m[seg]
    rel = particles.r_m / tree.radius_m[seg]
    speed = tree.v_max_m_s[seg] * (1 - rel**2)
    travelled = particles.s0_m + speed * t
    wraps = np.floor(travelled / length).astype(np.int64)
    s = travelled - wraps * length
    d, nrm = tree.directions()
    z = tree.start_m[seg, 0] + s * d[seg, 0] + particles.r_m * nrm[seg, 0]
    x = tree.start_m[seg, 1] + s * d[seg, 1] + particles.r_m * nrm[seg, 1]
    return z, x, wraps
