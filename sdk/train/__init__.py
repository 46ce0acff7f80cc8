"""Shared training tooling for every student (torch; imported by ``sonoedge train``/``eval``).

A *task* (``sonic`` today; despeckling and enhancement students plug in the same way) is a module
exposing ``train(cfg, out_dir, progress, stop_after=None) -> Path`` and
``evaluate(model_paths, cfg, results_dir, name, quick, command) -> dict``; :data:`TASKS` maps task
names to those modules. Configs are TOML files validated against the task's default config
(:mod:`sonoedge.train.config`); the generic loop (:mod:`sonoedge.train.loop`) gives every task
seeded, resumable training with checkpoints and a progress bar.

This ``__init__`` is torch-free so the CLI can list tasks cheaply.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sonoedge.errors import ConfigError

TASKS: dict[str, str] = {
    "sonic": "sonoedge.train.sonic",
    "despeckle": "sonoedge.train.despeckle",
    "ulm": "sonoedge.train.ulm",
    "enhance": "sonoedge.train.enhance",
}
"""Task name → module implementing it (add despeckle/enhance students here)."""


def check_task(name: str) -> None:
    """Refuse an unknown task name (without importing torch)."""
    if name not in TASKS:
        raise ConfigError(f"task {name!r} is unknown: expected one of {', '.join(sorted(TASKS))}")


def get_task(name: str) -> ModuleType:
    """The module implementing task ``name``."""
    check_task(name)
    return importlib.import_module(TASKS[name])
