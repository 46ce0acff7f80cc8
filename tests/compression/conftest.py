"""Fixtures for the compression tests."""

from __future__ import annotations

import pytest
import torch
from tiny_student import TinyUNet


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Small models on a shared 2-core machine: one thread is faster and deterministic."""
    torch.set_num_threads(1)


@pytest.fixture
def tiny_unet() -> TinyUNet:
    torch.manual_seed(0)
    return TinyUNet().eval()
