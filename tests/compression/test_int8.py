"""int8: ONNX Runtime QDQ (per-channel, per-layer report, float fallback) and NNCF/OpenVINO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")

from sonoedge.quantization import data, ort_int8  # noqa: E402
from sonoedge.quantization.export import export_onnx  # noqa: E402


@pytest.fixture
def exported(tiny_unet: torch.nn.Module, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_unet, torch.rand(1, 1, 32, 32), path)
    return path


@pytest.fixture(scope="module")
def speckle_sets() -> tuple[data.DataSet, data.DataSet]:
    return data.speckle(16, size=32, seed=2).split(8)


def _feeds(ds: data.DataSet) -> list[dict[str, np.ndarray]]:
    return [{"input": x} for x in ds.inputs]


def _metric(ds: data.DataSet):  # type: ignore[no-untyped-def]
    assert ds.targets is not None
    targets = ds.targets
    return ort_int8.onnx_metric(_feeds(ds), lambda outs: data.mean_psnr_db(targets, outs))


def test_qdq_per_channel_with_a_layer_report(
    exported: Path, speckle_sets: tuple[data.DataSet, data.DataSet]
) -> None:
    calib, val = speckle_sets
    result = ort_int8.quantize_gated(
        exported, exported.with_name("int8.onnx"), _feeds(calib), _metric(val)
    )
    graph = onnx.load(str(result.model)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") >= 6 and "ConvTranspose" in ops
    weight_scales = [
        i
        for i in graph.initializer
        if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] > 1
    ]
    assert weight_scales, "per-channel weights have one scale per output channel"
    assert {r.op_type for r in result.report} == {"Conv", "ConvTranspose"}
    assert len(result.report) == 6
    assert all(r.own_sqnr_db is not None and r.own_sqnr_db > 15 for r in result.report)
    assert abs(result.drop) < 0.5
    assert result.to_dict()["layers"][0]["node"] == result.report[0].node


def test_broken_layers_stay_in_float(
    exported: Path, speckle_sets: tuple[data.DataSet, data.DataSet]
) -> None:
    calib, val = speckle_sets
    result = ort_int8.quantize_gated(
        exported, exported.with_name("f.onnx"), _feeds(calib), _metric(val), broken_sqnr_db=1e3
    )
    assert len(result.excluded) == 6 and all(r.in_float for r in result.report)
    graph = onnx.load(str(result.model)).graph
    weights = {i.name for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 6 and all(n.input[1] in weights for n in convs)  # float weights
    assert abs(result.drop) < 0.5


def test_accuracy_gate_moves_worst_layers_to_float(
    exported: Path, speckle_sets: tuple[data.DataSet, data.DataSet]
) -> None:
    calib, val = speckle_sets
    plain = ort_int8.quantize_gated(
        exported, exported.with_name("a.onnx"), _feeds(calib), _metric(val)
    )
    gated = ort_int8.quantize_gated(
        exported, exported.with_name("b.onnx"), _feeds(calib), _metric(val), max_drop=-1.0
    )
    assert not plain.excluded
    assert len(gated.excluded) == 6  # an impossible gate keeps everything in float
    worst = min(plain.report, key=lambda r: r.own_sqnr_db or 0.0).node
    assert gated.excluded[0] == worst


def test_nncf_openvino_int8(
    exported: Path, speckle_sets: tuple[data.DataSet, data.DataSet]
) -> None:
    pytest.importorskip("nncf")
    import openvino as ov

    from sonoedge.quantization import nncf_int8

    calib, val = speckle_sets
    assert val.targets is not None
    targets = val.targets

    def score(outs: list[np.ndarray]) -> float:
        return data.mean_psnr_db(targets, outs)

    xml = nncf_int8.quantize_openvino(exported, exported.with_name("ov.xml"), _feeds(calib)).model
    ops = {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()}
    assert "FakeQuantize" in ops or "FakeConvert" in ops
    fp32 = nncf_int8.openvino_metric(_feeds(val), score)(exported)
    int8 = nncf_int8.openvino_metric(_feeds(val), score)(xml)
    assert abs(fp32 - int8) < 0.5


def test_nncf_keeps_the_best_calibration_for_inputs_of_varied_range(exported: Path) -> None:
    """Samples whose dynamic range differs by 100x: every calibration setting (NNCF's default
    mean of per-sample ranges, global min/max, with and without bias correction) is tried on
    the task metric and the best one is the model kept."""
    pytest.importorskip("nncf")
    import onnxruntime as ort

    from sonoedge.quantization import nncf_int8

    rng = np.random.default_rng(0)
    base = data.speckle(24, size=32, seed=4).inputs
    inputs = [x * np.float32(10 ** rng.uniform(-1, 1)) for x in base]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    feeds = [{"input": x} for x in inputs]
    refs = [session.run(None, f)[0] for f in feeds[16:]]

    def score(outs: list[np.ndarray]) -> float:
        return data.mean_psnr_db(refs, outs, data_range=float(np.ptp(np.concatenate(refs))))

    result = nncf_int8.quantize_openvino(
        exported, exported.with_name("ov.xml"), feeds[:16], feeds[16:], score, max_drop=None
    )
    assert set(result.tried) == set(nncf_int8.SETTINGS)
    assert result.metric_int8 == max(result.tried.values())
    assert result.tried[result.setting] == result.metric_int8 and not result.accuracy_control
    assert result.model.exists() and nncf_int8.quantized_ops(result.model) > 0
    assert result.to_dict()["setting"]["name"] == result.setting


def test_per_channel_context_adds_stay_float_and_bias_adds_do_not_count(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    import openvino as ov

    from sonoedge.quantization import nncf_int8

    class WithContext(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.context = torch.nn.Conv2d(8, 8, 1)
            self.head = torch.nn.Conv2d(8, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = torch.relu(self.body(x))
            f = f + self.context(f.mean(dim=(2, 3), keepdim=True))  # whole-image offsets
            return x + self.head(f)

    path = tmp_path / "ctx.onnx"
    export_onnx(WithContext().eval(), torch.rand(1, 1, 32, 32), path)
    adds = nncf_int8.broadcast_adds(ov.convert_model(str(path)))
    assert len(adds) == 1  # not the convolutions' bias adds, not the residual add
    ds = data.speckle(12, size=32, seed=3)
    made = nncf_int8.quantize_openvino(path, tmp_path / "ctx.xml", _feeds(ds)[:8])
    assert made.in_float == adds and nncf_int8.quantized_ops(made.model) > 0
    ir = ov.Core().read_model(str(made.model))
    add = next(op for op in ir.get_ops() if op.get_friendly_name() == adds[0])
    producers = {add.input(i).get_source_output().get_node().get_type_name() for i in range(2)}
    assert "FakeQuantize" not in producers


def test_the_fewest_layers_that_break_under_int8_stay_in_float(tmp_path: Path) -> None:
    """A head convolution whose input has one outlier channel (1000x the others) loses the
    others to a per-tensor int8 activation scale; the per-layer search keeps exactly that
    convolution in float, inside the allowed drop, without NNCF's accuracy control."""
    pytest.importorskip("nncf")
    import onnxruntime as ort

    from sonoedge.quantization import nncf_int8

    class Outlier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.mid = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.head = torch.nn.Conv2d(8, 1, 3, padding=1)
            with torch.no_grad():
                self.mid.weight[0] *= 1000.0
                self.mid.bias[0] = 500.0
                self.head.weight[:, 0] /= 1000.0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = torch.relu(self.mid(torch.relu(self.body(x))))
            return self.head(f)

    path = tmp_path / "outlier.onnx"
    export_onnx(Outlier().eval(), torch.rand(1, 1, 32, 32), path)
    feeds = _feeds(data.speckle(24, size=32, seed=5))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    refs = [session.run(None, f)[0] for f in feeds[16:]]

    def score(outs: list[np.ndarray]) -> float:
        # capped: on some CPUs OpenVINO's float output equals onnxruntime's exactly (inf dB)
        psnr = data.mean_psnr_db(refs, outs, data_range=float(np.ptp(np.concatenate(refs))))
        return min(psnr, 60.0)

    plain = nncf_int8.quantize_openvino(path, tmp_path / "plain.xml", feeds[:16], feeds[16:], score)
    assert plain.metric_fp32 is not None and plain.metric_int8 is not None
    max_drop = plain.metric_fp32 - 25.0  # int8 output within 25 dB PSNR of the float one
    assert plain.metric_int8 < 20.0  # all-int8 misses it by far
    made = nncf_int8.quantize_openvino(
        path, tmp_path / "kept.xml", feeds[:16], feeds[16:], score, max_drop=max_drop
    )
    assert len(made.float_for_accuracy) == 1 and "head" in made.float_for_accuracy[0]
    assert not made.accuracy_control and made.metric_int8 is not None
    assert made.metric_fp32 - made.metric_int8 <= max_drop
    assert made.to_dict()["layers_kept_float_for_accuracy"] == made.float_for_accuracy
    assert nncf_int8.quantized_ops(made.model) > 0


