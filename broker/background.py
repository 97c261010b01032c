"""Publishing from a thread of its own, so an actor's loop does not wait on the broker.

A persistent publish (a rollout worker's `episodes` events, for one) waits for the
broker's confirm. `BackgroundPublisher` takes that wait off the loop: the loop hands each
publish to a bounded queue and goes on, and a thread with a `Bus` of its own (its own
connections) encodes and publishes them in order, with `Bus.publish`'s guarantees
(persistent: confirmed, retried across reconnects; transient: dropped and counted while
the broker is away). See docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from broker.sync import Bus
from broker.topology import ExchangeSpec
from schemas.messages import Message

log = logging.getLogger(__name__)

Job = Callable[[Bus], object]
_PUT_WAIT_S = 0.1  # how often a loop waiting for room checks that the thread still runs


class BackgroundPublisher:
    """Publishes what an actor's loop hands over, from a thread that alone uses `bus`.

    * Order: one queue, one thread, first in first out, so the events of one worker reach
      the broker in the order of their sequence numbers.
    * Nothing handed over is lost on a clean stop: `close()` returns once every publish
      queued before it is done (the persistent ones confirmed), and raises if one failed.
      Actors call it in `finish`, before they report themselves done.
    * A failure in the thread (say `BrokerUnavailable` after the Bus's `publish_timeout`)
      stops it; the next `publish_*` or `close()` raises that error in the actor's loop, so
      the actor fails as if it had published itself.
    * Backpressure: at most `max_pending` publishes wait; a loop that outruns the broker
      waits in `publish_*`, as it would have waited on the socket.

    Encoding runs in the thread: whatever is handed over must not be changed afterwards.
    """

    def __init__(self, bus: Bus, max_pending: int = 64):
        self.bus = bus
        self._jobs: queue.Queue[Job | None] = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{bus.name}", daemon=True)
        self._thread.start()

    # ---- the actor's side ----------------------------------------------------------------------

    def publish(
        self, exchange: ExchangeSpec, routing_key: str, body: bytes, *, persistent: bool = False
    ) -> None:
        self._put(lambda bus: bus.publish(exchange, routing_key, body, persistent=persistent))

    def publish_message(self, exchange: ExchangeSpec, routing_key: str, msg: Message) -> None:
        """A runt message record, persistent and confirmed (encoded in the thread)."""
        self._put(lambda bus: bus.publish_message(exchange, routing_key, msg))

    def close(self) -> None:
        """Wait until everything handed over is published; raise the thread's error."""
        if not self._closed:
            self._put(None)
            self._closed = True
        self._thread.join()
        self._raise_failure()

    def abandon(self, timeout: float = 1.0) -> None:
        """Stop without publishing what is still queued (an actor that crashed)."""
        self._abandoned.set()
        if not self._closed:
            self._closed = True
            with contextlib.suppress(queue.Full):  # wakes an idle thread; a busy one sees the flag
                self._jobs.put_nowait(None)
        self._thread.join(timeout)

    @property
    def failure(self) -> BaseException | None:
        return self._error

    def _put(self, job: Job | None) -> None:
        if self._closed:
            raise RuntimeError(f"{self.bus.name}: publish after close")
        while True:
            self._raise_failure()
            try:
                self._jobs.put(job, timeout=_PUT_WAIT_S)
                return
            except queue.Full:
                continue

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive() and not self._closed:
            raise RuntimeError(f"{self.bus.name}: the publishing thread has ended")

    # ---- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._abandoned.is_set():
                job = self._jobs.get()
                if job is None or self._abandoned.is_set():
                    return
                job(self.bus)
        except BaseException as exc:  # handed to the actor's loop, which fails with it
            log.warning("%s: publishing failed: %s", self.bus.name, exc)
            self._error = exc
        finally:
            try:
                self.bus.close()
            except Exception:  # closing a broken connection must not hide the real error
                log.debug("closing the publisher's bus failed", exc_info=True)
