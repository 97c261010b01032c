"""The event-log consumer: every event of every run, from the durable queue into the
database, in batches.

A batch is written in one transaction and acknowledged only after the commit, so a
crash or restart of the web service, the broker or the database loses nothing: the
unacknowledged events are delivered again and `web.events.ingest` stores each once. While
the database is unreachable the consumer keeps retrying the same batch (holding its
messages unacknowledged) instead of failing them. A body that is not a runt event is
dead-lettered at once, without stopping the consumer. After each commit the batch goes
to `on_stored` (web/events/live.py tells every web process's live streams).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, IntegrityError

from schemas.messages import BadMessage, RunEvent, decode_message
from web.db.engine import Database
from web.events.ingest import apply_events

log = logging.getLogger("runt.eventlog")


class EventLog:
    def __init__(
        self,
        db: Database,
        bus,
        topology,
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 15.0,
    ):
        self.db = db
        self.bus = bus
        self.queue = topology.event_log()
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.counts: Counter = Counter()
        self.on_stored: Callable[[list[bytes]], None] | None = None  # web/events/live.py
        # Since when writes have succeeded (monotonic); None while the database is away.
        # web/events/supervise.py judges heartbeats only once the log has kept up for a while.
        self.healthy_since: float | None = time.monotonic()

    async def start(self) -> None:
        await self.bus.declare(self.queue)
        await self.bus.consume_batches(
            self.queue,
            self.on_batch,
            max_batch=self.max_batch,
            max_wait=self.max_wait,
            prefetch=self.max_batch * 2,
        )

    async def on_batch(self, deliveries) -> None:
        events: list[RunEvent] = []
        bodies: list[bytes] = []
        for delivery in deliveries:
            try:
                event = decode_message(delivery.body)
                if not isinstance(event, RunEvent):
                    raise BadMessage(f"{event.type}: not an event")
            except BadMessage as exc:
                self.counts["dead_lettered"] += 1
                log.warning("dead-lettering an undecodable event: %s", exc)
                delivery.dead_letter(str(exc))
                continue
            events.append(event)
            bodies.append(delivery.body)
        if events:
            self.counts.update(await self._write(events))
            if self.on_stored is not None:
                self.on_stored(bodies)

    async def _write(self, events: list[RunEvent]) -> Counter:
        """Commit the batch, waiting out database outages; returns what was stored."""
        delay = self.retry_seconds
        conflicts = 0
        while True:
            try:
                stored = await self.db.run(apply_events, events)
                if self.healthy_since is None:
                    self.healthy_since = time.monotonic()
                return stored
            except IntegrityError:
                # Another consumer stored some of these first; the retry skips them.
                conflicts += 1
                if conflicts > 3:
                    raise
            except DBAPIError as exc:
                if not exc.connection_invalidated and not _is_connection_error(exc):
                    raise
                log.warning("database unavailable (%s); retrying in %.0f s", exc.orig, delay)
                self.healthy_since = None
                self.counts["db_retries"] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_seconds)


def _is_connection_error(exc: DBAPIError) -> bool:
    """pymysql's OperationalError 2003/2006/2013 (and SQLite's locked database) mean
    "try again later", not "this batch is wrong"."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return code in (2003, 2006, 2013, 2014, 2055) or "database is locked" in str(exc.orig)
