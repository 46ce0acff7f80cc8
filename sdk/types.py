"""Core data types: plain dataclasses around numpy arrays.

Conventions: SI units in field names; timestamps in seconds on the host clock; image arrays are
indexed ``[axial, lateral]`` (rows go down in depth, columns go across the aperture); a frame's
``spacing_m`` and ``origin_m`` follow the same ``(axial, lateral)`` order. On a ``"polar"`` grid
(convex/phased beam space) the lateral axis is the beam angle in radians about the probe's apex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

Geometry = Literal["linear", "convex", "phased"]
Grid = Literal["cartesian", "polar"]
GEOMETRIES: tuple[Geometry, ...] = ("linear", "convex", "phased")
GRIDS: tuple[Grid, ...] = ("cartesian", "polar")
SPEED_OF_SOUND_M_S = 1540.0


def _require(condition: bool, name: str, valid: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r} is invalid: expected {valid}")


@dataclass(frozen=True)
class ProbeInfo:
    """What a probe is: the transducer description that drives ingest, simulators and models."""

    model: str = "virtual-L7"
    serial: str = "0000"
    geometry: Geometry = "linear"
    center_frequency_hz: float = 7.5e6
    bandwidth_fraction: float = 0.6
    n_elements: int = 128
    pitch_m: float = 0.3e-3
    radius_m: float = 0.0
    sampling_frequency_hz: float = 30e6
    depth_range_m: tuple[float, float] = (0.0, 0.04)
    imu_to_image: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    firmware_version: str = "0.0.0"

    def __post_init__(self) -> None:
        _require(self.geometry in GEOMETRIES, "geometry", f"one of {GEOMETRIES}", self.geometry)
        _require(
            math.isfinite(self.center_frequency_hz) and 0 < self.center_frequency_hz <= 100e6,
            "center_frequency_hz",
            "0 < f <= 100 MHz",
            self.center_frequency_hz,
        )
        _require(
            0 < self.bandwidth_fraction <= 2,
            "bandwidth_fraction",
            "0 < b <= 2",
            self.bandwidth_fraction,
        )
        _require(1 <= self.n_elements <= 65535, "n_elements", "1..65535", self.n_elements)
        _require(0 < self.pitch_m < 0.01, "pitch_m", "0 < pitch < 10 mm", self.pitch_m)
        _require(
            self.radius_m > 0 if self.geometry == "convex" else self.radius_m >= 0,
            "radius_m",
            "> 0 for convex probes, >= 0 otherwise",
            self.radius_m,
        )
        _require(
            self.sampling_frequency_hz >= self.center_frequency_hz,
            "sampling_frequency_hz",
            ">= the centre frequency (IQ sampling)",
            self.sampling_frequency_hz,
        )
        near, far = self.depth_range_m
        _require(0 <= near < far <= 1.0, "depth_range_m", "0 <= near < far <= 1 m", (near, far))
        calib = np.asarray(self.imu_to_image, dtype=np.float64)
        _require(calib.shape == (4, 4), "imu_to_image", "a 4x4 matrix", calib.shape)
        object.__setattr__(self, "imu_to_image", calib)

    @property
    def wavelength_m(self) -> float:
        """Wavelength in soft tissue at the centre frequency."""
        return SPEED_OF_SOUND_M_S / self.center_frequency_hz

    @property
    def aperture_m(self) -> float:
        """Physical width of the element row."""
        return self.n_elements * self.pitch_m


@dataclass(frozen=True)
class _Image:
    spacing_m: tuple[float, float]
    origin_m: tuple[float, float] = (0.0, 0.0)
    grid: Grid = "cartesian"
    timestamp_s: float = 0.0
    frame_index: int = 0


@dataclass(frozen=True)
class BmodeFrame(_Image):
    """A display-ready B-mode image, ``image[axial, lateral]`` (uint8, uint16 or float32)."""

    image: npt.NDArray[np.generic] = field(default_factory=lambda: np.zeros((0, 0), np.uint8))


@dataclass(frozen=True)
class IQFrame(_Image):
    """One beamformed complex baseband frame, ``iq[axial, lateral]`` (complex64)."""

    iq: npt.NDArray[np.complex64] = field(default_factory=lambda: np.zeros((0, 0), np.complex64))


@dataclass(frozen=True)
class IQEnsemble(_Image):
    """N consecutive IQ frames at a pulse repetition frequency, ``iq[frame, axial, lateral]``."""

    iq: npt.NDArray[np.complex64] = field(default_factory=lambda: np.zeros((0, 0, 0), np.complex64))
    prf_hz: float = 1000.0

    @property
    def n_frames(self) -> int:
        return int(self.iq.shape[0])


@dataclass(frozen=True)
class ImuBatch:
    """IMU samples: gyroscope in °/s, accelerometer in g, magnetometer in µT (optional)."""

    times_s: npt.NDArray[np.float64]
    gyro_dps: npt.NDArray[np.float32]
    accel_g: npt.NDArray[np.float32]
    mag_ut: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        n = len(self.times_s)
        for name in ("gyro_dps", "accel_g", "mag_ut"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, 3):
                raise DataError(f"ImuBatch.{name} has shape {arr.shape}: expected ({n}, 3)")

    def __len__(self) -> int:
        return len(self.times_s)


ProbeState = Literal["idle", "streaming", "error"]
ProbeMode = Literal["bmode", "iq", "doppler"]
PROBE_STATES: tuple[ProbeState, ...] = ("idle", "streaming", "error")
PROBE_MODES: tuple[ProbeMode, ...] = ("bmode", "iq", "doppler")


@dataclass(frozen=True)
class ProbeStatus:
    """A probe heartbeat: what it is doing and its settings."""

    state: ProbeState
    mode: ProbeMode
    depth_m: float
    prf_hz: float
    gain_db: float
    temperature_c: float
    frames_sent: int
    frames_dropped: int
    timestamp_s: float = 0.0


@dataclass(frozen=True)
class ProbeFault:
    """An error the probe reported about itself."""

    code: int
    message: str
    timestamp_s: float = 0.0


@dataclass(frozen=True)
class LinkGap:
    """The link was down from ``start_s`` to ``end_s`` (host clock); data in between is lost."""

    start_s: float
    end_s: float
    reason: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Pose:
    """Image-to-world transform (4x4, metres) of one frame; ``valid`` is False when unknown."""

    matrix: npt.NDArray[np.float64]
    timestamp_s: float = 0.0
    valid: bool = True


@dataclass(frozen=True)
class Sweep:
    """A freehand sweep: frames ``[n, axial, lateral]`` with per-frame poses and optional IMU."""

    frames: npt.NDArray[np.generic]
    spacing_m: tuple[float, float]
    timestamps_s: npt.NDArray[np.float64]
    poses: npt.NDArray[np.float64] | None = None
    imu: ImuBatch | None = None
    probe: ProbeInfo | None = None


@dataclass(frozen=True)
class Volume:
    """A 3D image in LPS world coordinates (metres).

    ``data`` is indexed ``[k, j, i]`` (i fastest, as ITK/NRRD store it). ``spacing_m`` is
    ``(di, dj, dk)``; ``origin_m`` is the LPS position of voxel ``[0, 0, 0]``; the columns of
    ``direction`` are the LPS unit vectors of the i, j and k axes.
    """

    data: npt.NDArray[np.generic]
    spacing_m: tuple[float, float, float]
    origin_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(3))


Sample = BmodeFrame | IQFrame | IQEnsemble | ImuBatch | ProbeStatus | ProbeFault | LinkGap
"""Anything a probe reader yields."""
