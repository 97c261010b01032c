"""Shutting the web service down ends its background tasks even when a cancellation is
lost on the way (broker/tasks.py `cancel_and_wait`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker.tasks import cancel_and_wait

pytestmark = pytest.mark.timeout(20)


async def swallows_one_cancel(queue: asyncio.Queue) -> None:
    """What a publisher loop does when Python 3.11's asyncio.wait_for loses a cancel: the
    CancelledError never arrives, and the loop goes back to waiting on its queue."""
    while True:
        try:
            await queue.get()
        except asyncio.CancelledError:
            queue.put_nowait("the cancel was swallowed once")
            break
    while True:
        await queue.get()


async def test_a_task_that_lost_its_cancellation_still_ends():
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(swallows_one_cancel(queue))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), timeout=5)
    assert task.cancelled()


async def test_an_error_a_task_ended_with_is_logged_not_raised(caplog):
    async def fails() -> None:
        raise RuntimeError("broken consumer")

    async def waits() -> None:
        await asyncio.Event().wait()

    failed = asyncio.create_task(fails(), name="consumer")
    waiting = asyncio.create_task(waits())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="broker.aio"):
        await cancel_and_wait([failed, waiting])
    assert waiting.cancelled()
    assert "consumer ended with RuntimeError('broken consumer')" in caplog.text
