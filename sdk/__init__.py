"""sonoedge: edge SDK for handheld ultrasound probes.

Heavy modules load on first use, so ``import sonoedge`` stays fast::

    import sonoedge
    with sonoedge.open_probe("emulator://?preset=doppler") as probe:
        for sample in probe.samples(seconds=2):
            print(type(sample).__name__, sample.timestamp_s)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "open_probe": "sonoedge.ingest",
    "Probe": "sonoedge.ingest",
    "ProbeInfo": "sonoedge.types",
    "BmodeFrame": "sonoedge.types",
    "IQFrame": "sonoedge.types",
    "IQEnsemble": "sonoedge.types",
    "ImuBatch": "sonoedge.types",
    "ProbeStatus": "sonoedge.types",
    "ProbeFault": "sonoedge.types",
    "LinkGap": "sonoedge.types",
    "Pose": "sonoedge.types",
    "Sweep": "sonoedge.types",
    "Volume": "sonoedge.types",
    "SonoedgeError": "sonoedge.errors",
}

if TYPE_CHECKING:
    from sonoedge.errors import SonoedgeError
    from sonoedge.ingest import Probe, open_probe
    from sonoedge.types import (
        BmodeFrame,
        ImuBatch,
        IQEnsemble,
        IQFrame,
        LinkGap,
        Pose,
        ProbeFault,
        ProbeInfo,
        ProbeStatus,
        Sweep,
        Volume,
    )

__all__ = [
    "BmodeFrame",
    "IQEnsemble",
    "IQFrame",
    "ImuBatch",
    "LinkGap",
    "Pose",
    "Probe",
    "ProbeFault",
    "ProbeInfo",
    "ProbeStatus",
    "SonoedgeError",
    "Sweep",
    "Volume",
    "__version__",
    "open_probe",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sonoedge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
