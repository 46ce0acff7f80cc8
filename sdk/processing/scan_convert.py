"""Scan conversion of convex/phased beam-space images (range x angle) to a Cartesian grid.

A polar image is indexed ``[range, beam]``: row ``i`` is the depth ``r0 + i * dr`` along the beam
from the probe face and column ``j`` the beam angle ``theta0 + j * dtheta`` (radians, 0 = straight
down) about the apex, which lies ``radius_m`` above the face centre (0 for phased arrays). Output
pixel ``(z, x)`` (z down from the face centre) samples ``rho = hypot(x, z + radius_m)`` and
``theta = atan2(x, z + radius_m)``. Maps are built once per geometry and reused (OpenCV remap with
fixed-point maps).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing._checks import as_image, as_spacing, require
from sonoedge.types import BmodeFrame, ProbeInfo


@dataclass(frozen=True)
class ScanGeometry:
    """Beam-space sampling of a convex or phased image (all lengths in metres, angles in rad)."""

    geometry: str
    n_range: int
    n_beams: int
    range_spacing_m: float
    angle_spacing_rad: float
    range_origin_m: float = 0.0
    angle_origin_rad: float = 0.0
    radius_m: float = 0.0
    output_spacing_m: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        require(
            self.geometry in ("convex", "phased"),
            "geometry",
            "'convex' or 'phased' (linear images need no scan conversion)",
            self.geometry,
        )
        if self.geometry == "convex" and not self.radius_m > 0:
            raise ConfigError(
                f"radius_m={self.radius_m!r} is invalid: a convex probe needs its radius (> 0)",
                hint="set ProbeInfo.radius_m for convex probes",
            )
        require(self.radius_m >= 0, "radius_m", ">= 0", self.radius_m)
        require(self.n_range >= 2 and self.n_beams >= 2, "image shape", ">= 2x2", self.n_range)
        require(
            self.range_spacing_m > 0, "range spacing (spacing_m[0])", "> 0", self.range_spacing_m
        )
        require(
            0 < self.angle_spacing_rad < math.pi / 8,
            "angle spacing (spacing_m[1], radians)",
            "0 < dtheta < pi/8",
            self.angle_spacing_rad,
        )
        require(self.range_origin_m >= 0, "range origin (origin_m[0])", ">= 0", self.range_origin_m)
        span = self.angle_origin_rad + np.array([0, self.n_beams - 1]) * self.angle_spacing_rad
        require(
            bool(np.all(np.abs(span) < math.pi / 2)),
            "beam angles",
            "within (-90, 90) degrees",
            tuple(span),
        )
        if self.output_spacing_m is not None:
            as_spacing(self.output_spacing_m, "output_spacing_m")


@dataclass(frozen=True)
class ScanMaps:
    """Cached remap tables and the Cartesian grid they produce."""

    map1: npt.NDArray[np.int16]
    map2: npt.NDArray[np.uint16]
    inside: npt.NDArray[np.bool_]
    spacing_m: tuple[float, float]
    origin_m: tuple[float, float]


@functools.lru_cache(maxsize=16)
def scan_maps(geom: ScanGeometry) -> ScanMaps:
    """Build (once per geometry) the OpenCV remap tables for ``geom``."""
    r_apex = geom.radius_m
    rho = r_apex + geom.range_origin_m + np.array([0.0, geom.n_range - 1]) * geom.range_spacing_m
    theta = geom.angle_origin_rad + np.array([0.0, geom.n_beams - 1]) * geom.angle_spacing_rad
    dz, dx = geom.output_spacing_m or (geom.range_spacing_m, geom.range_spacing_m)
    corners_x = np.outer(rho, np.sin(theta))
    corners_z = np.outer(rho, np.cos(theta)) - r_apex
    z_min = float(corners_z.min())
    z_max = float(rho[1] - r_apex) if theta[0] <= 0 <= theta[1] else float(corners_z.max())
    x_min, x_max = float(corners_x.min()), float(corners_x.max())
    n_z = math.floor((z_max - z_min) / dz) + 1
    n_x = math.floor((x_max - x_min) / dx) + 1
    require(n_z * n_x <= 64_000_000, "output_spacing_m", "a grid of at most 64 Mpixels", (dz, dx))
    z = (z_min + np.arange(n_z) * dz)[:, None]
    x = (x_min + np.arange(n_x) * dx)[None, :]
    rho_px = np.hypot(x, z + r_apex)
    theta_px = np.arctan2(x, z + r_apex)
    row = (rho_px - r_apex - geom.range_origin_m) / geom.range_spacing_m
    col = (theta_px - geom.angle_origin_rad) / geom.angle_spacing_rad
    eps = 1e-6
    inside = (row >= -eps) & (row <= geom.n_range - 1 + eps) & (col >= -eps)
    inside &= col <= geom.n_beams - 1 + eps
    map1, map2 = cv2.convertMaps(
        col.astype(np.float32), row.astype(np.float32), cv2.CV_16SC2, nninterpolation=False
    )
    return ScanMaps(map1, map2, inside, (float(dz), float(dx)), (z_min, x_min))


def scan_convert(
    image: npt.ArrayLike,
    geometry: str,
    spacing_m: tuple[float, float],
    origin_m: tuple[float, float] = (0.0, 0.0),
    radius_m: float = 0.0,
    output_spacing_m: tuple[float, float] | None = None,
    fill: float = 0.0,
) -> tuple[npt.NDArray[np.float32], tuple[float, float], tuple[float, float]]:
    """Scan-convert a polar image ``[range, beam]`` and return ``(image, spacing_m, origin_m)``.

    ``spacing_m``/``origin_m`` are ``(range m, angle rad)`` as on a ``"polar"`` frame; the output
    spacing defaults to the range spacing in both directions. Pixels outside the fan get ``fill``.

    Example: ``img, sp, org = scan_convert(polar, "phased", (2e-4, 0.01), (0.0, -0.6))``.
    """
    img = as_image(image)
    geom = ScanGeometry(
        geometry=geometry,
        n_range=img.shape[0],
        n_beams=img.shape[1],
        range_spacing_m=float(spacing_m[0]),
        angle_spacing_rad=float(spacing_m[1]),
        range_origin_m=float(origin_m[0]),
        angle_origin_rad=float(origin_m[1]),
        radius_m=float(radius_m),
        output_spacing_m=None if output_spacing_m is None else as_spacing(output_spacing_m),
    )
    maps = scan_maps(geom)
    out = np.asarray(
        cv2.remap(img, maps.map1, maps.map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        np.float32,
    )
    out[~maps.inside] = np.float32(fill)
    return out, maps.spacing_m, maps.origin_m


def scan_convert_frame(
    frame: BmodeFrame, probe: ProbeInfo, output_spacing_m: tuple[float, float] | None = None
) -> BmodeFrame:
    """Scan-convert a ``grid="polar"`` B-mode frame of a convex/phased ``probe`` to Cartesian."""
    if frame.grid != "polar":
        raise DataError(f"frame grid is {frame.grid!r}: scan conversion expects a 'polar' frame")
    if probe.geometry == "linear":
        raise ConfigError(
            "probe geometry is 'linear': scan conversion needs a 'convex' or 'phased' probe",
            hint="linear-array frames are already Cartesian",
        )
    out, spacing, origin = scan_convert(
        frame.image,
        probe.geometry,
        frame.spacing_m,
        frame.origin_m,
        probe.radius_m,
        output_spacing_m,
    )
    if np.issubdtype(frame.image.dtype, np.integer):
        info = np.iinfo(frame.image.dtype.type)  # type: ignore[type-var]
        out = np.clip(np.round(out), info.min, info.max).astype(frame.image.dtype)
    return replace(frame, image=out, spacing_m=spacing, origin_m=origin, grid="cartesian")
