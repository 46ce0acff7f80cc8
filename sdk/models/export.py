"""ONNX export of students (opset >= 17), checked against the PyTorch outputs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from sonoedge.errors import ConfigError
from sonoedge.models.sonic import SonicDeploy, SonicNet

OPSET = 17
PARITY_ATOL = 1e-4


Feeds = dict[str, npt.NDArray[np.float32]]


def provenance(command: str, cfg: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What a model card records about how its weights were made: command, commit, UTC date,
    seed, data spec and the full config."""
    import datetime as dt

    from sonoedge.bench.results import git_commit

    return {
        "command": command,
        "commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg["seed"],
        "data_spec": spec,
        "config": cfg,
    }


IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


def export_checked(
    module: torch.nn.Module,
    path: Path,
    example: Feeds,
    checks: list[Feeds],
    output_name: str,
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """Export ``module`` (inputs named as ``example``'s keys, one output ``output_name``) with
    ``dynamic_axes``, then run onnxruntime and PyTorch on ``example`` and every feed of
    ``checks`` (other sizes). Returns the largest absolute difference; raises
    :class:`ConfigError` above ``atol``."""
    import onnxruntime as ort

    if opset < 17:
        raise ConfigError(f"opset={opset} is invalid: expected >= 17")
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(v) for v in example.values()),
            str(path),
            opset_version=opset,
            input_names=list(example),
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for feeds in [example, *checks]:
            ref = module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
            (got,) = session.run(None, feeds)
            worst = max(worst, float(np.max(np.abs(np.asarray(got) - ref))))
    if worst > atol:
        raise ConfigError(f"ONNX export of {path} differs from PyTorch by {worst:.2e} > {atol:g}")
    return worst


def export_image_net(
    deploy: torch.nn.Module,
    path: Path,
    names: tuple[str, str],
    example: npt.NDArray[np.float32],
    other: npt.NDArray[np.float32],
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """:func:`export_checked` for a one-input, one-output network on ``(B, C, H, W)`` images
    (dynamic batch and size), checked on ``example`` and on ``other`` of another size."""
    inp, out = names
    axes = {inp: IMAGE_AXES, out: IMAGE_AXES}
    return export_checked(deploy, path, {inp: example}, [{inp: other}], out, axes, opset, atol)


def export_onnx(
    net: SonicNet,
    path: Path,
    sample: npt.NDArray[np.float32] | None = None,
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """Export a SONIC ``net`` (deploy graph: input ``iq`` → output ``blood_power``, dynamic batch
    and size) and check onnxruntime against PyTorch on ``sample`` and a random input of another
    size. Returns the largest absolute difference; raises :class:`ConfigError` above ``atol``."""
    c = 2 * net.arch.n_frames
    x = np.zeros((1, c, 32, 32), np.float32) if sample is None else sample
    other = np.random.default_rng(0).standard_normal((2, c, 48, 40)).astype(np.float32)
    names = ("iq", "blood_power")
    return export_image_net(SonicDeploy(net), path, names, x, other, opset, atol)
