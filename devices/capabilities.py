"""What this machine can run: ONNX Runtime providers, OpenVINO devices, CPU features, GPU."""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "fp16")


def ort_providers() -> list[str]:
    """ONNX Runtime execution providers of the installed build (empty without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


@cache
def openvino_devices() -> tuple[str, ...]:
    """OpenVINO devices (``CPU``, ``GPU``, ``NPU``...); empty without OpenVINO."""
    if importlib.util.find_spec("openvino") is None:
        return ()
    import openvino as ov

    return tuple(ov.Core().available_devices)


def cpu_model() -> str:
    text = _read("/proc/cpuinfo")
    m = re.search(r"^(model name|Model)\s*:\s*(.+)$", text, re.M)
    return m.group(2).strip() if m else (platform.processor() or platform.machine())


def cpu_features() -> list[str]:
    """The int8/fp16-relevant CPU flags present (VNNI, AVX-512, AMX, ARM dot product)."""
    m = re.search(r"^(flags|Features)\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    flags = set(m.group(2).split()) if m else set()
    return [f for f in CPU_FEATURES if f in flags]


def jetson_model() -> str | None:
    """The Jetson module name from the device tree, or None on other machines."""
    text = _read("/proc/device-tree/model").strip("\x00 \n")
    return text if "jetson" in text.lower() or "orin" in text.lower() else None


def gpu_name() -> str | None:
    """The NVIDIA GPU of this machine (Jetson module or ``nvidia-smi``'s first GPU)."""
    jetson = jetson_model()
    if jetson:
        return jetson
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            encoding="utf-8",
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def summary() -> dict[str, Any]:
    """Everything ``sonoedge devices`` prints."""
    import os

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_features": cpu_features(),
        "onnxruntime_providers": ort_providers(),
        "openvino_devices": list(openvino_devices()),
        "gpu": gpu_name(),
        "jetson": jetson_model(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace", encoding="utf-8")
    except OSError:
        return ""
