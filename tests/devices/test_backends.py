"""Backend order, fallbacks, TensorRT options and caches (providers mocked at the ORT boundary),
and the OpenVINO runtime (real, on this CPU)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest

from sonoedge.devices import backends, load_bundle, trt_cache
from sonoedge.devices.package import package
from sonoedge.devices.profiles import profile, profiles

# Provider option names as documented by ONNX Runtime (TensorRT EP, CUDA EP, OpenVINO EP).
TRT_DOCUMENTED = {
    "device_id",
    "trt_fp16_enable",
    "trt_int8_enable",
    "trt_max_workspace_size",
    "trt_builder_optimization_level",
    "trt_engine_cache_enable",
    "trt_engine_cache_path",
    "trt_timing_cache_enable",
    "trt_timing_cache_path",
    "trt_profile_min_shapes",
    "trt_profile_opt_shapes",
    "trt_profile_max_shapes",
}
CUDA_DOCUMENTED = {"device_id", "cudnn_conv_algo_search"}
OPENVINO_EP_DOCUMENTED = {"device_type", "cache_dir", "num_of_threads"}
ALL_GPU = [
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
]


class FakeSession:
    """Stands in for onnxruntime.InferenceSession on a GPU build: records what it was asked for,
    reports the providers that 'loaded', and computes on the real CPU session."""

    created: ClassVar[list[dict[str, Any]]] = []
    loads: ClassVar[tuple[str, ...]] = tuple(ALL_GPU)

    def __init__(self, path: str, options: Any = None, providers: Any = None, **kw: Any) -> None:
        FakeSession.created.append({"providers": providers, **kw})
        self._real = REAL_SESSION(path, options, providers=["CPUExecutionProvider"])
        self._active = [p for p in providers if p in FakeSession.loads]

    def get_providers(self) -> list[str]:
        return self._active

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


REAL_SESSION = ort.InferenceSession


@pytest.fixture
def gpu_build(monkeypatch: pytest.MonkeyPatch) -> type[FakeSession]:
    FakeSession.created = []
    FakeSession.loads = tuple(ALL_GPU)
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(ALL_GPU))
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr("sonoedge.devices.capabilities.gpu_name", lambda: "Orin (nvgpu)")
    monkeypatch.setattr(trt_cache, "tensorrt_version", lambda: "10.3.0")
    return FakeSession


def test_profiles_are_data_in_the_documented_order() -> None:
    order = list(backends.PROVIDERS)
    for p in profiles().values():
        assert p.backends[-1] == "cpu"
        ort_part = [b for b in p.backends if b != "openvino"]
        assert [order.index(b) for b in ort_part] == sorted(order.index(b) for b in ort_part)
    assert profile("jetson-orin-nano").backends == ("tensorrt", "cuda", "openvino-ep", "cpu")


def test_tensorrt_options_use_documented_names(tmp_path: Path) -> None:
    p = profile("jetson-orin-nx")
    opts = backends.tensorrt_options(p, "int8", tmp_path, {"x": [1, 8, 64, 64]})
    assert set(opts) <= TRT_DOCUMENTED
    assert opts["trt_int8_enable"] and opts["trt_fp16_enable"]
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == str(tmp_path)
    assert opts["trt_profile_opt_shapes"] == "x:1x8x64x64"
    assert not backends.tensorrt_options(p, "fp32", tmp_path)["trt_int8_enable"]


def test_chain_skips_missing_providers_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    chain = backends.provider_chain(
        profile("jetson-orin-nano"), "fp32", "abc", ["CPUExecutionProvider"], tmp_path
    )
    assert [p for p, _ in chain] == ["CPUExecutionProvider"]
    for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider"):
        assert any(name in r.message and "falling back" in r.message for r in caplog.records)


def test_chain_on_a_gpu_build_uses_tensorrt_only_when_engines_were_built(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    p = profile("jetson-orin-agx")
    chain = backends.provider_chain(p, "fp32", "abc", ALL_GPU, tmp_path)
    assert [n for n, _ in chain] == ALL_GPU[1:]
    assert "no TensorRT engine built" in caplog.text
    cuda, ov_ep = dict(chain)["CUDAExecutionProvider"], dict(chain)["OpenVINOExecutionProvider"]
    assert set(cuda) <= CUDA_DOCUMENTED and set(ov_ep) <= OPENVINO_EP_DOCUMENTED
    trt_cache.mark_built(tmp_path, "abc")
    chain = backends.provider_chain(p, "fp32", "abc", ALL_GPU, tmp_path)
    assert [n for n, _ in chain] == ALL_GPU


def test_cache_key_separates_gpu_tensorrt_and_ort_versions() -> None:
    keys = {
        trt_cache.cache_key("Orin Nano", "8.6.2", "1.18.0"),
        trt_cache.cache_key("Orin Nano", "10.3.0", "1.18.0"),
        trt_cache.cache_key("Orin NX", "8.6.2", "1.18.0"),
        trt_cache.cache_key("Orin Nano", "8.6.2", "1.19.2"),
    }
    assert len(keys) == 4
    assert trt_cache.cache_key("NVIDIA Jetson Orin Nano", "10.3.0", "1.20.1") == (
        "nvidia-jetson-orin-nano_trt10.3.0_ort1.20.1"
    )


def test_jetson_warmup_builds_engines_then_loads_use_them(
    gpu_build: type[FakeSession],
    tmp_path: Path,
    tiny_model: Path,
    keypair: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    out = package(tiny_model, "jetson-orin-nano", tmp_path / "nano.zip", keypair[0])
    with load_bundle(out, "jetson-orin-nano", keys=[keypair[1]]) as runner:
        assert runner.backend_name == "cuda"  # engines not built yet: no silent build
    assert "no TensorRT engine built" in caplog.text
    with load_bundle(out, "jetson-orin-nano", keys=[keypair[1]], warmup=True) as runner:
        assert runner.backend_name == "tensorrt"
    cache = trt_cache.cache_dir()
    assert cache.name == f"orin-nvgpu_trt10.3.0_ort{ort.__version__}"
    caplog.clear()
    with load_bundle(out, "auto", keys=[keypair[1]]) as runner:
        assert runner.target == "jetson-orin-nano" and runner.backend_name == "tensorrt"
        x = np.ones((1, 8, 16, 16), np.float32)
        assert runner.run(x)["y"].shape == x.shape
    assert "no TensorRT engine built" not in caplog.text
    first = gpu_build.created[-1]
    assert first["providers"] == ALL_GPU
    trt = first["provider_options"][0]
    assert trt["trt_engine_cache_path"] == str(cache) and not trt["trt_int8_enable"]


def test_provider_dropped_by_onnxruntime_is_logged(
    gpu_build: type[FakeSession],
    tmp_path: Path,
    tiny_model: Path,
    keypair: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    gpu_build.loads = ("CPUExecutionProvider",)  # e.g. CUDA libraries missing at load time
    out = package(tiny_model, "jetson-orin-nx", tmp_path / "nx", keypair[0])
    with load_bundle(out, "jetson-orin-nx", keys=[keypair[1]]) as runner:
        assert runner.backend_name == "cpu"
    assert "onnxruntime dropped CUDAExecutionProvider" in caplog.text


def test_unavailable_device_falls_back_to_cpu_with_a_log_line(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    out = package(tiny_model, "jetson-orin-nano", tmp_path / "nano", keypair[0])
    with load_bundle(out, "jetson-orin-nano", keys=[keypair[1]]) as runner:
        assert runner.target == "cpu" and runner.backend_name == "cpu"
    assert "not available here; falling back to cpu" in caplog.text


def test_openvino_target_runs_ir_with_hints_and_cache(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path]
) -> None:
    pytest.importorskip("openvino")
    out = package(tiny_model, "openvino-cpu", tmp_path / "ov", keypair[0])
    x = np.random.default_rng(2).standard_normal((1, 8, 16, 16)).astype(np.float32)
    (want,) = REAL_SESSION(str(tiny_model), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for hint in ("latency", "throughput"):
        with load_bundle(out, "openvino-cpu", keys=[keypair[1]], hint=hint) as runner:
            assert runner.backend_name == "openvino-cpu"
            assert runner.bundle.file("openvino-xml") is not None
            np.testing.assert_allclose(runner.run({"x": x})["y"], want, rtol=1e-4, atol=1e-5)
    assert any((trt_cache.cache_root() / "openvino").iterdir())


def test_openvino_compiles_each_new_input_shape_in_the_background(tiny_model: Path) -> None:
    pytest.importorskip("openvino")
    backend = backends.OpenVinoBackend(tiny_model, "CPU")
    session = REAL_SESSION(str(tiny_model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    sizes = [(16, 16), (24, 40), (16, 16), (8, 8), (12, 20), (32, 8), (24, 40)]
    for h, w in sizes:
        x = rng.standard_normal((1, 8, h, w)).astype(np.float32)
        (want,) = session.run(None, {"x": x})
        np.testing.assert_allclose(backend.run({"x": x})["y"], want, rtol=1e-4, atol=1e-5)
        backend.wait()  # the frame ran at once; its shape's compilation finishes behind it
        np.testing.assert_allclose(backend.run({"x": x})["y"], want, rtol=1e-4, atol=1e-5)
    kept = [shape[2:] for ((_, shape, _),) in backend._static]
    assert len(kept) == backends.STATIC_SHAPES and kept[-1] == (24, 40)  # most recent last
    assert (16, 16) not in kept  # the least recently used shape was dropped
    backend.prepare({"x": (1, 8, 16, 16)})  # compiled now, without a frame
    assert next(reversed(backend._static)) == (("x", (1, 8, 16, 16), False),)
    backend.close()


def test_openvino_takes_channels_last_memory_without_a_reorder(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path]
) -> None:
    pytest.importorskip("openvino")
    nhwc = np.random.default_rng(5).standard_normal((1, 12, 20, 8)).astype(np.float32)
    x = nhwc.transpose(0, 3, 1, 2)  # logically NCHW, channels-last in memory
    assert backends.is_channels_last(x) and not backends.is_channels_last(np.ascontiguousarray(x))
    assert not backends.is_channels_last(np.zeros((1, 1, 4, 4), np.float32)[:, :, ::2])
    session = REAL_SESSION(str(tiny_model), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": np.ascontiguousarray(x)})
    out = package(tiny_model, "openvino-cpu", tmp_path / "ov", keypair[0])
    with load_bundle(out, "openvino-cpu", keys=[keypair[1]]) as runner:
        backend = runner.backend
        np.testing.assert_allclose(runner.run(x)["y"], want, rtol=1e-4, atol=1e-5)  # dynamic
        backend.wait()
        assert (("x", x.shape, True),) in backend._static  # its own NHWC compilation
        np.testing.assert_allclose(runner.run(x)["y"], want, rtol=1e-4, atol=1e-5)
        runner.prepare({"x": np.ascontiguousarray(x)})  # the NCHW one lives beside it
        assert (("x", x.shape, False),) in backend._static
        runner.prepare()  # --warmup: the example shape in both memory layouts
        example = tuple(runner.example_inputs()["x"].shape)
        assert {(("x", example, False),), (("x", example, True),)} <= set(backend._static)
        np.testing.assert_allclose(
            runner.run(np.ascontiguousarray(x))["y"], want, rtol=1e-4, atol=1e-5
        )
    cpu = backends.OrtBackend(tiny_model, [("CPUExecutionProvider", {})], 1)
    np.testing.assert_allclose(cpu.run({"x": x})["y"], want, rtol=1e-5, atol=1e-6)


def test_openvino_outputs_survive_the_next_inference(tiny_model: Path) -> None:
    pytest.importorskip("openvino")
    backend = backends.OpenVinoBackend(tiny_model, "CPU")
    session = REAL_SESSION(str(tiny_model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((1, 8, 16, 16)).astype(np.float32) for _ in range(3)]
    backend.prepare({"x": xs[0].shape})
    outs = [backend.run({"x": x})["y"] for x in xs]  # inputs are shared, outputs must not be
    for x, y in zip(xs, outs, strict=True):
        (want,) = session.run(None, {"x": x})
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    backend.close()


def test_runtime_modules_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import sonoedge.devices, sonoedge.devices.runner, sonoedge.devices.bundle, "
        "sonoedge.devices.backends, sonoedge.devices.package, sonoedge.devices.capabilities, "
        "sonoedge.cli.package, sonoedge.cli.devices, sonoedge.cli.compress\n"
        "from sonoedge.cli.devices import devices\n"
        "devices(json_out=True)\n"
        "bad = [m for m in ('torch', 'nncf', 'torch_pruning') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)
