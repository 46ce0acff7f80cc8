"""Torch-free blind enhancement (deconvolution + denoising) with an exported student
(onnxruntime).

Example::

    from sonoedge.zoo import enhance
    model = enhance.load()                   # the shipped "enhance-student", or a path to an .onnx
    sharp = model.enhance(bmode)             # float32 (H, W) in [0, 1] -> same
    fn = model.as_method()                   # fn(image) -> image, for the "enhance" op

The shipped model is also the processing method ``enhance/enhance-student``
(``sonoedge process IMAGE --op enhance --method enhance-student``).

Input contract and padding: :mod:`sonoedge.zoo.image` (a 2-D image in ``[0, 1]``; sides shorter than
:attr:`EnhanceModel.min_size` or not a multiple of the stride are reflect-padded and cropped
back).
"""

from __future__ import annotations

from pathlib import Path

import numpy.typing as npt

from sonoedge.zoo.image import FloatArray, ImageModel

DEFAULT_NAME = "enhance-student"


class EnhanceModel(ImageModel):
    """An exported enhancement network (onnxruntime, CPU unless given another session)."""

    task = "enhance"
    verb = "enhance"
    noun = "an enhancer"

    def enhance(self, image: npt.ArrayLike, self_ensemble: int = 1) -> FloatArray:
        """Enhanced float32 ``(H, W)`` in ``[0, 1]`` of a float ``(H, W)`` image in ``[0, 1]``;
        ``self_ensemble`` (1, 2, 4, 8): see :meth:`ImageModel.apply`."""
        return self.apply(image, self_ensemble)

    def describe(self) -> str:
        return (
            f"Blind enhancement student {self.name} (deconvolution + denoising, onnxruntime); "
            "image in [0, 1]."
        )


MODEL = EnhanceModel
"""The class running this task's students (see :data:`sonoedge.zoo.TASK_MODULES`)."""


def load(name_or_path: str | Path = DEFAULT_NAME, threads: int = 2) -> EnhanceModel:
    """Load a shipped enhancer by name (``"enhance-student"``) or an exported ``.onnx`` + card."""
    from sonoedge.zoo import load_task

    model: EnhanceModel = load_task(name_or_path, "enhance", EnhanceModel, threads)
    return model
