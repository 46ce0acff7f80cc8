"""Torch-free SONIC inference: IQ ensemble → power Doppler with an exported student (onnxruntime).

The network input is the log energy of the ensemble's SVD components and their tail sums per
pixel (:func:`ensemble_features`, numpy); its output ``y`` in ``[0, 1]`` is blood power in dB
relative to tissue, ``dB = DB_LOW + y * DB_SPAN``. Training imports the same helpers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

DB_LOW = -70.0
DB_SPAN = 50.0
SIZE_MULTIPLE = 4
MIN_SIZE = 16
MAX_SIZE = 2048
FEATURE_EPS = 1e-9
FEATURE_SCALE = 0.25
SPACING_TOLERANCE = 0.2  # relative; beyond it the input is resampled to the trained spacing
FloatArray = npt.NDArray[np.float32]


def power_to_unit(power: npt.ArrayLike) -> FloatArray:
    """Map linear power (relative to tissue) to the network's ``[0, 1]`` range."""
    db = 10.0 * np.log10(np.maximum(np.asarray(power, np.float64), 1e-12))
    return np.clip((db - DB_LOW) / DB_SPAN, 0.0, 1.0).astype(np.float32)


def unit_to_db(unit: npt.ArrayLike) -> FloatArray:
    return (DB_LOW + np.asarray(unit, np.float32) * DB_SPAN).astype(np.float32)


def ensemble_scale(iq: npt.NDArray[np.complex64]) -> float:
    """RMS of the ensemble (the normalisation every SONIC input goes through)."""
    power = np.mean(iq.real.astype(np.float64) ** 2 + iq.imag.astype(np.float64) ** 2)
    rms = math.sqrt(float(power))
    return rms if rms > 0 else 1.0


def ensemble_features(iq: npt.NDArray[np.complex64]) -> FloatArray:
    """``(N, H, W)`` complex → ``(2N, H, W)`` float32 network input.

    With the Casorati matrix ``S`` (pixels × frames) and its right singular vectors ``v_k``
    (descending singular values), ``e_k = |S v_k|^2 / (N rms^2)`` is pixel energy in component
    ``k`` and ``t_k = sum_{j >= k} e_j`` the power Doppler of an SVD filter with low cutoff ``k``,
    both relative to the ensemble's mean power. Channels ``0..N-1`` hold
    ``FEATURE_SCALE * log10(e_k + FEATURE_EPS)``, channels ``N..2N-1`` the same for ``t_k``.
    Invariant to a global gain and phase, time reversal and frame order within the ensemble's span.
    """
    return np.ascontiguousarray(ensemble_features_nhwc(iq).transpose(2, 0, 1))


def ensemble_features_nhwc(iq: npt.NDArray[np.complex64]) -> FloatArray:
    """:func:`ensemble_features` as ``(H, W, 2N)``: the order the per-pixel computation yields,
    without a transpose. ``np.stack(...).transpose(0, 3, 1, 2)`` of these is the network input
    in channels-last memory, which an OpenVINO backend takes without a reorder."""
    from sonoedge.processing.clutter import gram_eig

    n, h, w = iq.shape
    s = iq.reshape(n, -1).T
    _, v = gram_eig(s)
    proj = s @ v.astype(np.complex64)
    energy = (proj.real**2 + proj.imag**2) / np.float32(n * ensemble_scale(iq) ** 2)
    tails = np.cumsum(energy[:, ::-1], axis=1)[:, ::-1]
    feats = np.concatenate([energy, tails], axis=1).reshape(h, w, 2 * n)
    return (np.log10(feats + FEATURE_EPS) * FEATURE_SCALE).astype(np.float32)


