"""Live events for the dashboards' streams (`GET /models/<id>/events`), in every web
process.

Only one process stores events (the event log runs in the first web worker), but any
worker may serve a dashboard's stream. So `LiveFeed` publishes a notice of each stored
batch, and every web process consumes its own queue of notices and calls its listeners
(the streams, and web/events/readcache.py) only for events already committed. See
docs/architecture.md (web workers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable

from pydantic import TypeAdapter, ValidationError

from broker.tasks import cancel_and_wait
from broker.topology import STORED_KEY
from schemas.messages import AnyMessage, BadMessage, RunEvent, StatusChanged

log = logging.getLogger("runt.live")

Listener = Callable[[list[RunEvent]], None]

_BATCH = TypeAdapter(list[AnyMessage])
OUTBOX_NOTICES = 256  # notices waiting for the broker before new ones are dropped


def encode_notice(bodies: list[bytes]) -> bytes:
    return b"[" + b",".join(bodies) + b"]"


def decode_notice(body: bytes) -> list[RunEvent]:
    try:
        messages = _BATCH.validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]["msg"]
        raise BadMessage(f"stored-events notice: {first}") from None
    return [m for m in messages if isinstance(m, RunEvent)]


class LiveFeed:
    """Notices of what was stored, from the process that stored it to every web process.

    The event log hands each stored batch to `stored`, which publishes it on the events
    exchange under `STORED_KEY` (transient, no more than a notice: the database is the
    record); every web process, the storing one included, consumes its own bounded queue
    of these notices and calls its listeners. A listener is called only for events already
    committed, so a dashboard that reloads a run on a `status` event reads the new status.
    A status a web process stores itself (a new run, a stop, a run the supervisor failed)
    goes out the same way (`changed`). A notice is the batch's event bodies as one JSON
    array: the event log passes on the bytes it received, without encoding them again.
    """

    def __init__(self, bus, topology):
        self.bus = bus
        self.topology = topology
        self.queue = topology.stored_events(f"web-{socket.gethostname()}-{os.getpid()}")
        self.listeners: list[Listener] = []
        self.counts: Counter = Counter()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTBOX_NOTICES)
        self._tasks: list[asyncio.Task] = []
        # Set once this process's queue of notices is bound and consumed: from then on a
        # listener misses nothing stored (until then, a notice would find no queue).
        self.ready = asyncio.Event()

    def start(self) -> None:
        """Consume this process's notices and send the ones it is given."""
        self._tasks.append(asyncio.create_task(self._consume(), name="live-feed"))
        self._tasks.append(asyncio.create_task(self._publish(), name="live-publisher"))

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)

    def stored(self, bodies: list[bytes]) -> None:
        """Committed events (their bodies as received): tell every web process."""
        try:
            self._outbox.put_nowait(encode_notice(bodies))
        except asyncio.QueueFull:
            self.counts["notices_dropped"] += 1

    def changed(self, run_id: int, status: str, reason: str | None = None) -> None:
        """A run status this process stored itself: every process hears it as a `status`
        event, as it hears those of the actors."""
        event = StatusChanged(run_id=run_id, status=status, reason=reason, actor="web")
        self.stored([event.model_dump_json().encode()])

    async def _publish(self) -> None:
        while True:
            body = await self._outbox.get()
            try:
                await self.bus.publish(
                    self.topology.events, STORED_KEY, body, persistent=False,
                    content_type="application/json",
                )  # fmt: skip
            except Exception as exc:  # best effort: the database has the events
                self.counts["notices_dropped"] += 1
                log.warning("live notice not sent (%s): streams miss one batch", exc)

    async def _consume(self) -> None:
        while True:  # until the broker answers; robust consumers then reconnect alone
            try:
                await self.bus.consume(self.queue, self._on_notice, prefetch=64)
                self.ready.set()
                return
            except Exception as exc:  # the broker away, or a queue it refused: try again
                log.warning("live feed waiting for the broker: %s", exc)
                await asyncio.sleep(2)

    async def _on_notice(self, delivery) -> None:
        events = decode_notice(delivery.body)
        self.counts["notices"] += 1
        for listener in list(self.listeners):
            listener(events)
