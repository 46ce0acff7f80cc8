"""Structured channel pruning with Torch-Pruning (dependency graph: skip connections, concats and
transposed convolutions are pruned consistently; channel counts rounded to multiples of 8)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PRUNABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The last prunable layer that runs in ``forward`` (its output channels are the model's
    outputs; training-only heads that never run are not it)."""
    ran: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: ran.append(mod))
        for m in model.modules()
        if isinstance(m, PRUNABLE)
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return ran[-1:]


def prune_channels(
    model: nn.Module,
    example: torch.Tensor,
    ratio: float,
    round_to: int = 8,
    ignored: Sequence[nn.Module] | None = None,
) -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable layer (L2-magnitude importance per
    dependency group), in place. ``ignored`` defaults to the output layer."""
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        from sonoedge.errors import ConfigError

        raise ConfigError(f"prune ratio {ratio} is invalid: expected 0 <= ratio < 1")
    if ratio == 0:
        return model
    model.eval()
    for module in model.modules():  # in-place activations hide layers from the autograd trace
        if getattr(module, "inplace", False):
            module.inplace = False  # type: ignore[assignment]
    before = channel_counts(model)
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        round_to=round_to,
        ignored_layers=list(output_layers(model, example) if ignored is None else ignored),
    )
    pruner.step()
    if channel_counts(model) == before:
        from sonoedge.errors import ConfigError

        raise ConfigError(
            f"pruning {ratio:.0%} of the channels removed none (channels {before}): every layer "
            f"is already at or under {round_to} channels, or Torch-Pruning could not trace it",
            hint=f"use a smaller round_to than {round_to} (compress --round-to 4), a larger "
            "ratio, or a network whose layers have more channels",
        )
    return model


def count(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Parameters and multiply-accumulates for one ``example`` input."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return {"params": int(params), "macs": int(macs)}


def channel_counts(model: nn.Module) -> list[int]:
    return [
        m.out_channels for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
