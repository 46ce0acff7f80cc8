"""Knowledge-distillation fine-tuning: the pruned student learns the unpruned network's outputs
(and, where the data has them, the targets)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

KdLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(student_output, teacher_output)``."""


def localizer_kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KD loss for ULM localiser maps (probability, dz, dx): binary cross-entropy of the
    probability against the teacher's, plus the L1 offset error weighted by the teacher's
    probability (offsets away from bubbles mean nothing; plain MSE over all three channels spends
    the pruned network on them, and it loses bubbles)."""
    p = student[:, :1].clamp(1e-4, 1 - 1e-4)
    q = teacher[:, :1]
    bce = nn.functional.binary_cross_entropy(p, q, reduction="sum") / q.sum().clamp(min=1.0)
    l1 = (q * (student[:, 1:] - teacher[:, 1:]).abs()).sum() / q.sum().clamp(min=1.0)
    return bce + l1


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
    kd_loss: KdLoss | None = None,
) -> list[float]:
    """Adam on ``kd_weight * kd_loss(student, teacher) + (1 - kd_weight) * MSE(student, target)``
    (KD only without targets; ``kd_loss`` default MSE). Returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.concatenate(list(inputs)))
    y_all = None if targets is None else torch.from_numpy(np.concatenate(list(targets)))
    teacher.eval()
    student.train()
    optim = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch, len(x_all)),), generator=gen)
        x = x_all[idx]
        with torch.no_grad():
            soft = teacher(x)
        out = student(x)
        loss = nn.functional.mse_loss(out, soft) if kd_loss is None else kd_loss(out, soft)
        if y_all is not None:
            loss = kd_weight * loss + (1 - kd_weight) * nn.functional.mse_loss(out, y_all[idx])
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses
