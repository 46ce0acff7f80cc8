"""What every image-to-image student (despeckling, enhancement) shares: the input contract and
the run with reflect padding to the network's stride.

Input contract (refused with :class:`~sonoedge.errors.DataError` otherwise): a 2-D float32 or
float64 array (a 1-frame stack ``(1, H, W)`` is accepted), values finite and within ``[0, 1]`` (a
log-compressed B-mode image as :func:`sonoedge.processing.bmode.bmode` and the simulators
produce), each side at least ``MIN_SIDE_PX`` and at most ``MAX_SIZE``. Images are
reflect-padded at the bottom and right up to the network's receptive field (``min_size``, so
border pixels never see the network's zero padding alone) and to a multiple of its stride, then
cropped back, so the output always has the input's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.zoo.self_ensemble import average

MAX_SIZE = 4096
MIN_SIDE_PX = 16  # below this a frame is a crop of a crop; padded copies would dominate it
RANGE_TOLERANCE = 1e-4
FloatArray = npt.NDArray[np.float32]


def check_image(image: object, min_size: int, verb: str = "process") -> FloatArray:
    """The image as float32 ``(H, W)``, or a :class:`DataError` saying what is wrong with it
    (``verb`` names what the model does, for the hints)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DataError(
            f"image has shape {arr.shape}: expected a 2-D B-mode image (axial, lateral)",
            hint=f"{verb} one frame at a time; IQ data goes through sonoedge.processing.bmode",
        )
    if arr.dtype not in (np.float32, np.float64):
        raise DataError(
            f"image has dtype {arr.dtype}: expected float32 in [0, 1]",
            hint="convert 8-bit images with image.astype(np.float32) / 255",
        )
    if min(arr.shape) < MIN_SIDE_PX or max(arr.shape) > MAX_SIZE:
        raise DataError(
            f"image has {arr.shape[0]}x{arr.shape[1]} pixels: expected {MIN_SIDE_PX}..{MAX_SIZE} "
            f"per axis (smaller sides are reflect-padded up to the network's receptive field of "
            f"{min_size} px)",
            hint=f"{verb} the full frame, not a small crop",
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("image contains NaN/Inf values", hint="replace or drop invalid pixels")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise DataError(
            f"image values span {lo:.4g}..{hi:.4g}: expected a log-compressed image in [0, 1]",
            hint="map dB to [0, 1] over the display range (sonoedge.synth.speckle.to_unit)",
        )
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


class ImageModel:
    """An exported 1-channel image-to-image network; subclasses name the task and what it does."""

    task = "image"
    verb = "process"  # what the model does to an image, for messages
    noun = "an image model"

    def __init__(
        self,
        onnx_path: str | Path,
        card: dict[str, Any],
        threads: int = 2,
        session: Any = None,
    ) -> None:
        """``session``: where it runs (see :mod:`sonoedge.zoo.backend`); default onnxruntime CPU
        with ``threads`` intra-op threads."""
        from sonoedge.zoo.backend import cpu_session

        self.path = Path(onnx_path)
        self.card = card
        spec = card["input"]
        try:
            self.size_multiple = int(spec["size_multiple"])
            self.min_size = int(spec["min_size"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"model card of {self.path} lacks input field {err}") from None
        self.name = str(card.get("name", self.path.stem))
        self.session = session if session is not None else cpu_session(self.path, threads)
        self.device = str(getattr(self.session, "device", "cpu"))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if inp.shape[1] != 1:
            raise ConfigError(
                f"{self.path} takes {inp.shape[1]} input channels: {self.noun} takes 1 image",
                hint=f"re-export the model with `sonoedge train {self.task}`",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, min_size={self.min_size})"

    def predict(self, batch: npt.NDArray[np.float32]) -> FloatArray:
        """Raw network output ``(B, H, W)`` for checked images ``(B, H, W)`` whose size is a
        multiple of :attr:`size_multiple` (no checks, no padding)."""
        (y,) = self.session.run(None, {self.input_name: batch[:, None].astype(np.float32)})
        return np.asarray(y, np.float32)[:, 0]

    def apply(self, image: npt.ArrayLike, self_ensemble: int = 1) -> FloatArray:
        """Output float32 ``(H, W)`` in ``[0, 1]`` of a float ``(H, W)`` image in ``[0, 1]``.

        ``self_ensemble`` (1, 2, 4 or 8): the mean over that many mirrored/rotated copies of
        the image (:mod:`sonoedge.zoo.self_ensemble`), at as many times the inference time."""
        img = check_image(image, self.min_size, self.verb)
        return average(self._padded, img, self_ensemble)

    __call__ = apply

    def _padded(self, img: FloatArray) -> FloatArray:
        """The network's output on a checked image, reflect-padded to its receptive field and
        stride and cropped back."""
        h, w = img.shape
        m, lo = self.size_multiple, self.min_size
        ph, pw = (-max(h, lo)) % m + max(lo - h, 0), (-max(w, lo)) % m + max(lo - w, 0)
        work = np.pad(img, ((0, ph), (0, pw)), mode="reflect") if (ph or pw) else img
        return np.ascontiguousarray(self.predict(work[None])[0, :h, :w])

    def describe(self) -> str:
        """One line for the processing registry's method list."""
        return f"{self.task} student {self.name} (onnxruntime); image in [0, 1]."

    def as_method(self) -> Any:
        """A method for :mod:`sonoedge.processing.registry`: ``fn(image) -> image`` (float
        ``(H, W)`` in ``[0, 1]``)."""

        def run(image: npt.ArrayLike, self_ensemble: int = 1) -> FloatArray:
            return self.apply(image, self_ensemble)

        run.__doc__ = self.describe()
        return run
