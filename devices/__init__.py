"""Target profiles, inference backends and signed model bundles (never imports torch).

from sonoedge.devices import load_bundle
runner = load_bundle("model.zip", device="auto")   # verifies signature + sha256 first
outputs = runner.run({"x": x})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonoedge.devices.bundle import Bundle
    from sonoedge.devices.runner import Runner

__all__ = ["Bundle", "Runner", "load_bundle", "open_bundle"]


def __getattr__(name: str) -> Any:
    if name in ("load_bundle", "Runner"):
        from sonoedge.devices import runner

        return getattr(runner, name)
    if name in ("open_bundle", "Bundle"):
        from sonoedge.devices import bundle

        return getattr(bundle, name)
    raise AttributeError(name)
