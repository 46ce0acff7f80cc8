"""Pipeline presets: small TOML files, validated on load.

A preset names the probe mode it needs and lists stages; each stage is an ``op`` and a
``method`` from :mod:`sonoedge.processing.registry` with optional ``params``::

    name = "bmode"
    probe_mode = "bmode"
    [[stages]]
    op = "despeckle"
    method = "srad"
    params = { n_iter = 5 }
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sonoedge.errors import ConfigError
from sonoedge.types import PROBE_MODES, ProbeMode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older Jetson images
    import tomli as tomllib

_PRESET_KEYS = {"name", "description", "probe_mode", "stages"}
_STAGE_KEYS = {"op", "method", "params", "name"}


@dataclass(frozen=True)
class StageSpec:
    op: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True)
class PresetSpec:
    name: str
    description: str
    probe_mode: ProbeMode
    stages: tuple[StageSpec, ...]


def builtin_presets() -> list[str]:
    """Names of the presets shipped with sonoedge."""
    folder = resources.files("sonoedge.pipeline") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def parse_preset(data: dict[str, Any], source: str) -> PresetSpec:
    """Validate a preset table (from TOML) and return it."""
    unknown = set(data) - _PRESET_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"a preset has: {', '.join(sorted(_PRESET_KEYS))}",
        )
    mode = data.get("probe_mode", "bmode")
    if mode not in PROBE_MODES:
        raise ConfigError(f"{source}: probe_mode={mode!r} is not one of {PROBE_MODES}")
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise ConfigError(f"{source}: needs at least one [[stages]] table")
    stages = []
    for i, stage in enumerate(stages_data):
        where = f"{source}: stage {i + 1}"
        if not isinstance(stage, dict):
            raise ConfigError(f"{where} is not a table")
        bad = set(stage) - _STAGE_KEYS
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(bad))}",
                hint=f"a stage has: {', '.join(sorted(_STAGE_KEYS))}",
            )
        if "op" not in stage or "method" not in stage:
            raise ConfigError(f"{where}: needs 'op' and 'method'")
        params = stage.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: params must be a table")
        stages.append(
            StageSpec(str(stage["op"]), str(stage["method"]), dict(params), stage.get("name"))
        )
    return PresetSpec(
        name=str(data.get("name", source)),
        description=str(data.get("description", "")),
        probe_mode=mode,
        stages=tuple(stages),
    )


def load_preset(name_or_path: str | Path) -> PresetSpec:
    """A built-in preset by name (``bmode``, ``doppler``, ``ulm``) or a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise ConfigError(f"preset file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        source = str(path)
    else:
        names = builtin_presets()
        if str(name_or_path) not in names:
            raise ConfigError(
                f"unknown preset {name_or_path!r}",
                hint=f"built-in presets: {', '.join(names)}; or pass a .toml file",
            )
        text = (
            resources.files("sonoedge.pipeline") / "presets" / f"{name_or_path}.toml"
        ).read_text(encoding="utf-8")
        source = f"preset {name_or_path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source} is not valid TOML: {err}") from err
    return parse_preset(data, source)
