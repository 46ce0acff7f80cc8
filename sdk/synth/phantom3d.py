"""A 3D tissue phantom for freehand sweeps: layers, lesions (spheres) and vessels (cylinders).

World coordinates are metres in the first frame's image axes: ``x`` lateral, ``y`` depth (down),
``z`` elevation. Echogenicity is a smooth map; speckle is a 3D-consistent random field (hashed
lattice values, trilinearly interpolated) so overlapping frames see the same speckle, as in
tissue. Example::

    phantom = Phantom3D.default(width_m=0.03, depth_m=0.04, seed=1)
    amplitude = phantom.amplitude(points_m)       # [n, 3] → [n]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError


@dataclass(frozen=True)
class Sphere:
    center_m: tuple[float, float, float]
    radius_m: float
    echogenicity: float


@dataclass(frozen=True)
class Cylinder:
    """A vessel: axis through ``point_m`` along ``direction``; ``flow_m_s`` for Doppler."""

    point_m: tuple[float, float, float]
    direction: tuple[float, float, float]
    radius_m: float
    echogenicity: float = 0.05
    flow_m_s: float = 0.2


@dataclass(frozen=True)
class Phantom3D:
    """Background echogenicity 1 with bright layer boundaries, lesions and vessels."""

    layers_m: tuple[float, ...] = (0.004, 0.012)
    spheres: tuple[Sphere, ...] = ()
    vessels: tuple[Cylinder, ...] = ()
    speckle_cell_m: float = 0.2e-3
    seed: int = 0
    _key: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.speckle_cell_m <= 0:
            raise ConfigError("speckle_cell_m must be > 0 m")
        object.__setattr__(
            self, "_key", int(np.random.SeedSequence(self.seed).generate_state(1)[0])
        )

    @classmethod
    def default(cls, width_m: float = 0.03, depth_m: float = 0.04, seed: int = 0) -> Phantom3D:
        """Two layers, a bright and a dark lesion and two vessels, centred under the probe."""
        cx = width_m / 2
        return cls(
            layers_m=(0.1 * depth_m, 0.3 * depth_m),
            spheres=(
                Sphere(
                    (cx - 0.2 * width_m, 0.55 * depth_m, 0.002), 0.12 * min(width_m, depth_m), 4.0
                ),
                Sphere(
                    (cx + 0.22 * width_m, 0.7 * depth_m, -0.003), 0.1 * min(width_m, depth_m), 0.2
                ),
            ),
            vessels=(
                Cylinder((cx, 0.45 * depth_m, 0.0), (1.0, 0.0, 0.3), 0.06 * depth_m),
                Cylinder((cx + 0.1 * width_m, 0.8 * depth_m, 0.0), (0.2, 0.0, 1.0), 0.04 * depth_m),
            ),
            seed=seed,
        )

    def echogenicity(self, points_m: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Mean scattering strength at ``points_m`` [n, 3] (1 = background tissue)."""
        p = np.asarray(points_m, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise DataError(f"points have shape {p.shape}: expected [n, 3]")
        out = np.ones(len(p), np.float64)
        for depth in self.layers_m:
            out += 2.5 * np.exp(-0.5 * ((p[:, 1] - depth) / 0.25e-3) ** 2)
        for s in self.spheres:
            inside = np.sum((p - np.asarray(s.center_m)) ** 2, axis=1) <= s.radius_m**2
            out[inside] = s.echogenicity
        for v in self.vessels:
            out[self.in_vessel(p, v)] = v.echogenicity
        return out.astype(np.float32)

    @staticmethod
    def in_vessel(points_m: np.ndarray, vessel: Cylinder) -> npt.NDArray[np.bool_]:
        d = np.asarray(vessel.direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        rel = points_m - np.asarray(vessel.point_m)
        radial = rel - np.outer(rel @ d, d)
        return np.sum(radial**2, axis=1) <= vessel.radius_m**2

    def blood_mask(self, points_m: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Points inside any vessel."""
        p = np.asarray(points_m, dtype=np.float64)
        mask = np.zeros(len(p), bool)
        for v in self.vessels:
            mask |= self.in_vessel(p, v)
        return mask

    def speckle(self, points_m: npt.ArrayLike) -> npt.NDArray[np.complex64]:
        """Complex Gaussian speckle field (unit mean power), identical wherever frames overlap."""
        p = np.asarray(points_m, dtype=np.float64) / self.speckle_cell_m
        base = np.floor(p)
        frac = p - base
        ib = base.astype(np.int64)
        out = np.zeros(len(p), np.complex128)
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    w = (
                        (frac[:, 0] if dx else 1 - frac[:, 0])
                        * (frac[:, 1] if dy else 1 - frac[:, 1])
                        * (frac[:, 2] if dz else 1 - frac[:, 2])
                    )
                    out += w * self._lattice(ib[:, 0] + dx, ib[:, 1] + dy, ib[:, 2] + dz)
        # Trilinear blending lowers the variance; 8/27 is its mean over the cell.
        return (out / np.sqrt(8 / 27)).astype(np.complex64)

    def _lattice(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Deterministic complex Gaussian value per lattice node (hash → Box-Muller)."""
        h = _mix(
            i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ j.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ k.astype(np.uint64) * np.uint64(0x165667B19E3779F9)
            ^ np.uint64(self._key)
        )
        h2 = _mix(h ^ np.uint64(0xD6E8FEB86659FD93))
        u1 = ((h >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53
        u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
        r = np.sqrt(-np.log(u1))
        return r * np.exp(2j * np.pi * u2)

    def amplitude(self, points_m: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Speckled echo amplitude ``sqrt(echogenicity) · |speckle|``."""
        p = np.asarray(points_m, dtype=np.float64)
        return (np.sqrt(self.echogenicity(p)) * np.abs(self.speckle(p))).astype(np.float32)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (vectorised, wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
