"""Build the signed bundles shipped with sonoedge from the students in :mod:`sonoedge.zoo`.

Usage (the project's private key stays outside git)::

    SONOEDGE_SIGNING_KEY=/path/outside/git/sonoedge-project.key \\
        python -m sonoedge.devices.release --out sdk/zoo/bundles

For every shipped student: fp32 and int8 bundles for ``openvino-cpu`` (ONNX + IR, NNCF int8 IR)
and for ``jetson-orin-nano`` (ONNX; TensorRT builds fp16 engines on the device; int8 as symmetric
QDQ, what TensorRT expects). int8 comes from ``sonoedge compress`` (calibration on the task's
simulated data, accuracy-gated: layers that cost more than ``--max-drop`` dB stay in float).

Shipped int8 is post-training only (no ``--qat-steps``), so it stays what its fp32 student was
validated as. A quantization-aware despeckler scored 0.17 dB *above* fp32 on the gate set (its
fine-tuning also trains on the task loss) but moved 1.5 % of an emulator B-mode frame's pixels
by more than 0.1, where post-training int8 stays within 0.003 on average.
Needs the ``train`` and ``openvino`` extras (torch for compression, NNCF/OpenVINO for IR).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sonoedge.devices.errors import BundleError
from sonoedge.devices.package import package, signing_key
from sonoedge.errors import SonoedgeError

TARGETS = ("openvino-cpu", "jetson-orin-nano")
CALIBRATION_DATA = {
    "despeckle": "despeckle",
    "enhance": "degraded",
    "sonic": "sonic:{n_frames}",
    "ulm": "ulm",
}
"""Task -> ``sonoedge compress --data`` of its calibration set (other tasks ship fp32 only)."""
MAX_DROP = {"ulm": 0.01}
"""Task -> largest int8 metric drop where the task metric is not PSNR in dB (``ulm``: the
localisation Jaccard index at λ/4); other tasks take ``release``'s ``max_drop`` (dB)."""
NO_INT8 = {
    ("ulm", "jetson-orin-nano"): "symmetric QDQ int8 (TensorRT) lost 0.03 Jaccard at lambda/4 "
    "with every convolution back in float (max drop 0.01; README, ULM localiser compression)",
}
"""(task, target) pairs whose int8 misses the task's max drop, and why (fp32 only there)."""
GUIDED = (
    "physics-guided (a second input, params): the device backends and compression run "
    "one-input students; use it under onnxruntime on the CPU (sonoedge.zoo.ulm)"
)
"""Why students whose card has ``input.params`` get no bundles."""


def calibration_data(card: dict[str, Any]) -> str | None:
    """The ``compress --data`` spec for a student's task, or None when int8 is not offered."""
    spec = CALIBRATION_DATA.get(str(card.get("task")))
    if spec is None:
        return None
    return spec.format(n_frames=card.get("input", {}).get("n_frames", 16))


