"""The package layout and the runtime's import discipline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "sdk": "sonoedge",
    "firmware_bridge": "sonoedge.firmware_bridge",
    "quantization": "sonoedge.quantization",
    "devices": "sonoedge.devices",
}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    assert config["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == set(config["packages"])


def test_runtime_path_never_imports_torch() -> None:
    runtime = [
        "sonoedge.cli",
        "sonoedge.ingest.urls",
        "sonoedge.io.recording",
        "sonoedge.io.plus",
        "sonoedge.io.volume",
        "sonoedge.firmware_bridge.emulator",
        "sonoedge.pipeline.runner",
        "sonoedge.pipeline.sinks",
        "sonoedge.pipeline.pose",
        "sonoedge.processing.registry",
        "sonoedge.freehand.sweep",
        "sonoedge.freehand.convert",
        "sonoedge.synth.live",
        "sonoedge.showcase",
        "sonoedge.bench.ingest",
        "sonoedge.bench.pipeline",
        "sonoedge.devices.targets",
        "sonoedge.zoo",
    ]
    code = (
        f"import sys, importlib\nfor m in {runtime!r}: importlib.import_module(m)\n"
        "bad = [m for m in ('torch', 'nncf', 'torch_pruning') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_import_sonoedge_is_lazy() -> None:
    code = "import sys, sonoedge; assert 'numpy' not in sys.modules; print(sonoedge.__version__)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
