"""Target profiles, read from ``data/targets.toml`` and validated on load."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sonoedge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_PATH = Path(__file__).resolve().parent / "data" / "targets.toml"
BACKENDS = ("tensorrt", "cuda", "openvino-ep", "openvino", "cpu")


@dataclass(frozen=True)
class TargetProfile:
    """Where a bundle runs: the backends tried in order and their settings."""

    name: str
    description: str
    backends: tuple[str, ...]
    openvino_device: str = "CPU"
    trt_fp16: bool = False
    trt_workspace_bytes: int = 1 << 30
    trt_builder_optimization_level: int = 3

    @property
    def uses_tensorrt(self) -> bool:
        return "tensorrt" in self.backends


@cache
def profiles() -> dict[str, TargetProfile]:
    """Every target profile by name, in file order."""
    raw = tomllib.loads(PROFILES_PATH.read_text(encoding="utf-8"))
    found = {}
    for name, table in raw.items():
        backends = tuple(table.get("backends", ()))
        if not backends or any(b not in BACKENDS for b in backends) or backends[-1] != "cpu":
            raise ConfigError(
                f"target {name}: backends {backends} must be from {BACKENDS} and end with cpu"
            )
        order = [BACKENDS.index(b) for b in backends]
        if order != sorted(order) or ("openvino" in backends and backends[0] != "openvino"):
            raise ConfigError(
                f"target {name}: backends must follow the order {BACKENDS}, and the OpenVINO "
                "runtime may only come first (it is not an ONNX Runtime provider)"
            )
        found[name] = TargetProfile(name=name, **{**table, "backends": backends})
    return found


def profile(name: str) -> TargetProfile:
    table = profiles()
    if name not in table:
        raise ConfigError(f"unknown target {name!r}", hint=f"use one of: {', '.join(table)}")
    return table[name]
