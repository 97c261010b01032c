"""A test's own broker for the broker tests (and the poison tests of tests/e2e): a fresh
topology (`t<random>` prefix), the sync and async clients made for it, and the deletion of
every queue and exchange they declared once the test is over; waiting on a condition while
a client polls; a tap on the dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

import kombu

from broker import memory
from broker.abc import Delivery
from broker.aio import AsyncBroker
from broker.sync import Bus, make_bus
from broker.topology import Topology


class Env:
    """One test's broker: a fresh topology and the clients made for it."""

    def __init__(self, url: str):
        self.url = url
        self.topology = Topology(prefix=f"t{uuid.uuid4().hex[:12]}")
        self.buses: list[Bus] = []
        self.async_buses: list[AsyncBroker] = []

    def bus(self, name: str = "actor") -> Bus:
        bus = make_bus(self.url, self.topology, name).connect()
        self.buses.append(bus)
        return bus

    def async_bus(self, **options) -> AsyncBroker:
        broker = AsyncBroker(self.url, self.topology, **options)
        self.async_buses.append(broker)
        return broker

    async def close(self) -> None:
        names = {self.topology.dead_letters().name}
        for broker in self.async_buses:
            names |= broker.declared
            await broker.close()
        for bus in self.buses:
            names |= set(bus.declared_queues)
            bus.close()
        await asyncio.to_thread(self._delete, names)

    def _delete(self, queues: set[str]) -> None:
        transport = memory.Transport if self.url.startswith("memory://") else None
        with kombu.Connection(self.url, transport=transport) as conn:
            channel = conn.channel()
            for name in queues:
                channel.queue_delete(name)
            for exchange in self.topology.exchanges:
                with contextlib.suppress(KeyError):  # memory: never declared
                    channel.exchange_delete(exchange.name)


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Env]:
    env = Env(url)
    try:
        yield env
    finally:
        await env.close()


async def until(done: Callable[[], bool], bus: Bus | None = None, timeout: float = 5.0) -> None:
    """Wait until `done()`, polling `bus` (in a worker thread) if given."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        if bus is not None:
            await asyncio.to_thread(bus.poll, 0.05)
        else:
            await asyncio.sleep(0.01)


def collect_dead_letters(env: Env) -> tuple[Bus, list[Delivery]]:
    bus, dead = env.bus("inspector"), []
    bus.consume(env.topology.dead_letters(), dead.append)
    return bus, dead
