"""The space-to-depth enhancement student option: shapes, padding, export, warm start, pruning,
int8 and backwards compatibility of cards written before the option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sonoedge.errors import ConfigError
from sonoedge.models.enhance import EnhanceArch, EnhanceDeploy, build, macs_per_pixel
from sonoedge.train import enhance

S2D = EnhanceArch("student", 16, 2, full_depth=2, context=True, space_to_depth=True)


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32)


def _randomised(arch: EnhanceArch) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build(arch)
    for m in net.modules():  # the context branch starts at zero: give it a function
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.1)
    return net.eval()


def test_no_convolution_runs_at_full_resolution_and_sizes_pad_to_eight() -> None:
    net = _randomised(S2D)
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: sizes.append(o.shape[-1]))
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        out = net(torch.rand(2, 1, 32, 48))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 1, 32, 48) and max(sizes) == 24
    assert S2D.size_multiple == 8 and S2D.receptive_field == 2 * (
        EnhanceArch("student", 16, 2, full_depth=2).receptive_field
    )
    y = enhance.predict(net, _img(45, 37))  # reflect-padded to 48 x 40, cropped back
    assert y.shape == (45, 37) and y.min() >= 0 and y.max() <= 1
    assert macs_per_pixel(net) < macs_per_pixel(build(EnhanceArch("teacher", 24, 2, 8, 6))) / 8
    with pytest.raises(ConfigError, match="width >= 16"):
        EnhanceArch("student", 8, 2, space_to_depth=True)
    with pytest.raises(ConfigError, match="space_to_depth"):
        EnhanceArch("teacher", 16, 1, 4, 4, space_to_depth=True)


def test_cards_round_trip_and_old_cards_load_as_before() -> None:
    assert EnhanceArch.from_dict(S2D.to_dict()) == S2D
    old = {k: v for k, v in S2D.to_dict().items() if k != "space_to_depth"}
    assert EnhanceArch.from_dict(old) == EnhanceArch("student", 16, 2, full_depth=2, context=True)
    shipped = Path(__file__).parents[2] / "sdk" / "zoo" / "enhance-student.json"
    arch = EnhanceArch.from_dict(json.loads(shipped.read_text(encoding="utf-8"))["architecture"])
    assert arch.kind == "student"
    build(arch).load_state_dict(build(arch).state_dict())


def test_export_warm_start_and_identity_deepening(tmp_path: Path) -> None:
    net = _randomised(S2D)
    assert enhance.export_onnx(net, tmp_path / "s.onnx", sample=_img(40, 48)[None, None]) < 1e-4
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node}
    # PixelUnshuffle exports as Reshape/Transpose, PixelShuffle as DepthToSpace: plain ops
    plain = {"Add", "Clip", "Constant", "Conv", "ConvTranspose", "ReduceMean", "Relu"}
    assert "DepthToSpace" in ops and ops <= plain | {"DepthToSpace", "Reshape", "Transpose",
                                                     "Squeeze", "Unsqueeze"}  # fmt: skip
    enhance.save_weights(tmp_path / "s.pt", net, {})
    deeper = build(EnhanceArch("student", 16, 3, full_depth=3, context=True, space_to_depth=True))
    enhance.warm_start(deeper, tmp_path / "s.pt")
    x = torch.rand(1, 1, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(deeper.eval()(x), net(x), rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="space_to_depth"):
        enhance.warm_start(build(EnhanceArch("student", 16, 2, 8, 8, 2, True)), tmp_path / "s.pt")


def test_prunes_to_multiples_of_eight_and_quantizes_for_openvino(tmp_path: Path) -> None:
    from sonoedge.quantization import nncf_int8, pruning
    from sonoedge.quantization.export import export_onnx

    net = EnhanceDeploy(_randomised(S2D)).eval()
    x = torch.rand(1, 1, 32, 32)
    pruning.prune_channels(net, x, 0.5)
    channels = pruning.channel_counts(net)
    assert channels[0] == 8 and channels[-1] == 4 and all(c % 4 == 0 for c in channels)
    assert net(torch.rand(1, 1, 48, 64)).shape == (1, 1, 48, 64)
    export_onnx(net, x, tmp_path / "p.onnx")
    calib = [{"input": np.random.default_rng(i).uniform(0, 1, (1, 1, 32, 32)).astype(np.float32)}
             for i in range(2)]  # fmt: skip
    ir = nncf_int8.quantize_openvino(tmp_path / "p.onnx", tmp_path / "p-int8.xml", calib).model
    assert nncf_int8.quantized_ops(ir) > 0
