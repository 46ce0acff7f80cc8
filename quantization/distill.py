"""Knowledge-distillation fine-tuning: the pruned student learns the unpruned network's outputs
(and, where the data has them, the targets).

The loss is the task's: :func:`mse_loss` by default; :func:`despeckle_loss` (the MK despeckling
student's own training loss, L1 + (1 − SSIM) − PSNR/40 on the target, plus L1 to the teacher)
and :func:`localizer_loss` (ULM localiser maps) where :data:`TASK_RECIPES` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from sonoedge.errors import ConfigError

Tensor = torch.Tensor
KdLoss = Callable[[Tensor, Tensor, Tensor | None, float], Tensor]
"""``loss(student_output, teacher_output, target or None, kd_weight)``."""


def mse_loss(out: Tensor, soft: Tensor, target: Tensor | None, kd_weight: float) -> Tensor:
    """``kd_weight · MSE(out, teacher) + (1 − kd_weight) · MSE(out, target)`` (KD only without
    a target)."""
    loss = nn.functional.mse_loss(out, soft)
    if target is None:
        return loss
    return kd_weight * loss + (1 - kd_weight) * nn.functional.mse_loss(out, target)


def despeckle_loss(out: Tensor, soft: Tensor, target: Tensor | None, kd_weight: float) -> Tensor:
    """The MK despeckling student's loss (``sonoedge train despeckle``): L1 + (1 − SSIM) −
    PSNR/40 dB against the target, plus ``kd_weight`` · L1 to the teacher's output. Fine-tuned
    with MSE instead, the 50 %-pruned student lost 1.2 dB."""
    from sonoedge.train.despeckle import metric_loss

    kd = kd_weight * nn.functional.l1_loss(out, soft)
    if target is None:
        return kd
    weights = {"l1_weight": 1.0, "ssim_weight": 1.0, "psnr_weight": 1.0}
    return metric_loss(out, target, weights, True)[0] + kd


def localizer_loss(out: Tensor, soft: Tensor, target: Tensor | None, kd_weight: float) -> Tensor:
    """KD loss for ULM localiser maps (probability, dz, dx): binary cross-entropy of the
    probability against the teacher's, plus the L1 offset error weighted by the teacher's
    probability (offsets away from bubbles mean nothing; plain MSE over all three channels spends
    the pruned network on them, and it loses bubbles). KD only: the maps have no target."""
    p = out[:, :1].clamp(1e-4, 1 - 1e-4)
    q = soft[:, :1]
    bce = nn.functional.binary_cross_entropy(p, q, reduction="sum") / q.sum().clamp(min=1.0)
    l1 = (q * (out[:, 1:] - soft[:, 1:]).abs()).sum() / q.sum().clamp(min=1.0)
    return bce + l1


class Recipe(NamedTuple):
    """How a task's compressed network is fine-tuned: the loss, the Adam rate, the weight of the
    unpruned network's output in the loss (``kd_weight``) and the samples per step. The fields
    are :func:`distill`'s keyword arguments: ``distill(..., **recipe._asdict())``."""

    loss_fn: KdLoss
    lr: float
    kd_weight: float = 0.5
    batch: int = 8


DEFAULT_RECIPE = Recipe(mse_loss, 1e-3)
"""Data without a recipe of its own: MSE, half to the unpruned network, half to the targets."""

TASK_RECIPES: dict[str, Recipe] = {
    "despeckle": Recipe(despeckle_loss, 3e-3),
    "ulm": Recipe(localizer_loss, 1e-3),
    "degraded": Recipe(mse_loss, 1e-3, kd_weight=1.0, batch=16),
}
"""``compress --data`` → its fine-tuning recipe (other data: :data:`DEFAULT_RECIPE`). 3e-3 is
the despeckling student's training rate. The enhancement student (``degraded``) learns the
unpruned network's output alone, 16 windows per step. Its 50 %-pruned v10 (unpruned: 29.39 dB on
the compression benchmark's frames) after 2000 steps: 26.60 dB with half of the MSE on the NLLR
targets, 27.00 on the network alone, 27.64 with 16 windows and 27.76 with 32; 29.01 after 40000
steps of 8 windows, 28.79 after 10000 of 32 (steps count more than windows per step)."""


def distill(
    student: nn.Module,
    teacher: nn.Module,
    inputs: Sequence[npt.NDArray[np.float32]],
    targets: Sequence[npt.NDArray[np.float32]] | None = None,
    steps: int = 200,
    batch: int = 8,
    lr: float = 1e-3,
    kd_weight: float = 0.5,
    seed: int = 0,
    loss_fn: KdLoss = mse_loss,
    crop: int | None = None,
) -> list[float]:
    """Adam (cosine schedule) on ``loss_fn(student(x), teacher(x), target, kd_weight)``.
    ``crop``: each step uses one random ``crop × crop`` window of the sampled inputs (and the
    same window of their targets), so whole frames train as cheaply as patches while keeping
    the frames' own statistics. Returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.concatenate(list(inputs)))
    y_all = None if targets is None else torch.from_numpy(np.concatenate(list(targets)))
    h, w = x_all.shape[-2:]
    if crop is not None and not 0 < crop <= min(h, w):
        raise ConfigError(f"crop={crop} is invalid: expected 1..{min(h, w)} (the input size)")
    teacher.eval()
    student.train()
    optim = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch, len(x_all)),), generator=gen)
        x, y = x_all[idx], None if y_all is None else y_all[idx]
        if crop is not None:
            r, c = (int(torch.randint(0, n - crop + 1, (1,), generator=gen)) for n in (h, w))
            x = x[..., r : r + crop, c : c + crop]
            y = None if y is None else y[..., r : r + crop, c : c + crop]
        with torch.no_grad():
            soft = teacher(x)
        loss = loss_fn(student(x), soft, y, kd_weight)
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses


def task_recipe(data: str) -> Recipe:
    """The fine-tuning recipe for ``compress --data`` ``data``."""
    return TASK_RECIPES.get(data, DEFAULT_RECIPE)
