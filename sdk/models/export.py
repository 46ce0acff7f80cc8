"""ONNX export of students (opset >= 17), checked against the PyTorch outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from sonoedge.errors import ConfigError
from sonoedge.models.sonic import SonicDeploy, SonicNet

OPSET = 17
PARITY_ATOL = 1e-4


def export_onnx(
    net: SonicNet,
    path: Path,
    sample: npt.NDArray[np.float32] | None = None,
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """Export ``net`` (deploy graph: input ``iq`` → output ``blood_power``, dynamic batch and
    size) and check onnxruntime against PyTorch on ``sample`` and a random input of another size.
    Returns the largest absolute difference; raises :class:`ConfigError` above ``atol``."""
    import onnxruntime as ort

    if opset < 17:
        raise ConfigError(f"opset={opset} is invalid: expected >= 17")
    deploy = SonicDeploy(net).eval()
    c = 2 * net.arch.n_frames
    x = torch.zeros(1, c, 32, 32) if sample is None else torch.from_numpy(sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            deploy,
            (x,),
            str(path),
            opset_version=opset,
            input_names=["iq"],
            output_names=["blood_power"],
            dynamic_axes={"iq": axes, "blood_power": axes},
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    checks = [x.numpy(), rng.standard_normal((2, c, 48, 40)).astype(np.float32)]
    worst = 0.0
    with torch.no_grad():
        for inp in checks:
            ref = deploy(torch.from_numpy(inp)).numpy()
            (got,) = session.run(None, {"iq": inp})
            worst = max(worst, float(np.max(np.abs(np.asarray(got) - ref))))
    if worst > atol:
        raise ConfigError(f"ONNX export of {path} differs from PyTorch by {worst:.2e} > {atol:g}")
    return worst
