"""TOML configs validated against a task's default config (torch-free).

Every task ships ``configs/<task>.toml`` (the full default, every key present) and
``configs/<task>_quick.toml`` (tiny overrides for ``--quick``). A user file overrides any subset;
unknown keys, wrong types and wrong list lengths are refused with the key's dotted name.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from sonoedge.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise ConfigError("reading TOML configs needs Python >= 3.11 (tomllib)") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def _type_name(value: Any) -> str:
    return type(value).__name__


def merge(default: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``default`` updated by ``override``; keys and types must exist in ``default``."""
    out = copy.deepcopy(default)
    for key, value in override.items():
        name = f"{where}{key}"
        if key not in default:
            raise ConfigError(
                f"config key {name!r} is unknown: expected one of {', '.join(sorted(default))}"
            )
        ref = default[key]
        expected = f"{_type_name(ref)} like {ref!r}"
        if isinstance(ref, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {name!r} must be a table, got {_type_name(value)}")
            out[key] = merge(ref, value, f"{name}.")
            continue
        if isinstance(ref, bool) or isinstance(value, bool):
            ok = isinstance(ref, bool) and isinstance(value, bool)
        elif isinstance(ref, float):
            ok = isinstance(value, int | float)
            value = float(value) if ok else value
        elif isinstance(ref, list) and ref and all(isinstance(v, float) for v in ref):
            ok = isinstance(value, list) and len(value) == len(ref)  # a range: [lo, hi]
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            value = [float(v) for v in value] if ok else value
            expected = f"{len(ref)} numbers like {ref!r}"
        elif isinstance(ref, list):  # choices, e.g. probes or a phantom mix: any length
            kinds = {type(v) for v in ref}
            ok = isinstance(value, list) and len(value) > 0
            ok = ok and all(type(v) in kinds for v in value)
        else:
            ok = isinstance(value, type(ref))
        if not ok:
            raise ConfigError(f"config key {name!r} = {value!r} is invalid: expected {expected}")
        out[key] = value
    return out


def load(task: str, path: str | Path | None = None, quick: bool = False) -> dict[str, Any]:
    """The task's default config, then ``--quick`` overrides, then the user's file."""
    default_path = CONFIG_DIR / f"{task}.toml"
    if not default_path.exists():
        raise ConfigError(f"task {task!r} has no default config {default_path}")
    cfg = _read_toml(default_path)
    if quick:
        quick_path = CONFIG_DIR / f"{task}_quick.toml"
        if quick_path.exists():
            cfg = merge(cfg, _read_toml(quick_path))
    if path is not None:
        cfg = merge(cfg, _read_toml(Path(path)))
    if cfg.get("task") != task:
        raise ConfigError(f"config is for task {cfg.get('task')!r}: expected {task!r}")
    return cfg


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (cache keys)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def require_range(cfg: dict[str, Any], dotted: str, lo: float, hi: float) -> None:
    """Check ``lo <= value <= hi`` (or each end of a ``[low, high]`` pair, with low <= high)."""
    value: Any = cfg
    for part in dotted.split("."):
        value = value[part]
    values = value if isinstance(value, list) else [value]
    if not all(lo <= float(v) <= hi for v in values) or (
        isinstance(value, list) and len(value) == 2 and float(value[0]) > float(value[1])
    ):
        raise ConfigError(f"config key {dotted!r} = {value!r} is invalid: expected {lo:g}..{hi:g}")
