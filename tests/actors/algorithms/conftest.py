"""Fixtures of the algorithms' tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _optimizer_imports() -> None:
    """A process's first torch optimiser imports torch._dynamo, which takes a while: pay
    that once here rather than inside whichever (timed) test happens to run first."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
