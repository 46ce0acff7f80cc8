"""Pipelines: stages (classical ops or students) on worker threads, from presets or code.

Loaded lazily; ``from sonoedge.pipeline import Pipeline`` pulls in only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonoedge.pipeline.result import Result
    from sonoedge.pipeline.runner import Pipeline, PipelineStats
    from sonoedge.pipeline.sinks import IgtlSink, PreviewSink, RecorderSink, Sink, VideoSink
    from sonoedge.pipeline.stages import FunctionStage, OpStage, Stage

_LAZY = {
    "Pipeline": "runner",
    "PipelineStats": "runner",
    "Result": "result",
    "Stage": "stages",
    "OpStage": "stages",
    "FunctionStage": "stages",
    "Sink": "sinks",
    "RecorderSink": "sinks",
    "VideoSink": "sinks",
    "PreviewSink": "sinks",
    "IgtlSink": "sinks",
}
__all__ = [
    "FunctionStage",
    "IgtlSink",
    "OpStage",
    "Pipeline",
    "PipelineStats",
    "PreviewSink",
    "RecorderSink",
    "Result",
    "Sink",
    "Stage",
    "VideoSink",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sonoedge.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sonoedge.pipeline.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
