"""The training loop's weight average (``ema_decay``): what it holds and that resuming keeps it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.train.loop import StopTraining, run_phase


def _fit(
    tmp: Path, decay: float, stop_after: int | None = None
) -> tuple[nn.Linear, list[torch.Tensor]]:
    """40 steps of a linear fit; returns the net and its weights after each step."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])

    seen: list[torch.Tensor] = []

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        seen.append(net.weight.detach().clone())  # the weights after the previous step
        idx = torch.from_numpy(rng.integers(64, size=8))
        return ((net(x[idx]) - y[idx]) ** 2).mean(), {}

    run_phase(
        "fit",
        {"net": net},
        loss_fn,
        steps=40,
        lr=0.05,
        seed=1,
        checkpoint=tmp / "fit.ckpt",
        checkpoint_every=10,
        stop_after=stop_after,
        ema_decay=decay,
    )
    return net, seen[1:]


def test_the_modules_end_with_the_average_of_the_weights_along_the_run(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    raw, steps = _fit(tmp_path / "a", 0.0)
    (tmp_path / "b").mkdir()
    avg, _ = _fit(tmp_path / "b", 0.9)
    weights = [*steps, raw.weight.detach()]  # after steps 0 .. 39 (averaging never steers)
    torch.manual_seed(0)
    expected = torch.nn.Linear(3, 1).weight.detach().clone()  # the initial weights
    for step, w in enumerate(weights):
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * w
    torch.testing.assert_close(avg.weight.detach(), expected)
    assert not torch.allclose(raw.weight, avg.weight)
    state = torch.load(tmp_path / "b" / "fit.ckpt", weights_only=False)
    assert torch.allclose(state["ema"]["net"]["weight"], avg.weight)
    assert "ema" not in torch.load(tmp_path / "a" / "fit.ckpt", weights_only=False)


def test_resumed_run_ends_with_the_same_average(tmp_path: Path) -> None:
    (tmp_path / "once").mkdir()
    (tmp_path / "twice").mkdir()
    once, _ = _fit(tmp_path / "once", 0.9)
    with pytest.raises(StopTraining):
        _fit(tmp_path / "twice", 0.9, stop_after=20)
    twice, _ = _fit(tmp_path / "twice", 0.9)
    torch.testing.assert_close(once.weight, twice.weight)
    torch.testing.assert_close(once.bias, twice.bias)


def test_checkpoint_without_average_is_refused_when_one_is_asked_for(tmp_path: Path) -> None:
    with pytest.raises(StopTraining):
        _fit(tmp_path, 0.0, stop_after=20)
    with pytest.raises(ConfigError, match="weight average"):
        _fit(tmp_path, 0.9)
