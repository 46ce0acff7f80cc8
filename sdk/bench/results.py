"""Write benchmark and evaluation results the way every sonoedge result is recorded.

``docs/results/<name>.json`` holds ``{"command", "commit", "date", "machine", "metrics",
"baselines"}``; a figure, where one helps, goes beside it as ``<name>.png``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("SONOEDGE_RESULTS_DIR") or "docs/results")
"""Where benchmarks write (``SONOEDGE_RESULTS_DIR`` overrides it: run several benchmarks from one
clean tree, and each result still records a clean commit)."""


def git_commit(cwd: str | Path | None = None) -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            encoding="utf-8",
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            encoding="utf-8",
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, core count and accelerator of this machine."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "accelerator": os.environ.get("SONOEDGE_ACCELERATOR", "none"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def current_command() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def write_result(
    name: str,
    metrics: dict[str, Any],
    baselines: dict[str, Any] | None = None,
    command: str | None = None,
    results_dir: str | Path = RESULTS_DIR,
    **extra: Any,
) -> Path:
    """Write ``<results_dir>/<name>.json`` and return its path."""
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command or current_command(),
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "metrics": metrics,
        "baselines": baselines or {},
        **extra,
    }
    path = out_dir / f"{name}.json"
    path.write_text(
        json.dumps(record, indent=2, sort_keys=False, default=_jsonable) + "\n", encoding="utf-8"
    )
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