def _check_ensemble(iq: object, n_frames: int) -> npt.NDArray[np.complex64]:
    arr = np.asarray(iq)
    if arr.ndim != 3:
        raise DataError(f"iq has shape {arr.shape}: expected (frames, axial, lateral)")
    if not np.iscomplexobj(arr):
        raise DataError(f"iq has real dtype {arr.dtype}: expected complex IQ (complex64)")
    if arr.shape[0] < n_frames:
        raise DataError(
            f"iq has {arr.shape[0]} frame(s): this model needs an ensemble of at least {n_frames}",
            hint=f"acquire >= {n_frames} frames or use a model trained for shorter ensembles",
        )
    if min(arr.shape[1:]) < MIN_SIZE or max(arr.shape[1:]) > MAX_SIZE:
        raise DataError(
            f"iq has {arr.shape[1]}x{arr.shape[2]} pixels: expected {MIN_SIZE}..{MAX_SIZE} per axis"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("iq contains NaN/Inf values", hint="drop invalid frames first")
    return arr.astype(np.complex64, copy=False)


def _resize_complex(iq: npt.NDArray[np.complex64], shape: tuple[int, int]) -> Any:
    import cv2

    h, w = shape
    out = np.empty((iq.shape[0], h, w), np.complex64)
    for k, frame in enumerate(iq):
        re = cv2.resize(np.ascontiguousarray(frame.real), (w, h), interpolation=cv2.INTER_LINEAR)
        im = cv2.resize(np.ascontiguousarray(frame.imag), (w, h), interpolation=cv2.INTER_LINEAR)
        out[k] = re + 1j * im
    return out


class SonicModel:
    """An exported SONIC student/teacher run by onnxruntime (CPU unless told otherwise)."""

    def __init__(
        self,
        onnx_path: str | Path,
        card: dict[str, Any],
        threads: int = 2,
        session: Any = None,
    ) -> None:
        """``session``: where it runs (see :mod:`sonoedge.zoo.backend`); default onnxruntime CPU."""
        from sonoedge.zoo.backend import cpu_session

        self.path = Path(onnx_path)
        self.card = card
        spec = card["input"]
        try:
            self.n_frames = int(spec["n_frames"])
            lo, hi = (float(v) for v in spec["prf_hz_range"])
            self.prf_range_hz = (lo, hi)
            sa, sl = (float(v) for v in spec["spacing_m"])
            self.spacing_m = (sa, sl)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"model card of {self.path} lacks input field {err}") from None
        self.name = str(card.get("name", self.path.stem))
        self.session = session if session is not None else cpu_session(self.path, threads)
        self.device = str(getattr(self.session, "device", "cpu"))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        channels = inp.shape[1]
        if channels != 2 * self.n_frames:
            raise ConfigError(
                f"{self.path} takes {channels} input channels but its card says "
                f"{self.n_frames} frames (= {2 * self.n_frames} channels): the weights come from "
                "another architecture",
                hint="re-export the model with `sonoedge train` so weights and card match",
            )

    def __repr__(self) -> str:
        return (
            f"SonicModel({self.name!r}, n_frames={self.n_frames}, prf_hz={self.prf_range_hz}, "
            f"spacing_m={self.spacing_m})"
        )

    def _check_meta(
        self, prf_hz: float | None, spacing_m: tuple[float, float] | None
    ) -> tuple[float, float]:
        if prf_hz is None:
            raise DataError(
                f"prf_hz is missing: {self.name} needs the ensemble's PRF "
                f"({self.prf_range_hz[0]:g}..{self.prf_range_hz[1]:g} Hz)"
            )
        prf = float(prf_hz)
        lo, hi = self.prf_range_hz
        if not (math.isfinite(prf) and lo * 0.999 <= prf <= hi * 1.001):
            raise DataError(
                f"prf_hz={prf_hz!r} is outside what {self.name} was trained for: "
                f"expected {lo:g}..{hi:g} Hz"
            )
        if spacing_m is None:
            raise DataError(
                f"spacing_m is missing: {self.name} needs the pixel spacing (axial, lateral) in m "
                f"(trained on {self.spacing_m[0] * 1e3:.3f} x {self.spacing_m[1] * 1e3:.3f} mm)"
            )
        try:
            sa, sl = (float(v) for v in spacing_m)
        except (TypeError, ValueError):
            raise DataError(
                f"spacing_m={spacing_m!r} is invalid: expected (axial_m, lateral_m)"
            ) from None
        if not (sa > 0 and sl > 0 and math.isfinite(sa) and math.isfinite(sl)):
            raise DataError(f"spacing_m={spacing_m!r} is invalid: expected two positive lengths")
        return sa, sl

    def predict_unit(self, iq_windows: npt.NDArray[np.complex64]) -> FloatArray:
        """Raw network output ``(B, H, W)`` in ``[0, 1]`` for windows ``(B, n_frames, H, W)``
        whose size is already a multiple of :data:`SIZE_MULTIPLE`."""
        # channels-last memory, logically NCHW: OpenVINO takes it as is (see devices.backends)
        x = np.stack([ensemble_features_nhwc(w) for w in iq_windows]).transpose(0, 3, 1, 2)
        (y,) = self.session.run(None, {self.input_name: x})
        return np.asarray(y, np.float32)[:, 0]

    def blood_power_db(
        self,
        iq: npt.ArrayLike,
        prf_hz: float | None,
        spacing_m: tuple[float, float] | None,
        max_windows: int = 4,
    ) -> FloatArray:
        """Blood power in dB relative to tissue, ``(H, W)``, floor ``DB_LOW``.

        Ensembles longer than the model's length are cut into consecutive windows (at most
        ``max_windows``) whose powers are averaged. Other pixel spacings are resampled to the
        trained one (and the result back); sizes are padded to a multiple of 4.
        """
        arr = _check_ensemble(iq, self.n_frames)
        sa, sl = self._check_meta(prf_hz, spacing_m)
        _, h, w = arr.shape
        ta, tl = self.spacing_m
        work = arr
        resampled = abs(sa / ta - 1) > SPACING_TOLERANCE or abs(sl / tl - 1) > SPACING_TOLERANCE
        if resampled:
            shape = (round(h * sa / ta), round(w * sl / tl))
            if min(shape) < MIN_SIZE or max(shape) > MAX_SIZE:
                raise DataError(
                    f"resampling {h}x{w} pixels of {sa * 1e3:.3f}x{sl * 1e3:.3f} mm to the trained "
                    f"spacing gives {shape[0]}x{shape[1]}: expected {MIN_SIZE}..{MAX_SIZE} per axis"
                )
            work = _resize_complex(arr, shape)
        n_win = max(1, min(max_windows, arr.shape[0] // self.n_frames))
        wh, ww = work.shape[1:]
        ph, pw = (-wh) % SIZE_MULTIPLE, (-ww) % SIZE_MULTIPLE
        windows = np.stack(
            [work[k * self.n_frames : (k + 1) * self.n_frames] for k in range(n_win)]
        )
        if ph or pw:
            windows = np.pad(windows, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        unit = self.predict_unit(windows)[:, :wh, :ww]
        power = np.mean(10.0 ** (unit_to_db(unit).astype(np.float64) / 10.0), axis=0)
        db = (10.0 * np.log10(power)).astype(np.float32)
        if resampled:
            import cv2

            db = cv2.resize(db, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.asarray(db, np.float32)

    def power_doppler(
        self,
        iq: npt.ArrayLike,
        prf_hz: float | None,
        spacing_m: tuple[float, float] | None,
    ) -> FloatArray:
        """Power Doppler in dB relative to its peak, ``(H, W)`` float32 (like
        :func:`sonoedge.processing.clutter.power_doppler`), from an ensemble ``(N, H, W)``."""
        db = self.blood_power_db(iq, prf_hz, spacing_m)
        return (db - db.max()).astype(np.float32)

    def as_method(self) -> Any:
        """A ``doppler`` method for :func:`sonoedge.processing.registry.register`:
        ``fn(iq, prf_hz=None, spacing_m=None) -> dB``. It resamples other spacings itself, so
        register it without ``native_spacing_m``; missing PRF/spacing raise :class:`DataError`."""

        def run(
            iq: npt.ArrayLike,
            prf_hz: float | None = None,
            spacing_m: tuple[float, float] | None = None,
        ) -> FloatArray:
            return self.power_doppler(iq, prf_hz, spacing_m)

        run.__doc__ = (
            f"SONIC student {self.name} ({self.n_frames}-frame ensembles, onnxruntime) -> power "
            "Doppler dB; needs prf_hz and spacing_m."
        )
        return run


MODEL = SonicModel
"""The class running this task's students (see :data:`sonoedge.zoo.TASK_MODULES`)."""


def load(name_or_path: str | Path = "sonic-16", threads: int = 2) -> SonicModel:
    """Load a SONIC model by name (``"sonic-16"``) or an exported ``.onnx`` with its card."""
    from sonoedge.zoo import load_task

    model: SonicModel = load_task(name_or_path, "sonic", SonicModel, threads)
    return model
