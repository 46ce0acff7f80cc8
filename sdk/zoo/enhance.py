"""Torch-free blind enhancement (deconvolution + denoising) with an exported student
(onnxruntime).

Example::

    from sonoedge.zoo import enhance
    model = enhance.load()                   # the shipped "enhance-student", or a path to an .onnx
    sharp = model.enhance(bmode)             # float32 (H, W) in [0, 1] -> same
    fn = model.as_method()                   # fn(image) -> image, for the "enhance" op

The shipped model is also the processing method ``enhance/enhance-student``
(``sonoedge process IMAGE --op enhance --method enhance-student``).

Input contract (refused with :class:`~sonoedge.errors.DataError` otherwise): a 2-D float32 or
float64 array (a 1-frame stack ``(1, H, W)`` is accepted), values finite and within ``[0, 1]`` (a
log-compressed B-mode image as :func:`sonoedge.processing.bmode.bmode` and the simulators produce;
8-bit pictures are divided by 255 first), each side at least the network's receptive field
(:attr:`EnhanceModel.min_size`) and at most ``MAX_SIZE``. Sizes that are not a multiple of the
network's stride (4) are reflect-padded at the bottom and right and cropped back, so the output
always has the input's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.zoo.backend import cpu_session

DEFAULT_NAME = "enhance-student"
MAX_SIZE = 4096
RANGE_TOLERANCE = 1e-4
FloatArray = npt.NDArray[np.float32]


def check_image(image: object, min_size: int) -> FloatArray:
    """The image as float32 ``(H, W)``, or a :class:`DataError` saying what is wrong with it."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DataError(
            f"image has shape {arr.shape}: expected a 2-D B-mode image (axial, lateral)",
            hint="enhance one frame at a time; IQ data goes through sonoedge.processing.bmode",
        )
    if arr.dtype not in (np.float32, np.float64):
        raise DataError(
            f"image has dtype {arr.dtype}: expected float32 in [0, 1]",
            hint="convert 8-bit images with image.astype(np.float32) / 255",
        )
    if min(arr.shape) < min_size or max(arr.shape) > MAX_SIZE:
        raise DataError(
            f"image has {arr.shape[0]}x{arr.shape[1]} pixels: expected {min_size}..{MAX_SIZE} per "
            f"axis ({min_size} px is the network's receptive field)",
            hint="enhance the full frame, not a small crop",
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


class EnhanceModel:
    """An exported enhancement network run by onnxruntime on the CPU."""

    def __init__(
        self,
        onnx_path: str | Path,
        card: dict[str, Any],
        threads: int = 2,
        session: Any = None,
    ) -> None:
        """``session``: an onnxruntime-``InferenceSession``-shaped object to run on (a device
        backend, see :func:`sonoedge.zoo.load_model`); default: onnxruntime on the CPU with
        ``threads`` intra-op threads."""
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
                f"{self.path} takes {inp.shape[1]} input channels: an enhancer takes 1 image",
                hint="re-export the model with `sonoedge train enhance`",
            )

    def __repr__(self) -> str:
        return f"EnhanceModel({self.name!r}, min_size={self.min_size})"

    def predict(self, batch: npt.NDArray[np.float32]) -> FloatArray:
        """Raw network output ``(B, H, W)`` for checked images ``(B, H, W)`` whose size is a
        multiple of :attr:`size_multiple` (no checks, no padding)."""
        (y,) = self.session.run(None, {self.input_name: batch[:, None].astype(np.float32)})
        return np.asarray(y, np.float32)[:, 0]

    def enhance(self, image: npt.ArrayLike) -> FloatArray:
        """Enhanced float32 ``(H, W)`` in ``[0, 1]`` of a float ``(H, W)`` image in ``[0, 1]``."""
        img = check_image(image, self.min_size)
        h, w = img.shape
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        work = np.pad(img, ((0, ph), (0, pw)), mode="reflect") if (ph or pw) else img
        return np.ascontiguousarray(self.predict(work[None])[0, :h, :w])

    __call__ = enhance

    def as_method(self) -> Any:
        """An ``enhance`` method for :mod:`sonoedge.processing.registry`: ``fn(image) -> image``
        (float ``(H, W)`` in ``[0, 1]``)."""

        def run(image: npt.ArrayLike) -> FloatArray:
            return self.enhance(image)

        run.__doc__ = (
            f"Blind enhancement student {self.name} (deconvolution + denoising, onnxruntime); "
            "image in [0, 1]."
        )
        return run


MODEL = EnhanceModel
"""The class running this task's students (see :data:`sonoedge.zoo.TASK_MODULES`)."""


def load(name_or_path: str | Path = DEFAULT_NAME, threads: int = 2) -> EnhanceModel:
    """Load a shipped enhancer by name (``"enhance-student"``) or an exported ``.onnx`` + card."""
    from sonoedge.zoo import read_card, resolve

    onnx_path = resolve(name_or_path)
    card = read_card(onnx_path)
    if card["task"] != "enhance":
        raise ConfigError(
            f"{onnx_path} is a {card['task']!r} model: this loader runs 'enhance' models"
        )
    return EnhanceModel(onnx_path, card, threads=threads)
