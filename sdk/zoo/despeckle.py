"""Torch-free despeckling with an exported MK student (onnxruntime).

Example::

    from sonoedge.zoo import despeckle
    model = despeckle.load()                 # the shipped student, or a path to an .onnx
    clean = model.despeckle(bmode)           # float32 (H, W) in [0, 1] -> same

    despeckle.register()                     # adds method "mk_student" to op "despeckle"
    # then: sonoedge.processing.registry.get_method("despeckle", "mk_student")(bmode)

Input contract and padding: :mod:`sonoedge.zoo.image` (a 2-D image in ``[0, 1]``; sides shorter than
:attr:`DespeckleModel.min_size` or not a multiple of the stride are reflect-padded and cropped
back).
"""

from __future__ import annotations

from pathlib import Path

import numpy.typing as npt

from sonoedge.zoo.image import FloatArray, ImageModel

DEFAULT_NAME = "despeckle-mk"
METHOD_NAME = "mk_student"


class DespeckleModel(ImageModel):
    """An exported despeckling network (onnxruntime, CPU unless given another session)."""

    task = "despeckle"
    verb = "despeckle"
    noun = "a despeckler"

    def despeckle(self, image: npt.ArrayLike, self_ensemble: int = 1) -> FloatArray:
        """Despeckled float32 ``(H, W)`` in ``[0, 1]`` of a float ``(H, W)`` image in ``[0, 1]``;
        ``self_ensemble`` (1, 2, 4, 8): see :meth:`ImageModel.apply`."""
        return self.apply(image, self_ensemble)

    def describe(self) -> str:
        return (
            f"MK student {self.name} (metric-optimized distilled despeckler, onnxruntime); "
            "image in [0, 1]."
        )


MODEL = DespeckleModel
"""The class running this task's students (see :data:`sonoedge.zoo.TASK_MODULES`)."""


def load(name_or_path: str | Path = DEFAULT_NAME, threads: int = 2) -> DespeckleModel:
    """Load a shipped despeckler by name (``"despeckle-mk"``) or an exported ``.onnx`` + card."""
    from sonoedge.zoo import load_task

    model: DespeckleModel = load_task(name_or_path, "despeckle", DespeckleModel, threads)
    return model


def register(
    name: str = METHOD_NAME, model: str | Path = DEFAULT_NAME, threads: int = 2
) -> DespeckleModel:
    """Add the student as method ``name`` of op ``despeckle`` in the processing registry.

    It takes any pixel spacing (trained over a range of zooms), so it is registered without
    ``native_spacing_m``. Returns the loaded model.
    """
    from sonoedge.processing.registry import register as _register

    loaded = load(model, threads=threads)
    _register("despeckle", name, loaded.as_method())
    return loaded
