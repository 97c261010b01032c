"""Answers of the two busiest reads, `GET /models/` and `GET /models/<id>/train-data/`,
kept per web process until the data behind them changes.

A dashboard asks for the same pages again and again while few of them change. Each web
process keeps the encoded answer per user and query, and drops it when the stored-events
notices (web/events/live.py) say that something of the run was stored or changed. The key
holds the user's id, so an answer is only ever served to the user it was read for; errors
are never kept. `ReadCache` says how fresh an answer is. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable

MAX_ENTRIES = 4096
CHANGES_ANSWERS = frozenset({"episode", "episodes", "status"})  # event types


class ReadCache:
    """Encoded answers by key, dropped when their runs change.

    What it promises: an answer is at most `api.read_cache_seconds` old, and within
    milliseconds fresh while the broker carries the notices (they are best effort: a notice
    lost while the broker restarts leaves an answer stale until that bound). A read that
    overlaps an invalidation is not kept (`epoch`), so a change that lands while a request
    reads the database cannot be hidden by that request's older answer. 0 seconds turns it
    off.

    Requests that miss together share one read (`fetch`): after a change, the tens of
    requests in flight for the same page would otherwise all read it. A request joins a
    read only if it began after the last invalidation, so it never gets an answer older
    than a change it could have seen.
    """

    def __init__(self, seconds: float, max_entries: int = MAX_ENTRIES):
        self.seconds = seconds
        self.max_entries = max_entries
        # key -> (expires at, body); keys are ("models", owner, ...) or ("train", owner,
        # model id, ...). Insertion order is age order, for eviction.
        self._entries: dict[tuple, tuple[float, bytes]] = {}
        self.epoch = 0  # moves on every invalidation
        self._reading: dict[tuple, tuple[int, asyncio.Task[bytes]]] = {}  # key -> (epoch, read)
        self.hits = 0  # answered from memory
        self.joined = 0  # answered by a read another request had begun
        self.misses = 0  # read from the database

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    async def fetch(self, key: tuple[Hashable, ...], read: Callable[[], Awaitable[bytes]]) -> bytes:
        """The kept answer for `key`, or the one `read()` gives (shared by the requests
        that miss while it runs; an error it raises reaches each of them)."""
        if not self.enabled:
            self.misses += 1
            return await read()
        if (body := self.get(key)) is not None:
            return body
        pending = self._reading.get(key)
        if pending is not None and pending[0] == self.epoch:
            self.joined += 1
        else:
            self.misses += 1
            task = asyncio.ensure_future(self._read(key, read, self.epoch))
            task.add_done_callback(_retrieved)
            self._reading[key] = pending = (self.epoch, task)
        # A request that goes away (its client hung up) leaves the read to the others.
        return await asyncio.shield(pending[1])

    async def _read(self, key: tuple, read: Callable[[], Awaitable[bytes]], epoch: int) -> bytes:
        try:
            body = await read()
            self.put(key, body, epoch)
            return body
        finally:
            if self._reading.get(key, (0, None))[1] is asyncio.current_task():
                del self._reading[key]

    def get(self, key: tuple[Hashable, ...], now: float | None = None) -> bytes | None:
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > (time.monotonic() if now is None else now):
                self.hits += 1
                return entry[1]
            del self._entries[key]
        return None

    def put(
        self, key: tuple[Hashable, ...], body: bytes, epoch: int, now: float | None = None
    ) -> None:
        """Keep `body`, read when `self.epoch` was `epoch`, unless something changed since."""
        if not self.enabled or epoch != self.epoch:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        now = time.monotonic() if now is None else now
        self._entries[key] = (now + self.seconds, body)

    def runs_changed(self, run_ids: Iterable[int]) -> None:
        """Something of these runs was stored: their pages and every runs list go.

        Every list goes, not only the owner's: a notice names the run, not its owner,
        and lists of all users together are a handful of entries.
        """
        changed = set(run_ids)
        if not changed:
            return
        self.epoch += 1
        for key in [k for k in self._entries if k[0] == "models" or k[2] in changed]:
            del self._entries[key]

    def on_events(self, events: list) -> None:
        """A `LiveFeed` listener. Only episodes and status changes alter a runs list or a
        train-data page (web/events/ingest.py writes the model row for nothing else); metrics,
        evaluations, checkpoints and heartbeats leave the kept answers in place."""
        self.runs_changed(event.run_id for event in events if event.type in CHANGES_ANSWERS)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "hits": self.hits,
            "joined": self.joined,
            "misses": self.misses,
        }


def _retrieved(task: asyncio.Task) -> None:
    """Mark a read's error seen: every request that awaited it may have gone away."""
    if not task.cancelled():
        task.exception()
