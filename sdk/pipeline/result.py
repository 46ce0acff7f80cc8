"""What flows through a pipeline: the input sample plus every stage's output and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.types import BmodeFrame, IQEnsemble, IQFrame, Sample

ImageSample = BmodeFrame | IQFrame | IQEnsemble


@dataclass
class Result:
    """One sample's trip through the pipeline.

    ``image`` is the latest image-like output (what the next stage and the display take);
    ``outputs`` keeps every stage's output by stage name; ``timings_s`` each stage's time.
    Samples no stage processes (IMU, status, link gaps) pass through with no outputs.
    """

    sample: Sample
    index: int
    received_s: float
    image: npt.NDArray[Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    done_s: float = 0.0
    processed: bool = False
    """True when the sample went through the stages (False for pass-through samples)."""

    @property
    def spacing_m(self) -> tuple[float, float] | None:
        sample = self.sample
        return sample.spacing_m if isinstance(sample, BmodeFrame | IQFrame | IQEnsemble) else None

    @property
    def latency_s(self) -> float:
        """Pipeline latency: from arrival in the pipeline to the last stage's end."""
        return self.done_s - self.received_s


def initial_image(sample: ImageSample) -> npt.NDArray[Any]:
    """The image a pipeline starts from: B-mode as float32 in [0, 1], IQ data as it is."""
    if isinstance(sample, BmodeFrame):
        image = sample.image
        if image.dtype == np.uint8:
            return image.astype(np.float32) * np.float32(1 / 255)
        if image.dtype == np.uint16:
            return image.astype(np.float32) * np.float32(1 / 65535)
        return np.asarray(image, dtype=np.float32)
    return sample.iq
