"""What both broker clients share: the `Delivery` a handler receives, the one rule that
decides how a delivery is settled, and the error raised when the broker is out of reach.

The actors' client (broker/sync.py, kombu) and the web service's client (broker/aio.py,
aio-pika or the in-process bridge) import these, so a handler behaves the same on
either side of the wire and on either transport.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.topology import ExchangeSpec, QueueSpec
from schemas.messages import BadMessage, Message, decode_message


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached, or did not confirm a publish, in the time allowed."""


class Declined(Exception):
    """Raised by a handler that would rather another consumer took this message (an agent
    spreading a run's workers): it is requeued, without being logged as a failure."""


class Outcome(enum.Enum):
    """How a delivery is settled with the broker."""

    ACK = "ack"
    REQUEUE = "requeue"  # reject(requeue=True): delivered again, later
    DEAD_LETTER = "dead-letter"  # reject(requeue=False): to the queue's dead-letter exchange


def outcome_for(error: BaseException | None, queue: QueueSpec) -> Outcome:
    """The ack rule, in one place.

    A handler that returns has done its work: ack. A `BadMessage` will never decode,
    however often it is retried: dead-letter it at once. Any other failure may be
    transient (a database restart): a durable queue requeues it, and RabbitMQ's
    `x-delivery-limit` on the quorum queue bounds how often; a transient queue holds bulk
    data that is soon superseded, so the message is dropped (or dead-lettered where the
    queue has a dead-letter exchange) rather than retried in a loop.
    """
    if error is None:
        return Outcome.ACK
    if isinstance(error, Declined):
        return Outcome.REQUEUE
    if isinstance(error, BadMessage):
        return Outcome.DEAD_LETTER
    return Outcome.REQUEUE if queue.durable else Outcome.DEAD_LETTER


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
