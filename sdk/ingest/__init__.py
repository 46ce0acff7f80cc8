"""Ingest: probe URLs, the reader thread, clock sync, transports and replay."""

from sonoedge.ingest.probe import LinkStats, Probe
from sonoedge.ingest.urls import open_probe

__all__ = ["LinkStats", "Probe", "open_probe"]
