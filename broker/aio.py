"""The web service's broker connection (aio-pika).

The connection is opened in the background and kept open by aio-pika's robust
connection, so the web service starts, and answers /healthz truthfully, while the
broker is still down or restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractRobustConnection

log = logging.getLogger(__name__)


class AsyncBroker:
    def __init__(self, url: str, retry_seconds: float = 2.0):
        self.url = url
        self.retry_seconds = retry_seconds
        self.connection: AbstractRobustConnection | None = None
        self._task: asyncio.Task | None = None

    @property
    def in_process(self) -> bool:
        return self.url.startswith("memory://")

    @property
    def connected(self) -> bool:
        if self.in_process:
            return True
        return self.connection is not None and not self.connection.is_closed

    def start(self) -> None:
        if not self.in_process and self._task is None:
            self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        while self.connection is None:
            try:
                self.connection = await aio_pika.connect_robust(self.url, timeout=10)
                log.info("connected to the broker")
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                log.warning("broker not reachable (%s); retrying", exc)
                await asyncio.sleep(self.retry_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            await self.connection.close()
