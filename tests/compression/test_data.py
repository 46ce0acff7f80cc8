"""Compression data sets and output-layer detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.quantization import data, pruning


def test_speckle_is_deterministic_and_in_range() -> None:
    a, b = data.speckle(3, size=32, seed=5), data.speckle(3, size=32, seed=5)
    assert a.targets is not None and b.targets is not None
    np.testing.assert_array_equal(a.inputs[2], b.inputs[2])
    assert a.inputs[0].shape == (1, 1, 32, 32) and 0 <= a.inputs[0].min() <= a.inputs[0].max() <= 1
    assert data.mean_psnr_db(a.targets, a.inputs) < 30  # speckle is a real degradation


def test_degraded_patches_are_blurred_noisy_versions_of_their_targets() -> None:
    a, b = data.load("degraded", 4, size=32, seed=1), data.degraded(4, size=32, seed=1)
    assert a.targets is not None and b.targets is not None
    np.testing.assert_array_equal(a.inputs[3], b.inputs[3])
    assert a.inputs[0].shape == a.targets[0].shape == (1, 1, 32, 32)
    assert all(0 <= x.min() <= x.max() <= 1 for x in a.inputs)
    assert data.mean_psnr_db(a.targets, a.inputs) < 35  # a real degradation, not a copy
    assert not np.array_equal(a.inputs[0], data.degraded(4, size=32, seed=2).inputs[0])


def test_sonic_inputs_match_the_student(tmp_path: Path) -> None:
    ds = data.load("sonic:4", 2, size=32)
    assert ds.inputs[0].shape == (1, 8, 32, 32) and ds.targets is not None
    assert ds.targets[0].shape == (1, 1, 32, 32) and 0 <= ds.targets[0].min() <= 1
    np.savez(tmp_path / "d.npz", inputs=np.concatenate(ds.inputs))
    assert data.load(str(tmp_path / "d.npz"), 0).targets is None
    with pytest.raises(ConfigError, match="unknown"):
        data.load("mnist", 2)


def test_output_layer_is_the_last_that_runs() -> None:
    class WithTrainingHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(1, 16, 3, padding=1)
            self.head = nn.Conv2d(16, 1, 1)
            self.aux_head = nn.Conv2d(16, 1, 1)  # training only: never runs in forward

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.body(x)))

    net = WithTrainingHead()
    assert pruning.output_layers(net, torch.zeros(1, 1, 8, 8)) == [net.head]
