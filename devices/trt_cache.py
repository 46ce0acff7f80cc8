"""TensorRT engine and timing caches, keyed by GPU + TensorRT + ONNX Runtime versions.

An engine built for one GPU, TensorRT or ONNX Runtime version must never be loaded by another, so
each combination gets its own directory. Engines are built ahead of time (``sonoedge package
--warmup``); a ``built.json`` there lists the model sha256s whose engines are ready, and the
backend uses TensorRT only for those (otherwise it falls back, with a log line, instead of
building an engine silently at first inference).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import json
import os
import re
from pathlib import Path

from sonoedge.devices import capabilities

BUILT = "built.json"


def cache_root() -> Path:
    env = os.environ.get("SONOEDGE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sonoedge"


def tensorrt_version() -> str | None:
    """TensorRT version from its Python package, else from ``libnvinfer`` (JetPack installs)."""
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt_libs"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    name = ctypes.util.find_library("nvinfer")
    if name is None:
        return None
    try:
        code = int(ctypes.CDLL(name).getInferLibVersion())
    except (OSError, AttributeError):
        return None
    # 8.6.2 → 8602; 10.3.0 → 100300
    major, rest = (code // 10000, code % 10000) if code >= 100000 else (code // 1000, code % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def cache_key(gpu: str | None, trt: str | None, ort: str) -> str:
    """Directory name for one GPU + TensorRT + ONNX Runtime combination."""
    parts = [gpu or "unknown-gpu", f"trt{trt or 'unknown'}", f"ort{ort}"]
    return "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", p).strip("-").lower() for p in parts)


def cache_dir(root: Path | None = None) -> Path:
    """This machine's engine/timing cache directory (not created)."""
    key = cache_key(capabilities.gpu_name(), tensorrt_version(), ort_version())
    return (root or cache_root()) / "tensorrt" / key


def is_built(directory: Path, model_sha256: str) -> bool:
    try:
        built = json.loads((directory / BUILT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(built, list) and model_sha256 in built


def mark_built(directory: Path, model_sha256: str) -> None:
    path = directory / BUILT
    try:
        built = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        built = []
    if model_sha256 not in built:
        built.append(model_sha256)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(built), indent=1) + "\n", encoding="utf-8")
