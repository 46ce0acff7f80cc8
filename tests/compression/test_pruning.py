"""Channel pruning keeps the graph valid (skip + transposed conv), rounds to 8, ranks channels by
L2 or Taylor importance, and KD (on whole samples or crops) helps."""

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


def _dead_channel_net() -> torch.nn.Sequential:
    """Conv(1→16) + ReLU + Conv(16→1) whose first 8 hidden channels never fire (bias −100)
    although their weights are the largest."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 1, 3, padding=1)
    )
    with torch.no_grad():
        net[0].weight[:8] *= 10.0
        net[0].bias[:8] = -100.0
    return net.eval()


def test_taylor_importance_removes_channels_that_never_fire_and_l2_does_not() -> None:
    x = [
        np.random.default_rng(i).uniform(0, 1, (1, 1, 16, 16)).astype(np.float32) for i in range(8)
    ]
    dense = _dead_channel_net()
    y = [dense(torch.from_numpy(a)).detach().numpy() + 0.1 for a in x]
    batch = torch.from_numpy(np.concatenate(x))

    def gap(net: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(torch.mean((net(batch) - dense(batch)) ** 2))

    by_l2, by_taylor = _dead_channel_net(), _dead_channel_net()
    pruning.prune_channels(by_l2, batch[:1], 0.5, importance="l2")
    pruning.prune_channels(by_taylor, batch[:1], 0.5, importance="taylor", samples=(x, y))
    assert pruning.channel_counts(by_taylor) == [8, 1]
    assert gap(by_taylor) < 1e-10 < gap(by_l2)  # only dead channels went: the same function
    assert all(p.grad is None for p in by_taylor.parameters())


def test_taylor_importance_without_targets_is_a_config_error(tiny_unet: torch.nn.Module) -> None:
    from sonoedge.errors import ConfigError

    with pytest.raises(ConfigError, match="targets"):
        pruning.prune_channels(tiny_unet, torch.rand(1, 1, 16, 16), 0.5, importance="taylor")
    with pytest.raises(ConfigError, match="importance"):
        pruning.prune_channels(tiny_unet, torch.rand(1, 1, 16, 16), 0.5, importance="l1")  # type: ignore[arg-type]


def test_distillation_on_crops_uses_windows_of_the_frames(tiny_unet: torch.nn.Module) -> None:
    from sonoedge.errors import ConfigError

    ds = data.speckle(8, size=32, seed=2)
    teacher = copy.deepcopy(tiny_unet)
    seen: list[tuple[int, ...]] = []
    hook = tiny_unet.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape)))
    losses = distill(tiny_unet, teacher, ds.inputs, ds.targets, steps=5, seed=0, crop=16)
    hook.remove()
    assert len(losses) == 5 and set(seen) == {(8, 1, 16, 16)}
    with pytest.raises(ConfigError, match="crop"):
        distill(tiny_unet, teacher, ds.inputs, ds.targets, steps=1, crop=48)