def release(
    out: Path, key: Path, names: list[str] | None = None, max_drop: float = 0.5
) -> list[Path]:
    """Write the shipped bundles into ``out``; returns their paths."""
    from sonoedge import zoo
    from sonoedge.bench.results import git_commit
    from sonoedge.quantization.compress import Options, compress

    check_project_key(key)
    commit = git_commit()

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previous = out / "index.json"
    old = json.loads(previous.read_text(encoding="utf-8")) if previous.exists() else {}
    bundled = students()
    skipped = {k: v for k, v in old.get("not_shipped", {}).items() if _student(k) in bundled}
    mixed: dict[str, str] = old.get("openvino_int8_layers", {})
    for name in names or bundled:
        onnx = zoo.resolve(name)
        card = zoo.read_card(onnx)
        if card.get("input", {}).get("params"):
            for precision in ("fp32", "int8"):
                skipped.update({f"{name}-{precision}-{t}.zip": GUIDED for t in TARGETS})
            continue
        for target in TARGETS:
            bundle = _fresh(out / f"{name}-fp32-{target}.zip")
            written.append(package(onnx, target, bundle, key))
        data = calibration_data(card)
        if data is None:
            for target in TARGETS:
                skipped[f"{name}-int8-{target}.zip"] = (
                    f"no int8 calibration set for task {card.get('task')!r} (fp32 only)"
                )
            continue
        with tempfile.TemporaryDirectory(prefix="sonoedge-release-") as tmp:
            for target in TARGETS:
                bundle = out / f"{name}-int8-{target}.zip"
                why = NO_INT8.get((str(card.get("task")), target))
                if why is not None:
                    skipped[bundle.name] = why
                    bundle.unlink(missing_ok=True)
                    continue
                tensorrt = target.startswith("jetson")
                drop = MAX_DROP.get(str(card.get("task")), max_drop)
                opts = Options(int8=True, openvino=not tensorrt, max_drop=drop, data=data)
                work = Path(tmp) / target
                command = (
                    f"sonoedge compress {onnx.name} --int8 --max-drop {drop} --data {data}"
                    + (" --tensorrt" if tensorrt else "")
                )
                compress(onnx, work, opts, command=command, commit=commit)
                report = json.loads((work / "report.json").read_text(encoding="utf-8"))
                shutil.copyfile(work / "report.json", out / f"{name}-int8-{target}.report.json")
                model = work / (f"{name}-int8.onnx" if tensorrt else f"{name}-int8-ov.xml")
                why = report.get(
                    "int8_onnxruntime_skipped" if tensorrt else "int8_openvino_skipped"
                )
                if why is not None:
                    skipped[bundle.name] = why
                    bundle.unlink(missing_ok=True)
                    continue
                if not model.exists():
                    raise BundleError(f"compression of {name} wrote no {model.name}")
                skipped.pop(bundle.name, None)
                written.append(package(model, target, _fresh(bundle), key, name=f"{name}-int8"))
                if not tensorrt:
                    from sonoedge.quantization.nncf_int8 import op_counts

                    ops = op_counts(model)
                    convs = ops.get("Convolution", 0) + ops.get("GroupConvolution", 0)
                    made = report["int8_openvino"]
                    mixed[bundle.name] = (
                        f"{ops.get('FakeQuantize', 0)} FakeQuantize ops for {convs} convolutions "
                        f"(calibration {made['setting']['name']}"
                        + (
                            "; accuracy control returned the layers that cost accuracy to float)"
                            if made["accuracy_control"]
                            else f"; kept in float for accuracy: {', '.join(search)})"
                            if (search := made.get("layers_kept_float_for_accuracy"))
                            else ")"
                        )
                    )
    if names is None:  # a full release: remove bundles of models no longer shipped
        for stale in [*out.glob("*.zip"), *out.glob("*.report.json")]:
            if _student(stale.name) not in bundled:
                stale.unlink()
    index = {p.name: json.loads(_manifest(p)) for p in sorted(out.glob("*.zip"))}
    summary = {
        "bundles": _summary(index),
        "not_shipped": skipped,
        "openvino_int8_layers": mixed,
    }
    (out / "index.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return written


def students() -> list[str]:
    """The shipped models that run as a pipeline operation (the ULM generator, which makes
    training data, is not bundled)."""
    from sonoedge import zoo

    return [n for n in zoo.available() if zoo.read_card(zoo.resolve(n)).get("task") in zoo.TASK_OPS]


def _student(bundle_name: str) -> str:
    """``sonic-16`` of ``sonic-16-int8-openvino-cpu.zip`` (or of its ``.report.json``)."""
    return bundle_name.split("-fp32-")[0].split("-int8-")[0]


def _fresh(bundle: Path) -> Path:
    """``bundle``'s path, after removing an older build of it (a release rebuilds)."""
    bundle.unlink(missing_ok=True)
    return bundle


def _manifest(bundle: Path) -> str:
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        return archive.read("manifest.json").decode()


def _summary(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What each shipped bundle is, for the README and ``sonoedge verify``'s users."""
    return {
        name: {
            "model": m["name"],
            "task": m["task"],
            "target": m["target"],
            "precision": m["precision"],
            "vs_fp32": m["metrics"]["vs_fp32"],
            "bytes": sum(int(f["size_bytes"]) for f in m["files"].values()),
            "commit": m["provenance"]["commit"],
        }
        for name, m in sorted(manifests.items())
    }


def check_project_key(key: Path) -> None:
    """Refuse a private key whose public half is not one of the project keys: bundles signed
    with it would not verify where sonoedge is installed."""
    from sonoedge.devices.signing import PROJECT_KEYS_DIR, key_id, load_private_key, project_keys

    kid = key_id(load_private_key(key).public_key())
    if kid not in {k.key_id for k in project_keys()}:
        raise BundleError(
            f"{key} (key id {kid}) is not a project key: shipped bundles must verify with a "
            f"public key in {PROJECT_KEYS_DIR}",
            hint="rotating keys: `sonoedge keys generate --name sonoedge-project-YYYY-MM-DD`, "
            f"commit its .pub into {PROJECT_KEYS_DIR} (keep the retired ones) and rebuild every "
            "bundle with the new .key",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sdk/zoo/bundles"))
    parser.add_argument("--key", type=Path, default=None, help="default: $SONOEDGE_SIGNING_KEY")
    parser.add_argument(
        "--max-drop", type=float, default=0.5, help="int8 metric drop (dB; MAX_DROP for ulm)"
    )
    parser.add_argument("names", nargs="*", help="students (default: every shipped one)")
    args = parser.parse_args()
    key = signing_key(args.key)
    if key is None:
        raise SystemExit(
            "error: no signing key: pass --key or set SONOEDGE_SIGNING_KEY (shipped bundles are "
            "signed with the project key)"
        )
    try:
        for path in release(args.out, key, args.names or None, args.max_drop):
            print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    except SonoedgeError as err:  # e.g. not a project key, or not a key at all
        raise SystemExit(f"error: {err}" + (f"\nhint: {err.hint}" if err.hint else "")) from None


if __name__ == "__main__":
    main()
