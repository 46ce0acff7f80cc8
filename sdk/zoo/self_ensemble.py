"""Geometric self-ensemble of an image-to-image student: the mean of its outputs on mirrored
and rotated copies of the input, each mapped back.

A network trained on flipped and right-angle-rotated patches (the enhancement student:
``degrade.right_angles``) treats those copies as equally likely views of one scene, and its
errors on them are partly independent, so their mean is closer to the target. The cost is one
inference per copy.

========  ============================================================================
``n``     copies
========  ============================================================================
1         the image (no ensemble)
2         + its lateral mirror image
4         + its axial mirror image and the 180° rotation (shape-preserving flips)
8         + the four transposed copies (the whole dihedral group; each transposed copy
          is an (W, H) image, a second input shape for a static-shape backend)
========  ============================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError

FloatArray = npt.NDArray[np.float32]

SIZES = (1, 2, 4, 8)
"""Allowed ensemble sizes."""

# (transpose first?, lateral flip?, axial flip?): each copy is its own inverse once transposed back
_COPIES: tuple[tuple[bool, bool, bool], ...] = (
    (False, False, False),
    (False, True, False),
    (False, False, True),
    (False, True, True),
    (True, False, False),
    (True, True, False),
    (True, False, True),
    (True, True, True),
)


def check_size(n: object) -> int:
    """``n`` as an allowed ensemble size, or a :class:`ConfigError` naming the allowed ones."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) not in SIZES:
        raise ConfigError(
            f"self_ensemble={n!r} is invalid: expected one of {SIZES} (copies averaged per image)",
            hint="1 runs the network once; 8 is the most accurate and 8x the inference time",
        )
    return int(n)


def _view(image: FloatArray, copy: tuple[bool, bool, bool]) -> FloatArray:
    transpose, lateral, axial = copy
    out = image.T if transpose else image
    if lateral:
        out = out[:, ::-1]
    if axial:
        out = out[::-1]
    return out


def _unview(image: FloatArray, copy: tuple[bool, bool, bool]) -> FloatArray:
    transpose, lateral, axial = copy
    out = image[::-1] if axial else image
    if lateral:
        out = out[:, ::-1]
    return out.T if transpose else out


def average(run: Callable[[FloatArray], FloatArray], image: FloatArray, n: int) -> FloatArray:
    """Mean of ``run`` (an ``(H, W) -> (H, W)`` network call) over the first ``n`` copies of
    ``image``, each output mapped back to the image's orientation (``n`` = 1: ``run(image)``)."""
    n = check_size(n)
    if n == 1:
        return run(image)
    total = np.zeros(image.shape, np.float64)
    for copy in _COPIES[:n]:
        total += _unview(run(np.ascontiguousarray(_view(image, copy))), copy)
    return (total / n).astype(np.float32)
