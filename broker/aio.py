"""The web service's broker client: `AsyncBroker`, the same API over two transports.

* amqp:// — aio-pika's robust connection, opened in the background, so the web service
  starts (and answers /healthz truthfully) while the broker is down; channels redeclare
  their queues and restart their consumers after a reconnect; publishes are confirmed.
* memory:// — the embedded mode: broker/bridge.py's thread serves the in-process
  transport that the web service shares with the actor threads of the process.

Consumers settle deliveries by the rule of broker/abc.py. `consume_batches` serves the
event-log writer: many events per database transaction, acked after the commit.
See docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelInvalidStateError

from broker.abc import (
    MAX_MESSAGE_BYTES,
    AsyncTransport,
    BrokerUnavailable,
    Delivery,
    Outcome,
    check_size,
    count_outcome,
    log_failure,
    outcome_for,
)
from broker.bridge import AsyncBridge
from broker.tasks import cancel_and_wait
from broker.topology import ExchangeSpec, QueueSpec, Topology
from schemas.messages import Message

log = logging.getLogger(__name__)


AsyncHandler = Callable[[Delivery], Awaitable[None]]
BatchHandler = Callable[[list[Delivery]], Awaitable[None]]
# Errors after which a publish or an ack may succeed on a new connection.
_CONNECTION_ERRORS = (
    aio_pika.exceptions.AMQPConnectionError,
    aio_pika.exceptions.DeliveryError,  # nacked
    ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class AsyncBroker:
    """Publish and consume from the web service; see the module docstring."""

    def __init__(
        self,
        url: str,
        topology: Topology | None = None,
        *,
        retry_seconds: float = 2.0,
        publish_timeout: float = 10.0,
        batch_retry_delay: float = 1.0,
        max_retry_delay: float = 5.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.url = url
        self.topology = topology or Topology()
        self.publish_timeout = publish_timeout
        self.batch_retry_delay = batch_retry_delay
        self.max_retry_delay = max_retry_delay
        self.max_message_bytes = max_message_bytes
        # Rejected deliveries (dead_lettered, discarded, by kind) and retried ones.
        self.counts: Counter[str] = Counter()
        self.declared: set[str] = set()  # queue names (tests delete them afterwards)
        self._transport: AsyncTransport = (
            AsyncBridge(url, self.topology)
            if self.in_process
            else _AmqpTransport(url, self.topology, retry_seconds)
        )
        self._tasks: set[asyncio.Task] = set()

    @property
    def in_process(self) -> bool:
        return self.url.startswith("memory://")

    @property
    def connected(self) -> bool:
        return self._transport.connected

    def start(self) -> None:
        """Start connecting in the background (idempotent; the other methods call it)."""
        self._transport.start()

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._transport.close()

    # ---- declaring and publishing -------------------------------------------------------------

    async def declare(self, *queues: QueueSpec) -> None:
        self.start()
        for spec in queues:
            await self._transport.declare(spec, self.publish_timeout)
            self.declared.add(spec.name)

    async def queue_depth(self, spec: QueueSpec) -> int | None:
        """Messages ready in `spec` (declared elsewhere), or None if the broker cannot say."""
        self.start()
        try:
            return await self._transport.depth(spec, min(self.publish_timeout, 2.0))
        except (BrokerUnavailable, *_CONNECTION_ERRORS, aio_pika.exceptions.AMQPError) as exc:
            log.warning("cannot read the depth of %s (%s)", spec.name, exc)
            return None

    async def publish(
        self,
        exchange: ExchangeSpec,
        routing_key: str,
        body: bytes,
        *,
        persistent: bool = True,
        content_type: str = "application/octet-stream",
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm; BrokerUnavailable if that does not
        happen within `publish_timeout` seconds (reconnects included)."""
        self.start()
        await self._transport.publish(
            exchange,
            routing_key,
            body,
            persistent=persistent,
            content_type=content_type,
            headers=headers or {},
            timeout=self.publish_timeout,
        )

    async def publish_message(
        self, exchange: ExchangeSpec, routing_key: str, msg: Message, persistent: bool = True
    ) -> None:
        await self.publish(
            exchange,
            routing_key,
            msg.encode(),
            persistent=persistent,
            content_type=msg.content_type,
            headers={"type": getattr(msg, "type", type(msg).__name__)},
        )

    # ---- consuming ----------------------------------------------------------------------------

    async def consume(self, queue: QueueSpec, handler: AsyncHandler, prefetch: int = 16) -> None:
        """Call `handler` for every delivery (up to `prefetch` at once) and settle it."""

        async def process(delivery: Delivery) -> None:
            error = None
            try:
                check_size(delivery, queue, self.max_message_bytes)
                await handler(delivery)
            except Exception as exc:
                error = exc
            outcome = outcome_for(error, queue, delivery)
            if error is not None:
                log_failure(log, delivery, outcome, error)
                count_outcome(self.counts, queue, outcome, error)
            await self._transport.settle([(delivery, outcome)])

        await self._consume(queue, prefetch, process)

    async def consume_batches(
        self,
        queue: QueueSpec,
        handler: BatchHandler,
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
        prefetch: int = 1000,
    ) -> None:
        """Call `handler` with up to `max_batch` deliveries, collected for at most
        `max_wait` seconds after the first. When it returns, every delivery is acked
        except those it marked with `delivery.dead_letter(reason)`, which are
        dead-lettered. A body over `max_message_bytes` is dead-lettered unread.

        If it raises, one bad message must not hold back the others: each delivery of the
        batch is handed to it again alone. Those that still fail are requeued after a
        back-off that doubles with each consecutive failing round (up to
        `max_retry_delay`), and dead-lettered once their `DELIVERY_LIMIT`-th delivery
        has failed, so a message that keeps failing leaves the queue after a bounded
        number of tries and the consumer carries on."""
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        await self._consume(queue, prefetch, inbox.put)
        self._spawn(self._batches(queue, inbox, handler, max_batch, max_wait))

    async def _consume(
        self, queue: QueueSpec, prefetch: int, on_delivery: Callable[[Delivery], Awaitable[Any]]
    ) -> None:
        self.start()
        await self._transport.consume(queue, prefetch, on_delivery, self.publish_timeout)
        self.declared.add(queue.name)

    async def _batches(
        self,
        queue: QueueSpec,
        inbox: asyncio.Queue[Delivery],
        handler: BatchHandler,
        max_batch: int,
        max_wait: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            batch = [await inbox.get()]
            deadline = loop.time() + max_wait
            while len(batch) < max_batch:
                if not inbox.empty():
                    batch.append(inbox.get_nowait())
                    continue
                try:
                    async with asyncio.timeout_at(deadline):
                        batch.append(await inbox.get())
                except TimeoutError:
                    break
            results = await self._handle_batch(queue, handler, batch)
            failed = [d for d, error in results if error is not None]
            if failed:
                delay = min(self.batch_retry_delay * 2**failures, self.max_retry_delay)
                failures += 1
                if any(outcome_for(e, queue, d) is Outcome.REQUEUE for d, e in results if e):
                    await asyncio.sleep(delay)  # before they come back
            else:
                failures = 0
            settled = []
            # Reversed: a transport that requeues at the head keeps the order.
            for delivery, error in reversed(results):
                outcome = outcome_for(error, queue, delivery)
                if error is not None:
                    log_failure(log, delivery, outcome, error)
                    count_outcome(self.counts, queue, outcome, error)
                elif delivery.poison:
                    outcome = Outcome.DEAD_LETTER
                    log.warning("dead-lettered from %s: %s", queue.name, delivery.poison)
                    count_outcome(self.counts, queue, outcome, delivery.poison)
                settled.append((delivery, outcome))
            await self._transport.settle(settled)

    async def _handle_batch(
        self, queue: QueueSpec, handler: BatchHandler, batch: list[Delivery]
    ) -> list[tuple[Delivery, Exception | None]]:
        """Each delivery with the error that rejects it, or None."""
        results: dict[int, Exception | None] = {}
        for delivery in batch:
            try:
                check_size(delivery, queue, self.max_message_bytes)
            except Exception as exc:
                results[id(delivery)] = exc
        good = [d for d in batch if id(d) not in results]
        if good:
            try:
                await handler(good)
            except Exception as exc:
                if len(good) == 1:
                    results[id(good[0])] = exc
                else:
                    log.warning(
                        "batch handler failed on %s (%s); handling its %d messages one by one",
                        queue.name,
                        exc,
                        len(good),
                    )
                    for delivery in good:
                        delivery.poison = None
                        try:
                            await handler([delivery])
                        except Exception as alone:
                            results[id(delivery)] = alone
        return [(d, results.get(id(d))) for d in batch]

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _AmqpTransport:
    """aio-pika: a robust connection, one confirming channel for publishing and
    declaring, and one channel per consumer (each with its own prefetch)."""

    def __init__(self, url: str, topology: Topology, retry_seconds: float):
        self.url = url
        self.topology = topology
        self.retry_seconds = retry_seconds
        self.connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.connected.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        while True:
            connection, self._exchanges = None, {}
            try:
                connection = await aio_pika.connect_robust(
                    self.url, timeout=10, reconnect_interval=self.retry_seconds
                )
                self._publisher = await connection.channel(publisher_confirms=True)
                for spec in self.topology.exchanges:
                    await self._exchange(spec)
                await self._declare_on(self._publisher, self.topology.dead_letters())
            except (*_CONNECTION_ERRORS, aio_pika.exceptions.AMQPError) as exc:
                log.warning("broker not reachable (%s); retrying", exc)
                if connection is not None:
                    await connection.close()
                await asyncio.sleep(self.retry_seconds)
                continue
            self.connection = connection
            self._ready.set()
            log.info("connected to the broker")
            return

    async def _ready_within(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise BrokerUnavailable(f"no broker connection within {timeout:g} s") from None

    async def _exchange(self, spec: ExchangeSpec) -> aio_pika.abc.AbstractExchange:
        if spec.name not in self._exchanges:
            self._exchanges[spec.name] = await self._publisher.declare_exchange(
                spec.name, spec.type, durable=spec.durable
            )
        return self._exchanges[spec.name]

    @staticmethod
    async def _declare_on(channel: AbstractChannel, spec: QueueSpec) -> aio_pika.abc.AbstractQueue:
        exchange = await channel.declare_exchange(
            spec.exchange.name, spec.exchange.type, durable=spec.exchange.durable
        )
        queue = await channel.declare_queue(
            spec.name,
            durable=spec.durable,
            exclusive=spec.exclusive,
            auto_delete=spec.auto_delete,
            arguments=dict(spec.arguments),
        )
        for key in spec.routing_keys:
            await queue.bind(exchange, key)
        return queue

    async def declare(self, spec: QueueSpec, timeout: float) -> None:
        await self._ready_within(timeout)
        await self._declare_on(self._publisher, spec)

    async def depth(self, spec: QueueSpec, timeout: float) -> int:
        await self._ready_within(timeout)
        # A channel of its own: a passive declare of a missing queue closes its channel.
        async with self.connection.channel(publisher_confirms=False) as channel:
            queue = await asyncio.wait_for(channel.declare_queue(spec.name, passive=True), timeout)
            return int(queue.declaration_result.message_count or 0)

    async def publish(
        self, exchange: ExchangeSpec, routing_key: str, body: bytes, *, timeout: float, **props
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        mode = aio_pika.DeliveryMode.PERSISTENT if props.pop("persistent") else None
        message = aio_pika.Message(body, delivery_mode=mode, **props)
        while True:
            await self._ready_within(max(deadline - loop.time(), 0.0))
            try:
                target = await self._exchange(exchange)
                # wait_for also bounds the wait for a robust reconnect inside publish
                await asyncio.wait_for(
                    target.publish(message, routing_key, mandatory=False),
                    max(deadline - loop.time(), 0.1),
                )
                return
            except _CONNECTION_ERRORS as exc:
                if loop.time() >= deadline - 0.1:
                    raise BrokerUnavailable(
                        f"{exchange.name} {routing_key} not confirmed within {timeout:g} s"
                    ) from exc
                log.warning("publish to %s failed (%s); retrying", exchange.name, exc)
                await asyncio.sleep(0.1)

    async def consume(
        self, spec: QueueSpec, prefetch: int, on_delivery: Callable, timeout: float
    ) -> None:
        await self._ready_within(timeout)
        channel = await self.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        queue = await self._declare_on(channel, spec)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await on_delivery(
                Delivery(
                    body=message.body,
                    routing_key=message.routing_key or "",
                    headers=dict(message.headers or {}),
                    redelivered=bool(message.redelivered),
                    content_type=message.content_type,
                    queue=spec.name,
                    message=message,
                )
            )

        await queue.consume(on_message, no_ack=False)

    async def settle(self, items: list[tuple[Delivery, Outcome]]) -> None:
        for delivery, outcome in items:
            try:
                if outcome is Outcome.ACK:
                    await delivery.message.ack()
                else:
                    await delivery.message.reject(requeue=outcome is Outcome.REQUEUE)
            except (*_CONNECTION_ERRORS, aio_pika.exceptions.MessageProcessError) as exc:
                log.warning("could not settle a delivery from %s (%s)", delivery.queue, exc)

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self.connection is not None:
            await self.connection.close()


def make_async_bus(url: str, topology: Topology) -> AsyncBroker:
    """An AsyncBroker for `url` (amqp:// or memory://); it connects on first use."""
    return AsyncBroker(url, topology)