def test_an_infinite_float_score_with_max_drop_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from sonoedge.errors import ConfigError
    from sonoedge.quantization import nncf_int8

    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    export_onnx(torch.nn.Conv2d(1, 1, 3, padding=1), torch.rand(1, 1, 16, 16), path)
    feeds = _feeds(data.speckle(4, size=16, seed=1))
    with pytest.raises(ConfigError, match="scores inf"):
        nncf_int8.quantize_openvino(
            path, tmp_path / "m.xml", feeds, feeds, lambda outs: float("inf"), max_drop=1.0
        )


def test_openvino_latency_feeds_multichannel_inputs_channels_last(tmp_path: Path) -> None:
    """SONIC-shaped input (32 channels) measured as the runtime feeds it: NHWC memory into a
    compilation that takes NHWC; a wrong layout or name would raise."""
    pytest.importorskip("openvino")
    from sonoedge.quantization.measure import openvino_latency

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(32, 8, 3, padding=1), torch.nn.ReLU())
    path = tmp_path / "m.onnx"
    export_onnx(net, torch.rand(1, 32, 16, 16), path)
    feeds = {"input": np.random.default_rng(0).random((1, 32, 16, 16), dtype=np.float32)}
    for channels_last in (False, True):
        stats = openvino_latency(path, feeds, warmup=1, repeats=3, channels_last=channels_last)
        assert 0 < stats["median_ms"] <= stats["p99_ms"]
