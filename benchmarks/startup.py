"""Startup and footprint: `sonoedge --help`, `import sonoedge`, and the base install size.

Usage: python benchmarks/startup.py [--no-install]  → docs/results/startup.json
The install measurement builds a throw-away venv with the base install only (no extras).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sonoedge.bench.results import write_result

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], repeats: int = 15) -> dict[str, float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_s": round(statistics.median(times), 4), "p99_s": round(times[-1], 4)}


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def base_install_mb() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = venv / "bin" / "python"
        empty = dir_mb(venv)
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], check=True)
        return {"base_install_mb": round(dir_mb(venv) - empty, 1)}


def main() -> None:
    bin_dir = Path(sys.executable).parent
    metrics: dict[str, object] = {
        "sonoedge_help": timed([str(bin_dir / "sonoedge"), "--help"]),
        "import_sonoedge": timed([sys.executable, "-c", "import sonoedge"]),
        "python_startup": timed([sys.executable, "-c", "pass"]),
    }
    if "--no-install" not in sys.argv:
        metrics.update(base_install_mb())
    baselines = {"target_help_s": 0.3, "target_import_s": 0.3, "target_base_install_mb": 300}
    path = write_result(
        "startup",
        metrics,
        baselines,
        command="python benchmarks/startup.py " + " ".join(sys.argv[1:]),
    )
    print(metrics)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
