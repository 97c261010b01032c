"""The in-process broker of the embedded mode: kombu's memory transport, taught the few
RabbitMQ behaviours runt relies on (`Channel` lists them): bounded queues that drop their
oldest message, dead-lettering, delivery limits and requeue to the head of the queue.

A condition variable replaces kombu's fixed polling sleep, so a consumer wakes as soon as
something is published; broker/bridge.py is the event loop's way in. State is
process-global, like kombu's own memory transport: every connection in the process sees
the same exchanges and queues, which is how the web service and the actor threads of the
embedded mode talk to each other. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import memory, virtual
from kombu.utils.uuid import uuid

log = logging.getLogger(__name__)


class _Store:
    """Every queue of the process, behind one lock. `version` changes on every publish,
    settle and wake(), so a waiting thread can tell whether it missed something."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.queues: dict[str, deque[dict]] = {}
        self.arguments: dict[str, dict[str, Any]] = {}
        self.version = 0

    def declare(self, queue: str, arguments: dict[str, Any]) -> None:
        with self.changed:
            self.queues.setdefault(queue, deque())
            self.arguments.setdefault(queue, dict(arguments))

    def put(self, queue: str, message: dict, *, head: bool = False) -> None:
        with self.changed:
            messages = self.queues.setdefault(queue, deque())
            if head:
                messages.appendleft(message)
            else:
                messages.append(message)
            limit = self.arguments.get(queue, {}).get("x-max-length")
            while limit is not None and len(messages) > limit:
                messages.popleft()  # drop-head: the oldest message goes
            self._changed()

    def get(self, queue: str) -> dict:
        with self.changed:
            messages = self.queues.get(queue)
            if not messages:
                raise Empty()
            return messages.popleft()

    def size(self, queue: str) -> int:
        with self.changed:
            return len(self.queues.get(queue, ()))

    def purge(self, queue: str) -> int:
        with self.changed:
            messages = self.queues.get(queue, deque())
            count = len(messages)
            messages.clear()
            return count

    def delete(self, queue: str) -> None:
        with self.changed:
            self.queues.pop(queue, None)
            self.arguments.pop(queue, None)

    def arguments_of(self, queue: str) -> dict[str, Any]:
        with self.changed:
            return self.arguments.get(queue, {})

    def wake(self) -> None:
        with self.changed:
            self._changed()

    def wait(self, seen: int, timeout: float | None) -> None:
        """Block until `version` differs from `seen`, or `timeout` seconds pass."""
        with self.changed:
            if self.version == seen:
                self.changed.wait(timeout)

    def _changed(self) -> None:
        self.version += 1
        self.changed.notify_all()


STORE = _Store()


def wake() -> None:
    """Wake every thread waiting in this transport (the async bridge uses it to hand its
    thread a command without waiting for the next poll timeout)."""
    STORE.wake()


class QoS(virtual.QoS):
    """Unacked messages of one channel; rejects requeue to the head or dead-letter."""

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        STORE.wake()  # a consumer at its prefetch limit may take the next message now

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        message = self._delivered[delivery_tag]
        if requeue:
            self.channel._restore(message)
        else:
            self.channel._dead_letter(message.serializable(), "rejected")
        self._quick_ack(delivery_tag)
        STORE.wake()


