"""Target names, which of them this machine can run, and what ``auto`` picks.

Backend order on a target: TensorRT EP → CUDA EP → OpenVINO → CPU EP; every fallback is logged
(see :mod:`sonoedge.devices.backends`). Profiles are data: ``data/targets.toml``.
Classical stages always run on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging

from sonoedge.devices import capabilities
from sonoedge.devices.profiles import profiles
from sonoedge.errors import ConfigError

log = logging.getLogger(__name__)

TARGETS = tuple(profiles())


def available_targets(probe_openvino: bool = False) -> list[str]:
    """Targets whose runtime is installed here, worst first. Cheap by default; with
    ``probe_openvino`` OpenVINO is asked for its GPU/NPU devices too (imports OpenVINO)."""
    found = ["cpu"]
    if importlib.util.find_spec("openvino") is not None:
        found.append("openvino-cpu")
        if probe_openvino:
            devices = capabilities.openvino_devices()
            found += [f"openvino-{d.lower()}" for d in ("GPU", "NPU") if d in devices]
    providers = capabilities.ort_providers()
    if "TensorrtExecutionProvider" in providers or "CUDAExecutionProvider" in providers:
        jetson = (capabilities.jetson_model() or "").lower()
        matching = [t for t in TARGETS if t.startswith("jetson") and t.split("-")[-1] in jetson]
        found += matching or [t for t in TARGETS if t.startswith("jetson")]
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
