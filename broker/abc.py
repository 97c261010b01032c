"""What both broker clients share: the `Delivery` a handler receives, the one rule that
decides how a delivery is settled, and the error raised when the broker is out of reach.

The actors' client (broker/sync.py, kombu) and the web service's client (broker/aio.py,
aio-pika or the in-process bridge) import these, so a handler behaves the same on
either side of the wire and on either transport.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.topology import DELIVERY_LIMIT, ExchangeSpec, QueueSpec
from schemas.messages import BadMessage, Message, decode_message

# Commands and events are small JSON records (a checkpoint, the largest, is a few MB); a
# body past this on a durable queue is refused unread. RabbitMQ's own ceiling is 128 MiB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached, or did not confirm a publish, in the time allowed."""


class Declined(Exception):
    """Raised by a handler that would rather another consumer took this message (an agent
    spreading a run's workers): it is requeued, without being logged as a failure."""


class OversizedMessage(BadMessage):
    """A body larger than the consumer accepts: dead-lettered without being parsed."""


def check_size(delivery: Delivery, queue: QueueSpec, limit: int) -> None:
    """Raise OversizedMessage for a body over `limit` on a durable queue of commands or
    events; queues of binary frames (bulk data, a resumed run's learner state) are
    bounded otherwise (their length, RabbitMQ's own maximum)."""
    if queue.durable and not queue.binary and len(delivery.body) > limit:
        raise OversizedMessage(f"body: {len(delivery.body)} bytes, more than {limit}")


class Outcome(enum.Enum):
    """How a delivery is settled with the broker."""

    ACK = "ack"
    REQUEUE = "requeue"  # reject(requeue=True): delivered again, later
    DEAD_LETTER = "dead-letter"  # reject(requeue=False): to the queue's dead-letter exchange


def outcome_for(
    error: BaseException | None, queue: QueueSpec, delivery: Delivery | None = None
) -> Outcome:
    """The ack rule, in one place.

    A handler that returns has done its work: ack. A `BadMessage` (malformed, unknown
    type or schema_version, oversized) will never decode, however often it is retried:
    dead-letter it at once. Any other failure may be transient (a database restart): a
    durable queue requeues it until its `DELIVERY_LIMIT`-th delivery has failed, then
    dead-letters it (RabbitMQ's `x-delivery-limit` on the quorum queue is the backstop);
    a transient queue holds bulk data that is soon superseded, so the message is dropped
    (or dead-lettered where the queue has a dead-letter exchange) rather than retried.
    """
    if error is None:
        return Outcome.ACK
    if isinstance(error, Declined):
        return Outcome.REQUEUE
    if isinstance(error, BadMessage) or not queue.durable:
        return Outcome.DEAD_LETTER
    if delivery is not None and delivery.attempt >= DELIVERY_LIMIT:
        return Outcome.DEAD_LETTER
    return Outcome.REQUEUE


def failure_kind(error: BaseException | str | None) -> str:
    """How a rejected delivery is counted: oversized, malformed or failing."""
    if isinstance(error, OversizedMessage):
        return "oversized"
    if isinstance(error, BadMessage | str):
        return "malformed"
    return "failing"


def count_outcome(
    counts: Counter, queue: QueueSpec, outcome: Outcome, error: BaseException | str | None
) -> None:
    """The consumer counters: `dead_lettered` (durable queues: to the dead-letter
    exchange) or `discarded` (bulk data dropped), each also by kind, and `retried`."""
    if error is None or isinstance(error, Declined):
        return
    if outcome is Outcome.REQUEUE:
        counts["retried"] += 1
        return
    where = "dead_lettered" if queue.durable else "discarded"
    counts[where] += 1
    counts[f"{where}.{failure_kind(error)}"] += 1


def log_failure(log: logging.Logger, delivery: Delivery, outcome: Outcome, error: Exception):
    """One log line per failed delivery, naming the queue, the key and what happens next."""
    if isinstance(error, BadMessage):
        log.warning(
            "bad message on %s (%s): %s; %s",
            delivery.queue,
            delivery.routing_key,
            error,
            outcome.value,
        )
    else:
        log.error(
            "handler failed on %s (%s); %s",
            delivery.queue,
            delivery.routing_key,
            outcome.value,
            exc_info=error,
        )


@dataclass
class Delivery:
    """One message as a consumer receives it.

    `message` is the transport's own message object (kombu or aio-pika), kept so the
    client that made this delivery can settle it; handlers never ack it themselves.
    """

    body: bytes
    routing_key: str
    headers: dict[str, Any]
    redelivered: bool
    content_type: str | None
    queue: str = ""
    message: Any = field(default=None, repr=False)
    poison: str | None = None  # set by dead_letter(): why this delivery is rejected

    @property
    def attempt(self) -> int:
        """1 on the first delivery; quorum queues count earlier failed deliveries in
        `x-delivery-count` (so does the in-process broker)."""
        try:
            return int(self.headers.get("x-delivery-count") or 0) + 1
        except (TypeError, ValueError):
            return 1

    def decode(self) -> Message:
        """The runt message in the body; raises BadMessage (dead-lettered) if it is none."""
        return decode_message(self.body)

    def dead_letter(self, reason: str) -> None:
        """Mark this delivery of a batch as poison: it is rejected without requeue (and so
        dead-lettered) while the rest of the batch is acked."""
        self.poison = reason or "rejected by the handler"


class AsyncTransport(Protocol):
    """What broker/aio.py's AsyncBroker needs from a transport: aio-pika for amqp://
    (aio.py) or the bridge to the in-process broker for memory:// (memory.py)."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    async def declare(self, spec: QueueSpec, timeout: float) -> None: ...

    async def depth(self, spec: QueueSpec, timeout: float) -> int:
        """Messages ready in an existing queue."""

    async def publish(
        self, exchange: ExchangeSpec, routing_key: str, body: bytes, *, timeout: float, **props
    ) -> None:
        """props: persistent, content_type, headers. Returns once the broker has it."""

    async def consume(
        self,
        spec: QueueSpec,
        prefetch: int,
        on_delivery: Callable[[Delivery], Awaitable[Any]],
        timeout: float,
    ) -> None:
        """Declare `spec` and call `on_delivery` on the loop for each message, unsettled."""

    async def settle(self, items: list[tuple[Delivery, Outcome]]) -> None: ...

    async def close(self) -> None: ...
