"""Channel pruning keeps the graph valid (skip + transposed conv), rounds to 8, and KD helps."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("torch_pruning")

from sonoedge.quantization import data, pruning
from sonoedge.quantization.distill import distill


def test_half_pruning_rounds_to_8_and_keeps_the_output(tiny_unet: torch.nn.Module) -> None:
    x = torch.rand(1, 1, 32, 32)
    before = pruning.count(tiny_unet, x)
    pruning.prune_channels(tiny_unet, x, 0.5)
    after = pruning.count(tiny_unet, x)
    channels = pruning.channel_counts(tiny_unet)
    assert all(c % 8 == 0 for c in channels[:-1]) and channels[-1] == 1
    assert channels[:-1] == [8, 16, 16, 8, 8]
    assert after["macs"] < 0.35 * before["macs"] and after["params"] < 0.35 * before["params"]
    assert tiny_unet(torch.rand(2, 1, 24, 40)).shape == (2, 1, 24, 40)


def test_distillation_moves_the_pruned_net_towards_the_teacher(
    tiny_unet: torch.nn.Module,
) -> None:
    ds = data.speckle(24, size=32, seed=1)
    teacher = copy.deepcopy(tiny_unet)
    pruning.prune_channels(tiny_unet, torch.from_numpy(ds.inputs[0]), 0.5)
    x = torch.from_numpy(np.concatenate(ds.inputs))

    def gap() -> float:
        with torch.no_grad():
            return float(torch.mean((tiny_unet(x) - teacher(x)) ** 2))

    start = gap()
    losses = distill(tiny_unet, teacher, ds.inputs, None, steps=40, seed=0)
    assert len(losses) == 40 and gap() < start


def test_bad_ratio_is_a_config_error(tiny_unet: torch.nn.Module) -> None:
    from sonoedge.errors import ConfigError

    with pytest.raises(ConfigError, match="ratio"):
        pruning.prune_channels(tiny_unet, torch.rand(1, 1, 8, 8), 1.0)


def test_in_place_activations_do_not_hide_layers(tiny_unet: torch.nn.Module) -> None:
    for m in tiny_unet.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = True
    pruning.prune_channels(tiny_unet, torch.rand(1, 1, 32, 32), 0.5)
    assert pruning.channel_counts(tiny_unet)[:-1] == [8, 16, 16, 8, 8]


def test_the_enhancement_student_prunes_through_its_skips() -> None:
    from sonoedge.models.enhance import EnhanceArch, EnhanceDeploy, build

    net = EnhanceDeploy(build(EnhanceArch(kind="student", width=16, depth=2))).eval()
    x = torch.rand(1, 1, 32, 32)
    pruning.prune_channels(net, x, 0.5)
    channels = pruning.channel_counts(net)
    assert max(channels) == 32 and channels[0] == 8 and channels[-1] == 1
    assert net(torch.rand(1, 1, 48, 64)).shape == (1, 1, 48, 64)


def test_pruning_that_removes_nothing_is_an_error() -> None:
    from sonoedge.errors import ConfigError

    narrow = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
    )
    with pytest.raises(ConfigError, match="removed none"):
        pruning.prune_channels(narrow, torch.rand(1, 1, 16, 16), 0.5)
