"""Minimum runtime versions a bundle declares, checked against what is installed."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping

from sonoedge.devices.errors import BundleError

DISTRIBUTIONS = {"sonoedge": "sonoedge", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def parse(version: str) -> tuple[int, ...]:
    """``"1.17.3"`` → ``(1, 17, 3)`` (pre-release suffixes ignored)."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def installed(component: str) -> str | None:
    names = [DISTRIBUTIONS.get(component, component)]
    if component == "onnxruntime":
        names += ["onnxruntime-gpu", "onnxruntime-openvino"]
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check(minimum: Mapping[str, str], needed: set[str]) -> None:
    """Raise :class:`BundleError` when a component in ``needed`` is older than the bundle needs.
    Components not installed are left to the backend chain (it logs and falls back)."""
    for component, wanted in minimum.items():
        if component not in needed:
            continue
        have = installed(component)
        if have is not None and parse(have) < parse(wanted):
            raise BundleError(
                f"this bundle needs {component} >= {wanted}; {have} is installed",
                hint=f"upgrade: pip install -U '{component}>={wanted}'",
            )
