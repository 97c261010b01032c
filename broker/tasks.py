"""Ending asyncio tasks for sure, for the web service and the in-process bridge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel `tasks` and return once every one has ended.

    A cancellation can be lost: in Python 3.11 `asyncio.wait_for` swallows it when the
    operation it waits for completes at the same moment (a publish confirmed just as the
    service shuts down), and the task carries on, back to waiting on its queue. Awaiting
    it once would then wait forever, so tasks still running are cancelled again until
    none is left. An error a task ended with is logged, not raised: shutting down goes on.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s ended with %r", task.get_name(), task.exception())
