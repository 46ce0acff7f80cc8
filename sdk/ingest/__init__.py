"""Ingest: probe URLs, the reader thread, clock sync, transports and replay.

Loaded lazily so that low-level modules (``sonoedge.ingest.clock``) import without the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonoedge.ingest.probe import LinkStats, Probe
    from sonoedge.ingest.urls import open_probe

_LAZY = {
    "LinkStats": "sonoedge.ingest.probe",
    "Probe": "sonoedge.ingest.probe",
    "open_probe": "sonoedge.ingest.urls",
}
__all__ = ["LinkStats", "Probe", "open_probe"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sonoedge.ingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
