"""Volume reconstruction: paste posed 2D frames into a 3D grid (PLUS's algorithm, vectorised).

Each frame is a pixel image with a ``pixel_to_world`` matrix (4x4, metres) that maps pixel
``(column, row, 0, 1)`` to world (LPS / tracker reference) coordinates. Pixels inside the clip
rectangle and fan mask are splatted into float accumulators — to the nearest voxel, or to the 8
surrounding voxels with trilinear weights (PLUS's "reverse trilinear" splat) — and compounded by
MEAN, MAXIMUM or LATEST. :meth:`VolumeReconstructor.add_frame` serves live (frame by frame) and
:meth:`VolumeReconstructor.add_frames` batch use; both run the same code, in input order, so the
result is deterministic. Example::

    grid = OutputGrid.covering(pixel_to_world, frame_shape=(480, 640), spacing_m=0.5e-3)
    rec = VolumeReconstructor(grid, interpolation="linear", compounding="mean")
    rec.add_frames(frames, pixel_to_world)
    volume = rec.volume(np.uint8)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import _kernels
from sonoedge.types import Volume

Engine = Literal["auto", "numpy", "numba"]
Interpolation = Literal["nearest", "linear"]
Compounding = Literal["mean", "max", "latest"]
INTERPOLATIONS: tuple[Interpolation, ...] = ("nearest", "linear")
COMPOUNDINGS: tuple[Compounding, ...] = ("mean", "max", "latest")
DEFAULT_MAX_BYTES = 4 << 30
_CHUNK_PIXELS = 1 << 15
_BYTES_PER_VOXEL = 8  # two float32 accumulators


@dataclass(frozen=True)
class ClipRectangle:
    """PLUS clip rectangle in pixels: columns ``c0..c0+width``, rows ``r0..r0+height`` inclusive."""

    origin_px: tuple[int, int]
    size_px: tuple[int, int]

    def bounds(self, frame_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(c0, c1, r0, r1)`` inclusive, limited to the frame."""
        rows, cols = frame_shape
        if self.size_px[0] <= 0 or self.size_px[1] <= 0:
            return 0, cols - 1, 0, rows - 1
        c0 = max(0, self.origin_px[0])
        r0 = max(0, self.origin_px[1])
        c1 = min(cols - 1, self.origin_px[0] + self.size_px[0])
        r1 = min(rows - 1, self.origin_px[1] + self.size_px[1])
        if c0 > c1 or r0 > r1:
            raise ConfigError(
                f"clip rectangle {self.origin_px}+{self.size_px} lies outside the "
                f"{cols}x{rows} frame: expected an origin inside the image"
            )
        return c0, c1, r0, r1


