"""Where a student runs: onnxruntime on the CPU, or a device backend (OpenVINO, CUDA, TensorRT)
for a shipped model or a signed bundle. Students talk to an onnxruntime-``InferenceSession``-shaped
object (``get_inputs()``, ``run(None, feeds)``); :class:`BackendSession` gives a device backend
that shape, so the pre/post-processing of each student is the same on every device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError


@dataclass(frozen=True)
class TensorInfo:
    """Name and shape (ints, or strings for dynamic axes) of a model input."""

    name: str
    shape: list[Any]


class BackendSession:
    """An onnxruntime-session-shaped view of a :mod:`sonoedge.devices` backend."""

    def __init__(self, backend: Any, inputs: list[TensorInfo], closer: Any = None) -> None:
        self.backend = backend
        self.inputs = inputs
        self.device = str(getattr(backend, "name", "unknown"))
        self._closer = closer

    def get_inputs(self) -> list[TensorInfo]:
        return list(self.inputs)

    def run(self, output_names: Any, feeds: dict[str, npt.NDArray[Any]]) -> list[Any]:
        outputs = self.backend.run(feeds)
        return [np.asarray(v) for v in outputs.values()]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a model bundle (a .zip, or a directory with a manifest.json)."""
    p = Path(path)
    return (p.suffix == ".zip" and p.is_file()) or (p / "manifest.json").is_file()


def cpu_session(onnx_path: Path, threads: int) -> Any:
    """A plain onnxruntime CPU session (what students use by default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ConfigError(f"{onnx_path} is not a loadable ONNX model: {err}") from None


def device_session(onnx_path: Path, device: str, threads: int) -> Any:
    """A session for a shipped/exported ONNX student on ``device`` (a target name or ``auto``);
    plain onnxruntime on ``cpu``."""
    from sonoedge.devices import backends
    from sonoedge.devices.bundle import sha256_file
    from sonoedge.devices.profiles import profile
    from sonoedge.devices.targets import resolve_device

    target = resolve_device(device)
    cpu = cpu_session(onnx_path, threads)
    if target == "cpu":
        return cpu
    inputs = [TensorInfo(i.name, list(i.shape)) for i in cpu.get_inputs()]
    backend = backends.open_backend(
        profile(target), onnx_path, None, "fp32", sha256_file(onnx_path), threads=threads
    )
    return BackendSession(backend, inputs, backend.close)


def bundle_session(
    path: Path, device: str, threads: int, allow_unsigned: bool = False
) -> tuple[BackendSession, dict[str, Any]]:
    """A verified bundle compiled for ``device``, and the model card it carries."""
    from sonoedge.devices import load_bundle

    runner = load_bundle(path, device, allow_unsigned=allow_unsigned, threads=threads)
    card_file = runner.bundle.file("card")
    if card_file is None:
        runner.close()
        raise ConfigError(
            f"bundle {path} carries no model card: sonoedge students need it for their "
            "pre/post-processing",
            hint="package the student's .onnx with its NAME.json beside it (`sonoedge package`)",
        )
    card = json.loads(card_file.read_text(encoding="utf-8"))
    inputs = [TensorInfo(s["name"], list(s["shape"])) for s in runner.inputs]
    return BackendSession(runner.backend, inputs, runner.close), card
