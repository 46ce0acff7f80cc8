"""Turn an exported model (ONNX, or OpenVINO IR) and its model card into a signed bundle.

The card is the ``NAME.json`` beside the model (written by ``sonoedge train`` and ``sonoedge
compress``); what it lacks is read from the model itself (input/output names, shapes, dtypes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sonoedge import __version__
from sonoedge.devices import signing
from sonoedge.devices.bundle import write_bundle
from sonoedge.devices.errors import BundleError
from sonoedge.devices.profiles import profile

SIGNING_KEY_ENV = "SONOEDGE_SIGNING_KEY"
MIN_ONNXRUNTIME = "1.17"
MIN_OPENVINO = "2024.0"
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


def read_card(model: Path) -> dict[str, Any]:
    path = model.with_suffix(".json")
    if not path.exists():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"model card {path} is unreadable: {err}") from None
    if not isinstance(card, dict):
        raise BundleError(f"model card {path} is not a JSON object")
    return card


def model_tensors(model: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Names, dtypes and shapes (``None``/names for dynamic dims) of inputs and outputs."""
    if model.suffix == ".onnx":
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise BundleError(f"{model} is not a loadable ONNX model: {err}") from None

        def ort_spec(arg: Any) -> dict[str, Any]:
            shape = [d if isinstance(d, int) else (d or None) for d in arg.shape]
            return {"name": arg.name, "dtype": _ORT_DTYPES.get(arg.type, arg.type), "shape": shape}

        return [ort_spec(a) for a in session.get_inputs()], [
            ort_spec(a) for a in session.get_outputs()
        ]
    import openvino as ov

    ir = ov.Core().read_model(str(model))

    def ov_spec(port: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        dtype = {"f32": "float32", "f16": "float16", "u8": "uint8", "i64": "int64"}.get(
            port.get_element_type().get_type_name(), "float32"
        )
        return {"name": port.get_any_name(), "dtype": dtype, "shape": shape}

    return [ov_spec(p) for p in ir.inputs], [ov_spec(p) for p in ir.outputs]


def _tensor(spec: dict[str, Any], card_io: dict[str, Any], trained: list[int] | None) -> dict:
    out = {
        **spec,
        "layout": str(card_io.get("layout", "NCHW")),
        "normalisation": str(card_io.get("normalisation", "none")),
        "value_range": card_io.get("range", card_io.get("value_range")),
    }
    if "example_shape" in card_io:
        out["example_shape"] = [int(d) for d in card_io["example_shape"]]
    elif trained and len(spec["shape"]) == 2 + len(trained):
        dims = [1, spec["shape"][1], *trained]
        if all(isinstance(d, int) for d in dims):
            out["example_shape"] = dims
    elif "min_size" in card_io and len(spec["shape"]) == 4 and isinstance(spec["shape"][1], int):
        side = example_side(int(card_io["min_size"]), int(card_io.get("size_multiple", 1)))
        out["example_shape"] = [1, spec["shape"][1], side, side]
    return out


def example_side(min_size: int, size_multiple: int) -> int:
    """A side an image model runs at (``--warmup``, ``bench model``): the smallest power of two
    of at least 64 and ``min_size``, rounded up to ``size_multiple``."""
    side = 64
    while side < min_size:
        side *= 2
    return -(-side // size_multiple) * size_multiple


def _io(card: dict[str, Any], key: str) -> dict[str, Any]:
    value = card.get(key, {})
    return value if isinstance(value, dict) else {}


def build_manifest(
    model: Path, target: str, card: dict[str, Any], name: str | None, version: str
) -> dict[str, Any]:
    """Every manifest field but ``format``, ``files`` and ``created``."""
    profile(target)
    inputs, outputs = model_tensors(model)
    card_in, card_out = _io(card, "input"), _io(card, "output")
    trained = card_in.get("trained_size")
    provenance = card.get("provenance", {})
    metrics = card.get("metrics", {})
    min_runtime = {"sonoedge": ".".join(str(p) for p in _base_version(__version__))}
    if model.suffix == ".onnx":
        min_runtime["onnxruntime"] = MIN_ONNXRUNTIME
    else:
        min_runtime["openvino"] = MIN_OPENVINO
    return {
        "name": name or str(card.get("name", model.stem)),
        "task": str(card.get("task", "generic")),
        "version": version,
        "description": str(_io(card, "output").get("meaning", "")),
        "inputs": [_tensor(s, card_in if i == 0 else {}, trained) for i, s in enumerate(inputs)],
        "outputs": [_tensor(s, card_out if i == 0 else {}, None) for i, s in enumerate(outputs)],
        "target": target,
        "precision": str(card.get("precision", "fp32")),
        "pruning_ratio": float(card.get("pruning_ratio", 0.0)),
        "provenance": {
            "data_spec": provenance.get("data_spec"),
            "command": str(provenance.get("command", "")),
            "commit": str(provenance.get("commit", "unknown")),
            "seed": provenance.get("seed"),
        },
        "metrics": {
            "vs_fp32": metrics.get("vs_fp32", {}) if isinstance(metrics, dict) else {},
            "vs_baseline": (
                metrics.get("vs_baseline", metrics) if isinstance(metrics, dict) else {}
            ),
        },
        "min_runtime": min_runtime,
    }


def _base_version(version: str) -> tuple[int, ...]:
    from sonoedge.devices.versions import parse

    return parse(version)


def signing_key(key: Path | None) -> Path | None:
    """The private key: ``--key``, else ``$SONOEDGE_SIGNING_KEY``, else None (unsigned)."""
    if key is not None:
        return key
    env = os.environ.get(SIGNING_KEY_ENV)
    return Path(env) if env else None


def package(
    model: Path,
    target: str,
    out: Path,
    key: Path | None,
    name: str | None = None,
    version: str = "1.0.0",
    openvino_ir: bool = True,
) -> Path:
    """Write a bundle for ``target`` at ``out`` (a .zip when ``out`` ends in .zip). For OpenVINO
    targets an ONNX model is also converted to OpenVINO IR when OpenVINO is installed."""
    if not model.exists() or model.suffix not in (".onnx", ".xml"):
        raise BundleError(f"{model}: expected an existing .onnx or OpenVINO .xml model")
    card = read_card(model)
    manifest = build_manifest(model, target, card, name, version)
    private = signing.load_private_key(key) if key is not None else None
    files: dict[str, tuple[Path, str]] = {}
    with tempfile.TemporaryDirectory(prefix="sonoedge-package-") as tmp:
        if model.suffix == ".onnx":
            files["model.onnx"] = (model, "onnx")
        else:
            files["model.xml"] = (model, "openvino-xml")
            files["model.bin"] = (model.with_suffix(".bin"), "openvino-bin")
        if target.startswith("openvino") and model.suffix == ".onnx" and openvino_ir:
            ir = _to_openvino_ir(model, Path(tmp))
            if ir is not None:
                files["model.xml"] = (ir, "openvino-xml")
                files["model.bin"] = (ir.with_suffix(".bin"), "openvino-bin")
                manifest["min_runtime"]["openvino"] = MIN_OPENVINO
        if card:
            card_copy = Path(tmp) / "card.json"
            shutil.copyfile(model.with_suffix(".json"), card_copy)
            files["card.json"] = (card_copy, "card")
        return write_bundle(out, manifest, files, private, as_zip=out.suffix == ".zip")


def _to_openvino_ir(model: Path, directory: Path) -> Path | None:
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return None
    import openvino as ov

    ir = directory / "model.xml"
    ov.save_model(ov.convert_model(str(model)), str(ir), compress_to_fp16=False)
    return ir