@dataclass(frozen=True)
class FanMask:
    """Sector of a convex/phased image: angles from the +row (depth) axis, radii in pixels."""

    origin_px: tuple[float, float]
    angles_deg: tuple[float, float]
    radius_start_px: float = 0.0
    radius_stop_px: float = math.inf

    def mask(self, frame_shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        rows, cols = frame_shape
        dx = np.arange(cols, dtype=np.float64)[None, :] - self.origin_px[0]
        dy = np.arange(rows, dtype=np.float64)[:, None] - self.origin_px[1]
        angle = np.degrees(np.arctan2(dx, dy))
        radius = np.hypot(dx, dy)
        lo, hi = sorted(self.angles_deg)
        stop = self.radius_stop_px if self.radius_stop_px > 0 else math.inf
        return (angle >= lo) & (angle <= hi) & (radius >= self.radius_start_px) & (radius <= stop)


@dataclass(frozen=True)
class OutputGrid:
    """An axis-aligned voxel grid: ``shape`` is ``(nk, nj, ni)``, origin is voxel ``[0,0,0]``."""

    origin_m: tuple[float, float, float]
    spacing_m: tuple[float, float, float]
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if min(self.spacing_m) <= 0 or not all(map(math.isfinite, self.spacing_m)):
            raise ConfigError(f"spacing_m={self.spacing_m} is invalid: expected > 0")
        if min(self.shape) < 1:
            raise ConfigError(f"grid shape {self.shape} is empty")

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def index_to_world(self) -> npt.NDArray[np.float64]:
        m = np.diag([*self.spacing_m, 1.0])
        m[:3, 3] = self.origin_m
        return m

    @classmethod
    def covering(
        cls,
        pixel_to_world: npt.ArrayLike,
        frame_shape: tuple[int, int],
        spacing_m: float | Sequence[float],
        valid: npt.ArrayLike | None = None,
        clip: ClipRectangle | None = None,
        plus_extent: bool = True,
    ) -> OutputGrid:
        """The grid spanning the clip-rectangle corners of every valid frame.

        With ``plus_extent`` the origin is the lowest corner and the extent ``int(range /
        spacing)``, as in PLUS (the far edge may lose up to one voxel); otherwise the grid has
        half a voxel of margin on every side, so every pixel lands inside even for a flat sweep.
        """
        mats = _as_matrices(pixel_to_world)
        ok = np.ones(len(mats), bool) if valid is None else np.asarray(valid, bool)
        if not ok.any():
            raise DataError("no frame has a valid pose: nothing to reconstruct")
        c0, c1, r0, r1 = (clip or ClipRectangle((0, 0), (0, 0))).bounds(frame_shape)
        corners = np.array([[c0, r0, 0, 1], [c0, r1, 0, 1], [c1, r0, 0, 1], [c1, r1, 0, 1]], float)
        world = np.einsum("nij,cj->nci", mats[ok], corners)[..., :3].reshape(-1, 3)
        lo, hi = world.min(axis=0), world.max(axis=0)
        sp = _spacing3(spacing_m)
        if not plus_extent:
            lo = lo - 0.5 * np.asarray(sp)
            hi = hi + 0.5 * np.asarray(sp)
        span = (hi - lo) / np.asarray(sp)
        ext = np.floor(span + 1e-9) if plus_extent else np.ceil(span - 1e-9)
        ni, nj, nk = (int(v) + 1 for v in ext)
        return cls((float(lo[0]), float(lo[1]), float(lo[2])), sp, (nk, nj, ni))


def _spacing3(spacing_m: float | Sequence[float]) -> tuple[float, float, float]:
    sp = np.broadcast_to(np.asarray(spacing_m, dtype=np.float64), (3,))
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ConfigError(f"spacing_m={spacing_m} is invalid: expected > 0 (metres)")
    return float(sp[0]), float(sp[1]), float(sp[2])


def _as_matrices(pixel_to_world: npt.ArrayLike) -> npt.NDArray[np.float64]:
    mats = np.asarray(pixel_to_world, dtype=np.float64)
    if mats.ndim == 2:
        mats = mats[None]
    if mats.ndim != 3 or mats.shape[1:] != (4, 4):
        raise DataError(f"pixel_to_world has shape {mats.shape}: expected (n, 4, 4)")
    return mats


def check_memory(grid: OutputGrid, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse grids whose accumulators would not fit in ``max_bytes``, saying what they need."""
    need = grid.n_voxels * (_BYTES_PER_VOXEL + 4)
    if need > max_bytes:
        nk, nj, ni = grid.shape
        raise ConfigError(
            f"output volume {ni}x{nj}x{nk} at spacing {tuple(s * 1e3 for s in grid.spacing_m)} mm "
            f"would need {need / 2**30:.1f} GiB (limit {max_bytes / 2**30:.1f} GiB)",
            hint="use a larger --spacing (voxel size in mm) or crop the sweep",
        )


class VolumeReconstructor:
    """Float accumulators for one output grid; frames are pasted in the order they are added."""

    def __init__(
        self,
        grid: OutputGrid,
        interpolation: Interpolation = "linear",
        compounding: Compounding = "mean",
        clip: ClipRectangle | None = None,
        fan: FanMask | None = None,
        importance: npt.ArrayLike | None = None,
        pixel_rejection_threshold: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        engine: Engine = "auto",
        plus_arithmetic: bool = False,
    ) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation={interpolation!r}: expected one of {INTERPOLATIONS}")
        if compounding not in COMPOUNDINGS:
            raise ConfigError(f"compounding={compounding!r}: expected one of {COMPOUNDINGS}")
        if engine not in ("auto", "numpy", "numba"):
            raise ConfigError(f"engine={engine!r}: expected auto, numpy or numba")
        if engine == "numba" and not _kernels.AVAILABLE:
            raise ConfigError(
                "engine='numba' needs numba", hint="pip install 'sonoedge[fast]' or use numpy"
            )
        if plus_arithmetic and (compounding != "mean" or not _kernels.AVAILABLE):
            raise ConfigError(
                "plus_arithmetic reproduces PLUS's MEAN compounding and needs numba",
                hint="use compounding='mean' and pip install 'sonoedge[fast]'",
            )
        self.plus_arithmetic = plus_arithmetic
        check_memory(grid, max_bytes)
        self.engine = "numba" if engine != "numpy" and _kernels.AVAILABLE else "numpy"
        self.grid = grid
        self.interpolation = interpolation
        self.compounding = compounding
        self.clip = clip
        self.fan = fan
        self.importance = None if importance is None else np.asarray(importance, np.float32)
        self.threshold = pixel_rejection_threshold
        self.value = np.zeros(grid.n_voxels, np.float32)
        self.weight = np.zeros(grid.n_voxels, np.float32)
        self.n_frames = 0
        self._stamp = np.full(grid.n_voxels if compounding == "latest" else 0, -1, np.int32)
        self.n_pixels = 0
        self._world_to_index = np.linalg.inv(grid.index_to_world())
        self._mask_cache: dict[tuple[int, int], tuple[tuple[int, int, int, int], np.ndarray | None]]
        self._mask_cache = {}

    # -- pixel selection -------------------------------------------------------------------------

    def _pixels(
        self, frame_shape: tuple[int, int]
    ) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
        cached = self._mask_cache.get(frame_shape)
        if cached is None:
            bounds = (self.clip or ClipRectangle((0, 0), (0, 0))).bounds(frame_shape)
            c0, c1, r0, r1 = bounds
            weights: np.ndarray | None = None
            if self.fan is not None:
                weights = self.fan.mask(frame_shape)[r0 : r1 + 1, c0 : c1 + 1].astype(np.float32)
            if self.importance is not None:
                if self.importance.shape != frame_shape:
                    raise DataError(
                        f"importance mask {self.importance.shape} does not match frames "
                        f"{frame_shape}"
                    )
                imp = self.importance[r0 : r1 + 1, c0 : c1 + 1]
                weights = imp if weights is None else weights * imp
            cached = (bounds, weights)
            self._mask_cache[frame_shape] = cached
        return cached

    # -- pasting ---------------------------------------------------------------------------------

    def add_frame(self, image: npt.ArrayLike, pixel_to_world: npt.ArrayLike) -> int:
        """Paste one frame; returns how many pixels landed inside the grid."""
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0:
            raise DataError(f"frame has shape {img.shape}: expected a 2D image [rows, cols]")
        mat = _as_matrices(pixel_to_world)[0]
        if not np.all(np.isfinite(mat)):
            raise DataError("pixel_to_world contains NaN/Inf")
        (c0, c1, r0, r1), weights = self._pixels((img.shape[0], img.shape[1]))
        if self.plus_arithmetic:
            pasted = _kernels.paste_plus(
                img,
                weights,
                (self._world_to_index @ mat)[:3],
                (c0, c1, r0, r1),
                self.grid.shape,
                self.value,
                self.weight,
                -np.inf if self.threshold is None else float(self.threshold),
                self.interpolation == "nearest",
            )
            self.n_frames += 1
            self.n_pixels += pasted
            return pasted
        if self.engine == "numba":
            mode = {"mean": _kernels.MODE_MEAN, "max": _kernels.MODE_MAX}.get(
                self.compounding, _kernels.MODE_LATEST
            )
            pasted = _kernels.paste(
                img,
                weights,
                (self._world_to_index @ mat)[:3],
                (c0, c1, r0, r1),
                self.grid.shape,
                self.value,
                self.weight,
                self._stamp,
                self.n_frames,
                mode,
                -np.inf if self.threshold is None else float(self.threshold),
                self.interpolation == "nearest",
            )
            self.n_frames += 1
            self.n_pixels += pasted
            return pasted
        m = (self._world_to_index @ mat)[:3].astype(np.float32)
        cols = np.arange(c0, c1 + 1, dtype=np.float32)
        n_cols = cols.size
        rows_per_chunk = max(1, _CHUNK_PIXELS // n_cols)
        pasted = 0
        for ra in range(r0, r1 + 1, rows_per_chunk):
            rb = min(r1 + 1, ra + rows_per_chunk)
            rows = np.arange(ra, rb, dtype=np.float32)
            values = img[ra:rb, c0 : c1 + 1].astype(np.float32)
            w = None if weights is None else weights[ra - r0 : rb - r0]
            keep = None
            if self.threshold is not None:
                keep = values >= self.threshold
            if w is not None:
                keep = (w > 0) if keep is None else keep & (w > 0)
            pasted += self._splat(m, cols, rows, values, w, keep)
        self.n_frames += 1
        self.n_pixels += pasted
        return pasted

    def add_frames(
        self,
        images: npt.ArrayLike,
        pixel_to_world: npt.ArrayLike,
        valid: npt.ArrayLike | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Paste frames ``[n, rows, cols]`` in order, skipping those whose pose is not valid."""
        frames = np.asarray(images)
        mats = _as_matrices(pixel_to_world)
        if frames.ndim != 3 or len(frames) != len(mats):
            raise DataError(f"{frames.shape} frames do not match {len(mats)} pixel_to_world")
        ok = np.ones(len(mats), bool) if valid is None else np.asarray(valid, bool)
        total = 0
        for i in range(len(frames)):
            if ok[i]:
                total += self.add_frame(frames[i], mats[i])
            if progress is not None:
                progress(i)
        return total

    def _coords(
        self, m: npt.NDArray[np.float32], cols: np.ndarray, rows: np.ndarray, offset: float
    ) -> list[npt.NDArray[np.float32]]:
        return [
            (m[a, 0] * cols + (m[a, 3] + offset))[None, :] + (m[a, 1] * rows)[:, None]
            for a in range(3)
        ]

    def _in_bounds(self, coords: list[np.ndarray], nearest: bool) -> np.ndarray | None:
        """Mask of pixels inside the grid, or None when every pixel is (checked on extremes)."""
        nk, nj, ni = self.grid.shape

        def inside(c: np.ndarray, size: int) -> np.ndarray:
            return (c >= 0) & ((c < size) if nearest else (c <= size - 1))

        sizes = (ni, nj, nk)
        if all(
            inside(np.array([c.min(), c.max()]), s).all()
            for c, s in zip(coords, sizes, strict=True)
        ):
            return None
        mask = inside(coords[0], ni)
        mask &= inside(coords[1], nj)
        mask &= inside(coords[2], nk)
        return mask

    def _splat(
        self,
        m: npt.NDArray[np.float32],
        cols: np.ndarray,
        rows: np.ndarray,
        values: np.ndarray,
        w: np.ndarray | None,
        keep: np.ndarray | None,
    ) -> int:
        nk, nj, ni = self.grid.shape
        nearest = self.interpolation == "nearest"
        coords = self._coords(m, cols, rows, 0.5 if nearest else 0.0)
        inside = self._in_bounds(coords, nearest)
        if keep is not None:
            inside = keep if inside is None else inside & keep
        if inside is not None:
            coords = [c[inside] for c in coords]
            values = values[inside]
            w = None if w is None else w[inside]
        else:
            coords = [c.ravel() for c in coords]
            values = values.ravel()
            w = None if w is None else w.ravel()
        n = values.size
        if n == 0:
            return 0
        if nearest:
            flat = coords[0].astype(np.intp)
            flat += coords[1].astype(np.intp) * ni
            flat += coords[2].astype(np.intp) * (ni * nj)
            self._accumulate(flat, values, np.ones(n, np.float32) if w is None else w)
            return n
        base = [np.floor(c) for c in coords]
        frac = [c - b for c, b in zip(coords, base, strict=True)]
        idx = [b.astype(np.intp) for b in base]
        sizes = (ni, nj, nk)
        steps = (1, ni, ni * nj)
        # Neighbour +1 along an axis, held at the last voxel when the point sits exactly on it.
        up = [np.minimum(i + 1, s - 1) * st for i, s, st in zip(idx, sizes, steps, strict=True)]
        lo = [i * st for i, st in zip(idx, steps, strict=True)]
        wx = (1 - frac[0], frac[0])
        wy = (1 - frac[1], frac[1])
        wz = (1 - frac[2], frac[2])
        for dz in (0, 1):
            fz = (up if dz else lo)[2]
            for dy in (0, 1):
                fyz = fz + (up if dy else lo)[1]
                wyz = wy[dy] * wz[dz]
                if w is not None:
                    wyz = wyz * w
                for dx in (0, 1):
                    self._accumulate(fyz + (up if dx else lo)[0], values, wx[dx] * wyz)
        return n

    def _accumulate(self, flat: np.ndarray, values: np.ndarray, w: np.ndarray) -> None:
        if self.compounding == "max":
            hit = w > 0
            np.maximum.at(self.value, flat[hit], values[hit])
            np.add.at(self.weight, flat, w)
        else:
            if self.compounding == "latest":  # voxels forget earlier frames when this one arrives
                stale = flat[self._stamp[flat] != self.n_frames]
                self.value[stale] = 0
                self.weight[stale] = 0
                self._stamp[stale] = self.n_frames
            np.add.at(self.value, flat, values * w)
            np.add.at(self.weight, flat, w)

    # -- results ---------------------------------------------------------------------------------

    def coverage(self) -> npt.NDArray[np.bool_]:
        """Voxels that received any weight, ``[k, j, i]``."""
        return (self.weight > 0).reshape(self.grid.shape)

    def volume(self, dtype: npt.DTypeLike = np.float32) -> Volume:
        """The compounded volume; empty voxels are 0. Integer dtypes are rounded and clipped."""
        hit = self.weight > 0
        out = np.zeros(self.grid.n_voxels, np.float32)
        if self.compounding == "max" or self.plus_arithmetic:
            out[hit] = self.value[hit]
        else:
            out[hit] = self.value[hit] / self.weight[hit]
        dt = np.dtype(dtype)
        if dt.kind in "ui":
            info = np.iinfo(dt)
            out = np.clip(np.rint(out), info.min, info.max)
        return self._wrap(out.astype(dt).reshape(self.grid.shape))

    def weights(self) -> Volume:
        """The accumulation volume (summed splat weight per voxel, float32)."""
        return self._wrap(self.weight.reshape(self.grid.shape).copy())

    def _wrap(self, data: np.ndarray) -> Volume:
        g = self.grid
        return Volume(data=data, spacing_m=g.spacing_m, origin_m=g.origin_m, direction=np.eye(3))
