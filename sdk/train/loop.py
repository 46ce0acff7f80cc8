"""The generic training loop: seeded, resumable from checkpoints, with a progress bar.

A phase trains some modules with Adam under a cosine schedule for ``steps`` steps. Each step draws
its batch from ``numpy.random.default_rng([seed, phase, step])``, so a run resumed from a
checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonoedge.errors import ConfigError

LossFn = Callable[[np.random.Generator], tuple[torch.Tensor, dict[str, float]]]


class StopTraining(Exception):
    """Raised after ``stop_after`` steps (to test resuming); the checkpoint is on disk."""


def lr_at(step: int, steps: int, lr: float, warmup: int = 20) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, steps))))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=False))
    except Exception as err:  # torch raises many types for corrupt files
        raise ConfigError(f"checkpoint {path} is unreadable: {err}") from None


def run_phase(
    name: str,
    modules: dict[str, nn.Module],
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float,
    seed: int,
    checkpoint: Path,
    checkpoint_every: int,
    progress: Any | None = None,
    stop_after: int | None = None,
    meta: dict[str, Any] | None = None,
    ema_decay: float = 0.0,
) -> list[dict[str, float]]:
    """Train ``modules`` for ``steps`` steps, resuming from ``checkpoint`` when it exists.

    Returns the per-step loss history. ``stop_after`` (global step count) raises
    :class:`StopTraining` after saving, to simulate an interruption. ``ema_decay`` > 0 keeps an
    exponential moving average of the weights (decay ``min(ema_decay, (1 + step) / (10 + step))``)
    and leaves the modules holding it at the end.
    """
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    start, history = 0, []
    ema: dict[str, dict[str, torch.Tensor]] = {}
    if ema_decay > 0:
        ema = {k: _float_state(m) for k, m in modules.items()}
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if state.get("phase") != name or set(state.get("models", {})) != set(modules):
            raise ConfigError(f"checkpoint {checkpoint} is not a {name!r} checkpoint")
        for key, module in modules.items():
            module.load_state_dict(state["models"][key])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["history"])
        if ema_decay > 0:
            if "ema" not in state:
                raise ConfigError(f"checkpoint {checkpoint} has no weight average (ema_decay)")
            ema = state["ema"]
    phase_id = zlib.crc32(name.encode())
    task = None
    if progress is not None:
        task = progress.add_task(f"{name}", total=steps, completed=start)
    for m in modules.values():
        m.train()

    def save(step: int) -> None:
        save_checkpoint(
            checkpoint,
            {
                "phase": name,
                "step": step,
                "models": {k: m.state_dict() for k, m in modules.items()},
                "optimizer": opt.state_dict(),
                "history": history,
                "meta": meta or {},
                **({"ema": ema} if ema else {}),
            },
        )

    for step in range(start, steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        rng = np.random.default_rng([seed, phase_id, step])
        loss, parts = loss_fn(rng)
        if not torch.isfinite(loss):
            raise ConfigError(
                f"{name}: loss became {float(loss.item())} at step {step}; lower the lr"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema:
            _update_average(ema, modules, min(ema_decay, (1 + step) / (10 + step)))
        history.append({"step": step, "loss": float(loss.item()), **parts})
        done = step + 1
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"{name} loss {float(loss.item()):.4f}")
        if done % checkpoint_every == 0 or done == steps:
            save(done)
        if stop_after is not None and done >= stop_after and done < steps:
            save(done)
            raise StopTraining(f"stopped after step {done} of {name}")
    for key, m in modules.items():
        if ema:
            m.load_state_dict(ema[key])
        m.eval()
    return history


def _float_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def _update_average(
    ema: dict[str, dict[str, torch.Tensor]], modules: dict[str, nn.Module], decay: float
) -> None:
    """``ema ← decay · ema + (1 − decay) · weights`` for float tensors; others (and frozen
    parameters, kept bit for bit) are copied."""
    for key, m in modules.items():
        frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
        for name, value in m.state_dict().items():
            avg = ema[key][name]
            if avg.is_floating_point() and name not in frozen:
                avg.mul_(decay).add_(value, alpha=1.0 - decay)
            else:
                avg.copy_(value)


def make_progress(enabled: bool = True) -> Any:
    """A rich progress bar (on stderr), or ``None`` when disabled."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
