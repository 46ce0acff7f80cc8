"""Shipped student models (ONNX + model card), run with onnxruntime — never torch.

Example::

    from sonoedge import zoo
    model = zoo.load("sonic-16")            # or a path to any exported SONIC .onnx
    pd_db = model.power_doppler(iq, prf_hz=1000.0, spacing_m=(0.625e-3, 0.6e-3))

Each model ``NAME`` is ``NAME.onnx`` plus its model card ``NAME.json`` (what it was trained for:
ensemble length, PRF range, pixel spacing, normalisation; provenance: command, data spec, commit;
metrics) and a human-readable ``NAME.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonoedge.errors import ConfigError

if TYPE_CHECKING:
    from sonoedge.zoo.despeckle import DespeckleModel
    from sonoedge.zoo.sonic import SonicModel

ZOO_DIR = Path(__file__).resolve().parent

TASK_MODULES: dict[str, str] = {
    "sonic": "sonoedge.zoo.sonic",
    "despeckle": "sonoedge.zoo.despeckle",
    "ulm": "sonoedge.zoo.ulm",
    "enhance": "sonoedge.zoo.enhance",
}
"""Model-card task -> torch-free module with ``MODEL``, the class running that task's students:
``MODEL(onnx_path, card, threads=2, session=None)`` with ``as_method()`` (a callable for
:mod:`sonoedge.processing.registry`); ``session`` comes from :mod:`sonoedge.zoo.backend`."""
TASK_OPS: dict[str, str] = {
    "sonic": "doppler",
    "despeckle": "despeckle",
    "enhance": "enhance",
    "ulm": "ulm",
}
"""Model-card task -> processing op the model serves."""


BUNDLE_DIR = ZOO_DIR / "bundles"


def shipped_bundles() -> dict[str, Path]:
    """Signed bundles shipped with this install, by name (``despeckle-mk-int8-openvino-cpu``);
    ``bundles/index.json`` says what each is (task, target, precision, int8 drop)."""
    return {p.stem: p for p in sorted(BUNDLE_DIR.glob("*.zip"))}


def available() -> list[str]:
    """Names of the models shipped with this install."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.json") if p.with_suffix(".onnx").exists())


def read_card(onnx_path: str | Path) -> dict[str, Any]:
    """The model card (JSON) that sits next to an ONNX file."""
    card_path = Path(onnx_path).with_suffix(".json")
    if not card_path.exists():
        raise ConfigError(
            f"no model card {card_path} next to {onnx_path}",
            hint="export with `sonoedge train` (it writes NAME.onnx and NAME.json together)",
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"model card {card_path} is unreadable: {err}") from None
    if not isinstance(card, dict) or "task" not in card or "input" not in card:
        raise ConfigError(f"model card {card_path} is not a sonoedge model card (no task/input)")
    return card


def resolve(name_or_path: str | Path) -> Path:
    """The ONNX file of a shipped model name or of a path (``.onnx`` or a directory holding one)."""
    path = Path(name_or_path)
    if path.suffix == ".onnx" and path.exists():
        return path
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if len(found) == 1:
            return found[0]
        raise ConfigError(f"{path} holds {len(found)} .onnx files: expected exactly one")
    shipped = ZOO_DIR / f"{name_or_path}.onnx"
    if shipped.exists():
        return shipped
    raise ConfigError(
        f"model {str(name_or_path)!r} not found: expected a shipped name "
        f"({', '.join(available()) or 'none installed'}) or a path to an .onnx file"
    )


def load_task(name_or_path: str | Path, task: str, cls: Any, threads: int = 2) -> Any:
    """``cls(onnx, card, threads)`` for a shipped name or exported ``.onnx`` whose card says
    ``task`` (each task module's ``load`` is this with its own task and class)."""
    onnx_path = resolve(name_or_path)
    card = read_card(onnx_path)
    if card["task"] != task:
        raise ConfigError(
            f"{onnx_path} is a {card['task']!r} model: this loader runs {task!r} models"
        )
    return cls(onnx_path, card, threads=threads)


def load(name_or_path: str | Path, threads: int = 2) -> SonicModel:
    """Load a SONIC model by name (``"sonic-16"``) or an exported ``.onnx`` with its card."""
    from sonoedge.zoo.sonic import load as _load

    return _load(name_or_path, threads=threads)


def load_despeckle(name_or_path: str | Path, threads: int = 2) -> DespeckleModel:
    """Load a despeckling student (see :mod:`sonoedge.zoo.despeckle`)."""
    from sonoedge.zoo.despeckle import load as _load

    return _load(name_or_path, threads=threads)


def load_model(
    name_or_path: str | Path, threads: int = 2, device: str = "cpu", allow_unsigned: bool = False
) -> Any:
    """Load any student, whatever its task: a shipped name, an exported ``.onnx`` with its card,
    or a signed bundle (``.zip`` or directory). ``device`` is a target (``cpu``, ``openvino-cpu``,
    ``jetson-orin``, ``cuda``, ... or ``auto``): plain onnxruntime on ``cpu``, otherwise the
    device backends of :mod:`sonoedge.devices` (falling back, with a log line, where absent)."""
    import importlib

    from sonoedge.zoo import backend

    session: Any = None
    if backend.is_bundle(name_or_path):
        path = Path(name_or_path)
        session, card = backend.bundle_session(path, device, threads, allow_unsigned)
    else:
        path = resolve(name_or_path)
        card = read_card(path)
        if device != "cpu":
            session = backend.device_session(path, device, threads)
    task = card["task"]
    if task not in TASK_MODULES:
        raise ConfigError(
            f"{path} is a {task!r} model: this install runs {', '.join(sorted(TASK_MODULES))}"
        )
    return importlib.import_module(TASK_MODULES[task]).MODEL(
        path, card, threads=threads, session=session
    )


def shipped_methods() -> dict[str, list[str]]:
    """Shipped model names per processing op (reads the model cards only; loads nothing)."""
    out: dict[str, list[str]] = {}
    for name in available():
        try:
            task = read_card(ZOO_DIR / f"{name}.onnx")["task"]
        except ConfigError:
            continue
        if task in TASK_MODULES and task in TASK_OPS:
            out.setdefault(TASK_OPS[task], []).append(name)
    return out
