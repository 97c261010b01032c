"""The actors' broker client: one `Bus` per actor, driven from the actor's own loop.

An actor is a loop of its own (play a step, train a step), so the client runs no thread:
`poll(timeout)` hands whatever has arrived to the registered handlers and returns. The
same class serves both deployments, on kombu: py-amqp for amqp:// and broker/memory.py's
in-process transport for memory://. A Bus belongs to one thread. Its delivery guarantees
are listed on `Bus`; see also docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import amqp
import amqp.transport
import kombu
from kombu.exceptions import OperationalError

from broker import memory
from broker.abc import (
    MAX_MESSAGE_BYTES,
    BrokerUnavailable,
    Declined,
    Delivery,
    Outcome,
    check_size,
    count_outcome,
    log_failure,
    outcome_for,
)
from broker.topology import ExchangeSpec, QueueSpec, Topology
from schemas.messages import Message

log = logging.getLogger(__name__)

Handler = Callable[[Delivery], None]
BACKOFF = (0.0, 0.25, 0.5, 1.0, 2.0)  # seconds before reconnect attempt 1, 2, ...; then 2 s


def kombu_exchange(spec: ExchangeSpec) -> kombu.Exchange:
    return kombu.Exchange(spec.name, type=spec.type, durable=spec.durable)


def kombu_queue(spec: QueueSpec) -> kombu.Queue:
    exchange = kombu_exchange(spec.exchange)
    return kombu.Queue(
        spec.name,
        bindings=[kombu.binding(exchange, routing_key=key) for key in spec.routing_keys],
        durable=spec.durable,
        exclusive=spec.exclusive,
        auto_delete=spec.auto_delete,
        queue_arguments=dict(spec.arguments),
    )


@dataclass
class _Consumer:
    queue: QueueSpec
    handler: Handler
    prefetch: int
    manual: bool = False
    auto_ack: bool = False


class Bus:
    """Publish to and consume from runt's topology, from one thread.

    * Persistent publishes wait for the broker's confirm (py-amqp `confirm_publish`) and are
      retried across reconnects for up to `publish_timeout` seconds, then raise
      `BrokerUnavailable`. Once `publish` returns, the broker has the message, so a broker
      restart loses nothing acknowledged (a retry after a lost confirm may duplicate it:
      consumers are idempotent). Transient publishes are bulk data: while the broker is away
      they are dropped and counted (`dropped`), because blocking an actor on them is worse
      than losing a few.
    * After a connection loss, `poll` and `publish` reconnect by themselves, with back-off,
      and redeclare every exchange and queue and restart every consumer of this Bus.
      Connection errors are logged, never raised into the actor loop.
    * Deliveries are queued by the kombu callback and handled by `poll` only, so a handler
      that publishes (and so waits for a confirm, during which py-amqp reads further
      deliveries) is never re-entered. Each is settled in one place, `_process`, by the rule
      of broker/abc.py.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        name: str = "bus",
        *,
        connect_timeout: float = 5.0,
        publish_timeout: float = 30.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.url = url
        self.topology = topology
        self.name = name
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.max_message_bytes = max_message_bytes
        self.dropped = 0  # transient messages not published because the broker was away
        # Rejected deliveries (dead_lettered, discarded, by kind) and retried ones.
        self.counts: Counter[str] = Counter()
        self._queues: dict[str, QueueSpec] = {topology.dead_letters().name: topology.dead_letters()}
        self._consumers: list[_Consumer] = []
        self._pending: deque[tuple[_Consumer, Any, int]] = deque()
        self._conn: kombu.Connection | None = None
        self._channel: Any = None  # for declarations and publishing
        self._producer: kombu.Producer | None = None
        # Bulk data (transient publishes) goes over a second connection without publisher
        # confirms: a confirm per experience frame would hold a worker's loop for a round
        # trip each time, and losing such a frame is harmless by design.
        self._bulk_conn: kombu.Connection | None = None
        self._bulk_channel: Any = None  # py-amqp's channel of `_bulk_conn`
        self._generation = 0  # +1 per connection; a delivery settles only on its own
        self._failures = 0
        self._retry_at = 0.0
        probe = self._new_connection()
        # Connection errors are recovered from by reconnecting. A channel error (say, a
        # queue redeclared with other arguments) is a bug to report, but it also closes
        # the channel, so it too drops the connection before it is raised.
        self._errors = (
            *probe.connection_errors,
            *probe.recoverable_connection_errors,
            OperationalError,
        )
        self._channel_errors = probe.channel_errors
        _BUSES.add(self)

    @property
    def declared_queues(self) -> tuple[str, ...]:
        """Names of every queue this Bus declared (tests delete them afterwards)."""
        return tuple(self._queues)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    # ---- connection ------------------------------------------------------------------------

    def connect(self) -> Bus:
        """Connect and declare the topology's exchanges and the dead-letters queue; raises
        BrokerUnavailable if the broker cannot be reached within `connect_timeout`."""
        deadline = time.monotonic() + self.connect_timeout
        while not self._ensure_open():
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"{self.name}: no broker at {self._safe_url()}")
            time.sleep(min(max(self._retry_at - time.monotonic(), 0.05), 1.0))
        return self

    def _new_connection(self) -> kombu.Connection:
        if self.url.startswith("memory://"):
            return kombu.Connection(self.url, transport=memory.Transport)
        # No heartbeats: an actor may train for a minute between two polls.
        return kombu.Connection(
            self.url,
            heartbeat=0,
            connect_timeout=self.connect_timeout,
            transport_options={"confirm_publish": True},
        )

    def _ensure_open(self) -> bool:
        """True if connected; otherwise try to (re)connect, unless backing off."""
        if self._conn is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        conn, generation = self._new_connection(), self._generation + 1
        try:
            conn.ensure_connection(max_retries=0)
            channel = conn.channel()
            for exchange in self.topology.exchanges:
                kombu_exchange(exchange)(channel).declare()
            for spec in self._queues.values():
                kombu_queue(spec)(channel).declare()
            for consumer in self._consumers:
                self._start(conn, consumer, generation)
        except self._errors as exc:
            conn.collect()
            self._retry_at = time.monotonic() + BACKOFF[min(self._failures, len(BACKOFF) - 1)]
            self._failures += 1
            log.warning("%s: broker unreachable (%s); will retry", self.name, exc)
            return False
        except BaseException:
            conn.collect()
            raise
        if self._failures:
            log.info("%s: reconnected to the broker", self.name)
        self._conn, self._channel, self._producer = conn, channel, kombu.Producer(channel)
        self._generation, self._failures = generation, 0
        return True

    def _lost(self, exc: BaseException) -> None:
        """Forget the connection after an error; the next poll or publish reconnects."""
        log.warning("%s: lost the broker connection (%s); reconnecting", self.name, exc)
        if self._conn is not None:
            self._conn.collect()  # release without talking to a broker that is gone
        self._conn = self._channel = self._producer = None
        self._pending.clear()  # unacked: the broker delivers them again
        self._failures = max(self._failures, 1)

    @contextlib.contextmanager
    def _guard(self, *, quiet: bool = False) -> Iterator[None]:
        """Drop the connection on connection errors (and swallow them) or on channel
        errors (and raise them, unless `quiet`)."""
        try:
            yield
        except self._errors as exc:
            self._lost(exc)
        except self._channel_errors as exc:
            self._lost(exc)
            if not quiet:
                raise

    def _safe_url(self) -> str:
        return self._new_connection().as_uri()  # kombu masks the password

    def _forget(self) -> None:
        """In a forked child: let go of the parent's connections without a word to the
        broker (closing them properly, or even a TCP shutdown, would end them for the
        parent too). Only this process's file descriptors of their sockets are closed, so
        the broker sees the parent leave when the parent does. The Bus reconnects on
        its next use, as after a lost connection."""
        for conn in (self._conn, self._bulk_conn):
            transport = getattr(getattr(conn, "_connection", None), "transport", None)
            sock = getattr(transport, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    os.close(sock.detach())  # detached: the socket object closes nothing later
        self._conn = self._channel = self._producer = None
        self._bulk_conn = self._bulk_channel = None
        self._pending.clear()

    def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues."""
        self._drop_bulk(release=True)
        if self._conn is not None:
            try:
                self._conn.release()
            except (*self._errors, *self._channel_errors):
                self._conn.collect()
        self._conn = self._channel = self._producer = None
        self._pending.clear()

    def __enter__(self) -> Bus:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.close()

    # ---- declaring and publishing ------------------------------------------------------------

    def declare(self, *queues: QueueSpec) -> None:
        """Declare queues now if connected, and again after every reconnect."""
        for spec in queues:
            self._queues[spec.name] = spec
            if self._conn is not None:
                with self._guard():
                    kombu_queue(spec)(self._channel).declare()

    def publish(
        self,
        exchange: ExchangeSpec,
        routing_key: str,
        body: bytes,
        *,
        persistent: bool = False,
        content_type: str = "application/octet-stream",
        headers: dict[str, Any] | None = None,
    ) -> bool:
        """Publish `body`. Persistent: confirmed, retried across reconnects, True or
        BrokerUnavailable. Transient: unconfirmed, False (and counted in `dropped`) if
        the broker is away right now."""
        if not persistent and not self.url.startswith("memory://"):
            return self._publish_bulk(exchange, routing_key, body, content_type, headers)
        deadline = time.monotonic() + self.publish_timeout
        while True:
            if self._ensure_open():
                with self._guard():
                    self._producer.publish(
                        body,
                        exchange=exchange.name,
                        routing_key=routing_key,
                        delivery_mode=2 if persistent else 1,
                        content_type=content_type,
                        content_encoding="binary",
                        headers=headers or {},
                        timeout=max(deadline - time.monotonic(), 0.1),
                    )
                    return True
            if not persistent:
                self.dropped += 1
                return False
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"{self.name}: {exchange.name} {routing_key} not confirmed "
                    f"within {self.publish_timeout:g} s"
                )
            time.sleep(min(max(self._retry_at - time.monotonic(), 0.05), 1.0))

    def _publish_bulk(
        self,
        exchange: ExchangeSpec,
        routing_key: str,
        body: bytes,
        content_type: str,
        headers: dict[str, Any] | None,
    ) -> bool:
        if self._bulk_channel is None and not self._open_bulk():
            self.dropped += 1
            return False
        # Straight to py-amqp: kombu's Producer.publish rebuilds the same properties for
        # every message, which shows on a worker that ships hundreds of frames a second.
        message = amqp.Message(
            body,
            delivery_mode=1,
            content_type=content_type,
            content_encoding="binary",
            application_headers=headers or None,  # an empty table is bytes to encode
        )
        try:
            # What the broker sends on this connection (a blocked notice, a channel it
            # closed) is read when the socket has bytes, not by a read that times out
            # before every publish as py-amqp does (see `_open_bulk`).
            if not _nothing_to_read(self._bulk_conn):
                with contextlib.suppress(TimeoutError):
                    self._bulk_conn.connection.drain_events(timeout=0)
            self._bulk_channel.basic_publish(
                message, exchange=exchange.name, routing_key=routing_key
            )
        except (*self._errors, *self._channel_errors) as exc:
            log.warning("%s: bulk publish failed (%s); reconnecting", self.name, exc)
            self._drop_bulk()
            self.dropped += 1
            return False
        return True

    def _open_bulk(self) -> bool:
        if not self._ensure_open() or time.monotonic() < self._retry_at:
            return False  # the main connection declares the exchanges; wait for it
        conn = kombu.Connection(self.url, heartbeat=0, connect_timeout=self.connect_timeout)
        try:
            conn.ensure_connection(max_retries=0)
            self._bulk_conn, self._bulk_channel = conn, conn.channel()
            # py-amqp reads the socket with a timeout before every publish on a connection
            # that negotiated blocked notices; `_publish_bulk` looks at the socket instead.
            capabilities = conn.connection.client_properties.get("capabilities", {})
            if capabilities.get("connection.blocked"):
                conn.connection.client_properties["capabilities"] = {
                    **capabilities,
                    "connection.blocked": False,
                }
        except self._errors:
            conn.collect()
            return False
        return True

    def _drop_bulk(self, release: bool = False) -> None:
        if self._bulk_conn is not None:
            try:
                if release:
                    self._bulk_conn.release()
                else:
                    self._bulk_conn.collect()
            except (*self._errors, *self._channel_errors):
                self._bulk_conn.collect()
        self._bulk_conn = self._bulk_channel = None

    def publish_message(
        self, exchange: ExchangeSpec, routing_key: str, msg: Message, persistent: bool = True
    ) -> bool:
        """Publish a runt message record (JSON), persistent unless told otherwise."""
        return self.publish(
            exchange,
            routing_key,
            msg.encode(),
            persistent=persistent,
            content_type=msg.content_type,
            headers={"type": getattr(msg, "type", type(msg).__name__)},
        )

    # ---- consuming ---------------------------------------------------------------------------

    def consume(
        self,
        queue: QueueSpec,
        handler: Handler,
        *,
        prefetch: int = 16,
        manual: bool = False,
        auto_ack: bool = False,
    ) -> None:
        """Declare `queue` and hand its messages to `handler` from now on (in `poll`).

        manual=True leaves settling to the caller, who passes each delivery to `settle`
        on this Bus's thread later (the async bridge of broker/aio.py does).

        auto_ack=True: the broker forgets a message once it is sent (AMQP no-ack), so
        there is no ack to send per message and no prefetch window. Only for a transient
        queue without a dead-letter exchange whose flow the application bounds (the
        trainer's sample frames, bounded by its credit): a message whose handler fails is
        dropped, as rejecting it would drop it there."""
        if auto_ack and (queue.durable or "x-dead-letter-exchange" in queue.arguments):
            raise ValueError(f"{queue.name}: auto_ack would lose what this queue keeps")
        consumer = _Consumer(queue, handler, prefetch, manual, auto_ack)
        self._queues[queue.name] = queue
        self._consumers.append(consumer)
        if self._conn is not None:
            with self._guard():
                self._start(self._conn, consumer, self._generation)

    def _start(self, conn: kombu.Connection, consumer: _Consumer, generation: int) -> None:
        """One channel per consumer, so each has its own prefetch window."""

        def on_message(message: Any) -> None:
            self._pending.append((consumer, message, generation))

        kombu.Consumer(
            conn.channel(),
            queues=[kombu_queue(consumer.queue)],
            on_message=on_message,
            prefetch_count=None if consumer.auto_ack else consumer.prefetch,
            no_ack=consumer.auto_ack,
        ).consume()

    def poll(self, timeout: float = 0.0, *, max_messages: int = 1000) -> int:
        """Handle what has arrived, waiting up to `timeout` seconds for a first message;
        returns how many were handled. Never raises connection or channel errors: it
        reconnects (with back-off) instead."""
        deadline = time.monotonic() + max(timeout, 0.0)
        handled = 0
        while handled < max_messages:
            if self._pending:
                self._process(*self._pending.popleft())
                handled += 1
                continue
            if not self._ensure_open():
                time.sleep(max(min(deadline, self._retry_at) - time.monotonic(), 0.0))
                if time.monotonic() >= deadline:
                    break
                continue
            wait = max(deadline - time.monotonic(), 0.0) if not handled else 0.0
            if not wait and _nothing_to_read(self._conn):
                break
            with self._guard(quiet=True):
                try:
                    self._conn.drain_events(timeout=wait)
                except TimeoutError:  # an OSError, but here it only means "nothing came"
                    if time.monotonic() >= deadline or handled:
                        break
        return handled

    def _process(self, consumer: _Consumer, message: Any, generation: int) -> None:
        """Run the handler and settle the delivery by the rule of broker/abc.py."""
        delivery = Delivery(
            body=message.body,
            routing_key=message.delivery_info.get("routing_key", ""),
            headers=dict(message.headers or {}),
            redelivered=bool(message.delivery_info.get("redelivered", False)),
            content_type=message.content_type,
            queue=consumer.queue.name,
            message=(message, generation),
        )
        if consumer.manual:
            consumer.handler(delivery)
            return
        error = None
        try:
            check_size(delivery, consumer.queue, self.max_message_bytes)
            consumer.handler(delivery)
        except Exception as exc:
            error = exc
        outcome = outcome_for(error, consumer.queue, delivery)
        if error is not None and not isinstance(error, Declined):
            log_failure(log, delivery, outcome, error)
            count_outcome(self.counts, consumer.queue, outcome, error)
        if not consumer.auto_ack:  # else the broker has forgotten it already
            self.settle(delivery, outcome)

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        """Ack or reject one delivery of this Bus: the only place that does."""
        message, generation = delivery.message
        if generation != self._generation or self._conn is None:
            return  # its connection is gone: the broker has requeued it already
        with self._guard(quiet=True):
            if outcome is Outcome.ACK:
                message.ack()
            else:
                message.reject(requeue=outcome is Outcome.REQUEUE)


_BUSES: weakref.WeakSet[Bus] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for bus in list(_BUSES):
        bus._forget()


# An agent forks its actor processes (actors/agent/launch.py): no child may talk on its
# parent's broker connections.
os.register_at_fork(after_in_child=_forget_after_fork)


def _nothing_to_read(conn: kombu.Connection) -> bool:
    """amqp:// over plain TCP: True when no byte waits, neither on the socket nor in
    py-amqp's read buffer. One select() instead of a read that times out: such a read
    raises and catches a timeout through kombu's and py-amqp's layers, a cost a rollout
    worker would pay on every poll of an idle connection. A closed socket reads as ready,
    so a lost connection is still found by the read."""
    transport = getattr(conn.connection, "transport", None)
    if type(transport) is not amqp.transport.TCPTransport or transport._read_buffer:
        return False  # memory://, TLS (buffers decrypted bytes), or a frame half read
    sock = transport.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select((sock,), (), (), 0)
    except (OSError, ValueError):  # a closed socket: let the read report it
        return False
    return not readable


def make_bus(url: str, topology: Topology, name: str = "bus") -> Bus:
    """A Bus for `url` (amqp:// or memory://); call connect() or use it as a context."""
    return Bus(url, topology, name=name)
