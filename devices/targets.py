"""Target profiles: where model stages run, and what this machine can actually offer.

Backend order on a target: TensorRT EP → CUDA EP → OpenVINO → CPU EP; every fallback is logged.
Classical stages always run on the CPU.
"""

from __future__ import annotations

import logging

from sonoedge.errors import ConfigError

log = logging.getLogger(__name__)

TARGETS = (
    "cpu",
    "openvino-cpu",
    "openvino-gpu",
    "openvino-npu",
    "jetson-orin-nano",
    "jetson-orin-nx",
    "jetson-orin-agx",
)


def available_targets() -> list[str]:
    """Targets whose runtime is installed here (cheap checks, no model loading)."""
    import importlib.util

    found = ["cpu"]
    if importlib.util.find_spec("openvino") is not None:
        found.append("openvino-cpu")
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    if "TensorrtExecutionProvider" in providers or "CUDAExecutionProvider" in providers:
        found += [t for t in TARGETS if t.startswith("jetson")]
    return found


def resolve_device(name: str) -> str:
    """``auto`` → the best available target; a named target → itself, or CPU with a log line."""
    if name != "auto" and name not in TARGETS:
        raise ConfigError(
            f"unknown device {name!r}", hint=f"use auto or one of: {', '.join(TARGETS)}"
        )
    available = available_targets()
    if name == "auto":
        return available[-1]
    if name not in available:
        log.warning("device %s is not available here; falling back to cpu", name)
        return "cpu"
    return name