class Channel(memory.Channel):
    """kombu's memory channel, plus what runt relies on, per queue and from the arguments
    the queue was declared with:

    * `x-max-length` with drop-head overflow: a full queue drops its oldest message, so a
      rollout worker's weights queue of length 1 holds only the newest version;
    * `x-dead-letter-exchange` (and `x-dead-letter-routing-key`): a message rejected with
      requeue=False is republished there with its original routing key, plus
      `x-first-death-*` headers as RabbitMQ adds;
    * `x-delivery-limit`: a message returned to its queue more often than that is
      dead-lettered instead, as a quorum queue does;
    * requeue: reject(requeue=True), and closing a channel with unacked messages, put them
      back at the head of the queue they came from. (kombu's own restore routes them through
      the exchange again, which would copy them into every other bound queue too.)

    Not emulated: x-expires, exclusive ownership, auto-delete, priorities, dead-lettering of
    overflow, and publisher confirms (a publish is complete when it returns).
    """

    QoS = QoS
    do_restore = True  # closing a channel returns its unacked messages, as RabbitMQ does

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return queue in STORE.queues

    def _new_queue(self, queue: str, arguments: dict | None = None, **kwargs: Any) -> None:
        STORE.declare(queue, arguments or {})

    def _get(self, queue: str, timeout: float | None = None) -> dict:
        return STORE.get(queue)

    def _put(self, queue: str, message: dict, **kwargs: Any) -> None:
        """Each queue gets its own copy with its own delivery tag and the queue's name,
        so requeue and dead-lettering know where the message was."""
        properties = message["properties"]
        info = {**properties["delivery_info"], "queue": queue}
        copy = {**message, "properties": {**properties, "delivery_info": info}}
        copy["properties"]["delivery_tag"] = uuid()
        STORE.put(queue, copy)

    def _put_fanout(self, exchange: str, message: dict, routing_key: str, **kwargs: Any) -> None:
        for queue in self._lookup(exchange, routing_key):
            self._put(queue, message)

    def _size(self, queue: str) -> int:
        return STORE.size(queue)

    def _purge(self, queue: str) -> int:
        return STORE.purge(queue)

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        STORE.delete(queue)

    def queue_delete(self, queue: str, if_unused=False, if_empty=False, **kwargs: Any) -> None:
        # kombu deletes a queue only through its bindings; an unbound queue would stay.
        if if_empty and self._size(queue):
            return
        super().queue_delete(queue, if_unused=if_unused, if_empty=if_empty, **kwargs)
        STORE.delete(queue)

    def close(self) -> None:
        # memory.Channel.close empties the class-level queues kombu keeps; ours are global.
        virtual.Channel.close(self)

    def _restore(self, message: virtual.Message) -> None:
        """Back to the head of its own queue, counting deliveries for x-delivery-limit."""
        raw = message.serializable()
        info = raw["properties"]["delivery_info"]
        count = int(raw["headers"].get("x-delivery-count", 0)) + 1
        limit = STORE.arguments_of(info["queue"]).get("x-delivery-limit")
        if limit is not None and count > limit:
            self._dead_letter(raw, "delivery_limit")
            return
        raw["headers"]["x-delivery-count"] = count
        raw["properties"]["delivery_info"] = {**info, "redelivered": True}
        STORE.put(info["queue"], raw, head=True)

    def _dead_letter(self, raw: dict, reason: str) -> None:
        """Republish to the queue's dead-letter exchange; without one the message is gone."""
        info = raw["properties"]["delivery_info"]
        arguments = STORE.arguments_of(info["queue"])
        exchange = arguments.get("x-dead-letter-exchange")
        if not exchange or exchange not in self.state.exchanges:
            return
        key = arguments.get("x-dead-letter-routing-key", info["routing_key"])
        headers = {
            **raw["headers"],
            "x-first-death-queue": info["queue"],
            "x-first-death-exchange": info["exchange"],
            "x-first-death-reason": reason,
        }
        properties = {**raw["properties"], "delivery_info": {"exchange": exchange}}
        properties["delivery_info"]["routing_key"] = key
        dead = {**raw, "headers": headers, "properties": properties}
        self.typeof(exchange).deliver(dead, exchange, key)


class Transport(memory.Transport):
    """Use with `kombu.Connection("memory://", transport=Transport)`."""

    Channel = Channel
    global_state = virtual.BrokerState()  # our own exchanges, apart from kombu's memory://

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """Deliver one message; wait for one for up to `timeout` seconds (None: forever)."""
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            seen = STORE.version
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError()
            STORE.wait(seen, remaining)
