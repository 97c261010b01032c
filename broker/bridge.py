"""The event loop's side of the in-process broker: `AsyncBridge`, through which the web
service (broker/aio.py's `AsyncBroker` for memory://) uses broker/memory.py's transport."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from broker.abc import Delivery, Outcome
from broker.memory import STORE, wake
from broker.sync import Bus
from broker.tasks import cancel_and_wait
from broker.topology import ExchangeSpec, QueueSpec, Topology

log = logging.getLogger(__name__)


class AsyncBridge:
    """The web service's way into this broker (broker/aio.py's AsyncBroker for memory://).

    A thread owns a sync Bus on this transport. kombu's channels are not thread-safe, so
    every kombu call (declare, publish, ack) runs on that thread: the event loop hands it
    commands through a queue, and results and deliveries go back to the loop with
    call_soon_threadsafe. Handlers run on the loop, one task per delivery.
    """

    connected = True  # an in-process broker is always there

    def __init__(self, url: str, topology: Topology):

        self._bus = Bus(url, topology, name="web")
        self._commands: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()  # handlers running on the loop

    def start(self) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="runt-broker", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """The bridge thread: run commands and deliver, then sleep until something changes."""
        self._bus.connect()
        while not self._stopping.is_set():
            seen, busy = STORE.version, 0
            try:
                while not self._commands.empty():
                    self._commands.get_nowait()()
                    busy += 1
                busy += self._bus.poll(0)
            except Exception:  # keep serving: awaiting callers would otherwise hang
                log.exception("in-process broker bridge")
            if not busy:
                STORE.wait(seen, 1.0)
        self._bus.close()

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the bridge thread and return its result (or raise its error)."""
        loop, future = self._loop, self._loop.create_future()

        def command() -> None:
            try:
                result = fn()
            except Exception as exc:
                loop.call_soon_threadsafe(_resolve, future, None, exc)
            else:
                loop.call_soon_threadsafe(_resolve, future, result, None)

        self._commands.put(command)
        wake()
        return await future

    async def declare(self, spec: QueueSpec, timeout: float) -> None:
        await self._call(functools.partial(self._bus.declare, spec))

    async def depth(self, spec: QueueSpec, timeout: float) -> int:
        return STORE.size(spec.name)

    async def publish(
        self, exchange: ExchangeSpec, routing_key: str, body: bytes, *, timeout: float, **props
    ) -> None:
        await self._call(functools.partial(self._bus.publish, exchange, routing_key, body, **props))

    async def consume(
        self, spec: QueueSpec, prefetch: int, on_delivery: Callable, timeout: float
    ) -> None:
        loop = self._loop

        def hand_over(delivery: Delivery) -> None:  # on the bridge thread, inside poll()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(self._spawn, on_delivery, delivery)

        consume = functools.partial(
            self._bus.consume, spec, hand_over, prefetch=prefetch, manual=True
        )
        await self._call(consume)

    async def settle(self, items: list[tuple[Delivery, Outcome]]) -> None:
        def settle_all() -> None:
            for delivery, outcome in items:
                self._bus.settle(delivery, outcome)

        await self._call(settle_all)

    def _spawn(self, on_delivery: Callable, delivery: Delivery) -> None:
        """Handle a delivery in a task of its own, as aio-pika does."""
        task = asyncio.ensure_future(on_delivery(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:

        await cancel_and_wait(self._tasks)  # a handler's lost cancel must not hang it
        if self._thread is not None:
            self._stopping.set()
            wake()
            await asyncio.to_thread(self._thread.join, 10)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled while the bridge thread worked
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
