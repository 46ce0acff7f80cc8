"""Knowledge-distillation fine-tuning: the pruned student learns the unpruned network's outputs
(and, where the data has them, the targets)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn


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
) -> list[float]:
    """Adam on ``kd_weight * MSE(student, teacher) + (1 - kd_weight) * MSE(student, target)``
    (KD only without targets). Returns the loss per step."""
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
        loss = nn.functional.mse_loss(out, soft)
        if y_all is not None:
            loss = kd_weight * loss + (1 - kd_weight) * nn.functional.mse_loss(out, y_all[idx])
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses
