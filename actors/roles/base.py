"""What every actor of a run shares: its broker connection, the stop command, status and
event publishing, and a loop that runs until the run ends.

An actor is a `run()` loop of `step()`s. It stops when the run's stop command arrives
over the broker (`run.<id>.stop`), when its `stop_event` is set (the agent, or the
embedded mode), or when it decides the run is over itself (the trainer).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from typing import TYPE_CHECKING

from broker.topology import Topology
from schemas.logs import bind_run
from schemas.messages import (
    BadMessage,
    Message,
    RunEvent,
    RunSpec,
    StatusChanged,
    StopRun,
    decode_message,
)

if TYPE_CHECKING:  # the agent imports this module and must not pay for torch
    from actors.algorithms.interfaces import Algorithm

log = logging.getLogger("runt.actor")


class Actor:
    role = "actor"

    def __init__(
        self,
        spec: RunSpec,
        bus,
        topology: Topology,
        *,
        worker: int = 0,
        incarnation: int = 0,
        stop_event: threading.Event | None = None,
        agent: str = "",
        work_dir: str | None = None,
    ):
        self.spec = spec
        self.run_id = spec.run_id
        self.bus = bus
        self.topology = topology
        self.worker = worker
        self.incarnation = incarnation
        self.stop_event = stop_event or threading.Event()
        self.stop_request: StopRun | None = None
        self.agent = agent
        self.work_dir = work_dir  # the agent's directory for what survives a restart
        self.name = f"{self.role}-{self.run_id}-{worker}.{incarnation}" + (
            f"@{agent}" if agent else ""
        )

    # ---- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        """Set up, step until stopped, finish. An exception is reported as the run's
        failure reason before it propagates (the agent sees the exit too)."""
        with bind_run(self.run_id):
            try:
                self.bus.connect()
                unique = uuid.uuid4().hex[:8]
                stop_queue = self.topology.stop_listener(f"{self.name}.{unique}", self.run_id)
                self.bus.declare(stop_queue)
                self.bus.consume(stop_queue, self.on_stop_requested, prefetch=1)
                self.setup()
                log.info("%s started (pid %d)", self.name, os.getpid())
                while not self.stopping:
                    self.step()
                self.finish()
                log.info("%s finished", self.name)
            except Exception as exc:
                log.exception("%s crashed", self.name)
                self.report_failure(exc)
                raise
            finally:
                self.close()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set() or self.stop_request is not None

    @functools.cached_property
    def algorithm(self) -> Algorithm:
        """The run's algorithm record. Imported here, not at the top: the agent imports
        this module and must not pay for torch."""
        from actors.algorithms.table import algorithm_of

        return algorithm_of(self.spec)

    def setup(self) -> None:
        """Declare queues, build what the actor needs."""

    def step(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Leave cleanly after a stop (the trainer writes its final checkpoint here)."""

    def close(self) -> None:
        try:
            self.bus.close()
        except Exception:  # closing a broken connection must not hide the real error
            log.debug("closing the bus failed", exc_info=True)

    # ---- messages ----------------------------------------------------------------------------

    def on_stop_requested(self, delivery) -> None:
        command = decode_message(delivery.body)
        if not isinstance(command, StopRun):
            raise BadMessage(f"{command.type} on a stop queue")
        log.info("%s stopping: %s %s", self.name, command.status, command.reason)
        self.stop_request = command

    def publish_event(self, event: RunEvent) -> None:
        kind = event.type
        self.bus.publish_message(
            self.topology.events, self.topology.event_key(self.run_id, kind), event
        )

    def publish_status(self, status: str, reason: str | None = None) -> None:
        self.publish_event(
            StatusChanged(run_id=self.run_id, status=status, reason=reason, actor=self.name)
        )

    def publish_stop(self, status: str, reason: str) -> None:
        """Tell every actor of the run to finish (the trainer does this at the end)."""
        command: Message = StopRun(run_id=self.run_id, status=status, reason=reason)
        self.bus.publish_message(
            self.topology.commands, self.topology.stop_key(self.run_id), command
        )

    def report_failure(self, exc: BaseException) -> None:
        reason = f"{self.name} failed: {error_text(exc)}"
        try:
            self.publish_status("failed", reason)
            self.publish_stop("failed", reason)
        except Exception:
            log.warning("could not report the failure of %s", self.name, exc_info=True)


def error_text(exc: BaseException, limit: int = 1000) -> str:
    """One line for status_reason: the exception and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:limit]


def host_name() -> str:
    return socket.gethostname()


class Every:
    """True once every `seconds` (monotonic clock)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False
