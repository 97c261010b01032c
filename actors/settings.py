"""The part of the service config that actors obey (`training` in schemas/config.py): which
modules a run may import code from, and where trainers write metric files.

What starts actors or loads policies sets it once per process (the actor runner, `runt
up`, `runt web`, `runt export`); until then the defaults apply. `allowing(prefixes)` sets
the allow-list for one context only (POST /train/ checks a run against its own app's
config without touching the process's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from schemas.config import TrainingConfig

_training = TrainingConfig()
_allowed: ContextVar[tuple[str, ...] | None] = ContextVar("runt_allowed_modules", default=None)


def configure(training: TrainingConfig) -> None:
    global _training
    _training = training


def allowed_modules() -> tuple[str, ...]:
    override = _allowed.get()
    return _training.allowed_modules if override is None else override


def metrics_dir() -> Path:
    return Path(_training.metrics_dir).expanduser()


@contextmanager
def allowing(prefixes: Sequence[str] | None) -> Iterator[None]:
    """Within the block (this thread or task only), `prefixes` is the allow-list;
    None keeps the process's."""
    token = _allowed.set(None if prefixes is None else tuple(prefixes))
    try:
        yield
    finally:
        _allowed.reset(token)


def module_allowed(module: str, prefixes: Sequence[str] | None = None) -> bool:
    """Whether `module` is one of the prefixes or inside one (`a.b` allows `a.b.c`,
    not `a.bc`)."""
    prefixes = allowed_modules() if prefixes is None else prefixes
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)
