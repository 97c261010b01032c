"""runt's RabbitMQ topology as data: every exchange, queue, binding and argument.

Clients import the specs from here and declare them; nothing else names a queue.
Naming rule: `<prefix>.<exchange kind>` for exchanges, `<prefix>.<purpose>` for shared
queues and `<prefix>.run.<run id>.<purpose>[.<worker>]` for a run's own queues. The
prefix (config `broker.prefix`, default "runt") lets test runs share a broker.

Control and records are durable (quorum queues: replicated, and a message that keeps
failing is dead-lettered after `DELIVERY_LIMIT` deliveries); bulk data is transient
and bounded: a full queue drops its oldest message rather than block the publisher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DELIVERY_LIMIT = 5  # deliveries of one message before it is dead-lettered
RUN_QUEUE_EXPIRES_MS = 10 * 60 * 1000  # an unused run queue disappears after 10 min
EXPERIENCE_MAX_LENGTH = 256  # experience frames waiting for the buffer
SAMPLES_MAX_LENGTH = 64  # sample frames waiting for the trainer
RESUME_EXPIRES_MS = 24 * 3600 * 1000
# A queue that holds one message, the newest (weights, evaluation requests)
NEWEST_ONLY = {"x-max-length": 1, "x-overflow": "drop-head"}
# Routing key of the event log's "stored" notices on the events exchange (outside
# `run.#`, so the event log never takes them back in).
STORED_KEY = "stored"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str = "topic"
    durable: bool = True


@dataclass(frozen=True)
class QueueSpec:
    name: str
    exchange: ExchangeSpec
    routing_keys: tuple[str, ...]
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    binary: bool = False  # binary frames: exempt from the size limit of control messages


class Topology:
    """The exchanges and queue specs of one deployment (one prefix)."""

    def __init__(self, prefix: str = "runt"):
        self.prefix = prefix
        self.commands = ExchangeSpec(f"{prefix}.commands")
        self.data = ExchangeSpec(f"{prefix}.data")
        self.events = ExchangeSpec(f"{prefix}.events")
        self.dead = ExchangeSpec(f"{prefix}.dead")

    @property
    def exchanges(self) -> tuple[ExchangeSpec, ...]:
        return (self.commands, self.data, self.events, self.dead)

    def _durable(self, name: str, exchange: ExchangeSpec, *keys: str) -> QueueSpec:
        return QueueSpec(
            name=f"{self.prefix}.{name}",
            exchange=exchange,
            routing_keys=keys,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": self.dead.name,
            },
        )

    def _transient(
        self, run_id: int, purpose: str, exchange: ExchangeSpec, key: str, **arguments: Any
    ) -> QueueSpec:
        return QueueSpec(
            name=f"{self.prefix}.run.{run_id}.{purpose}",
            exchange=exchange,
            routing_keys=(key,),
            arguments={"x-expires": RUN_QUEUE_EXPIRES_MS, **arguments},
        )

    # ---- shared, durable -----------------------------------------------------------------

    def agent_work(self) -> QueueSpec:
        """Start and spawn commands, shared by all agents (each takes one at a time)."""
        return self._durable("agents", self.commands, "run.start", "actor.spawn")

    def event_log(self) -> QueueSpec:
        """Every event of every run, for the web service's event-log consumer."""
        return self._durable("event-log", self.events, "run.#")

    def dead_letters(self) -> QueueSpec:
        """Messages no consumer could process, kept for inspection."""
        return QueueSpec(
            name=f"{self.prefix}.dead-letters",
            exchange=self.dead,
            routing_keys=("#",),
            durable=True,
        )

    # ---- per process, transient ------------------------------------------------------------

    def stop_listener(self, owner: str, run_id: int | None = None) -> QueueSpec:
        """Stop commands for one run (an actor) or for all runs (an agent)."""
        key = f"run.{run_id}.stop" if run_id is not None else "run.*.stop"
        return QueueSpec(
            name=f"{self.prefix}.stop.{owner}",
            exchange=self.commands,
            routing_keys=(key,),
            exclusive=True,
            auto_delete=True,
        )

    def event_tap(self, owner: str, *keys: str) -> QueueSpec:
        """A private, bounded view of some events (the trainer's count of episodes and
        its evaluations, a live dashboard). Losing it loses nothing: the event log is
        the record."""
        return QueueSpec(
            name=f"{self.prefix}.tap.{owner}",
            exchange=self.events,
            routing_keys=keys,
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": 10_000, "x-overflow": "drop-head"},
        )

    def stored_events(self, owner: str) -> QueueSpec:
        """The event log's notices of what it stored, for one web process's live streams:
        each process has its own queue, so every process sees every stored event,
        whichever process stored it."""
        return self.event_tap(owner, STORED_KEY)

    # ---- a run's data queues -----------------------------------------------------------------

    def experience(self, run_id: int) -> QueueSpec:
        return self._transient(
            run_id,
            "experience",
            self.data,
            f"run.{run_id}.experience",
            **{"x-max-length": EXPERIENCE_MAX_LENGTH, "x-overflow": "drop-head"},
        )

    def samples(self, run_id: int) -> QueueSpec:
        return self._transient(
            run_id,
            "samples",
            self.data,
            f"run.{run_id}.samples",
            **{"x-max-length": SAMPLES_MAX_LENGTH, "x-overflow": "drop-head"},
        )

    def credit(self, run_id: int) -> QueueSpec:
        return self._transient(
            run_id,
            "credit",
            self.data,
            f"run.{run_id}.credit",
            **{"x-max-length": 16, "x-overflow": "drop-head"},
        )

    def weights(self, run_id: int, worker: int) -> QueueSpec:
        """Each rollout worker's own weights queue holds only the newest version."""
        return self._transient(
            run_id,
            f"weights.{worker}",
            self.data,
            f"run.{run_id}.weights",
            **NEWEST_ONLY,
        )

    def evaluate(self, run_id: int) -> QueueSpec:
        """The run's evaluator takes the newest evaluation request only: one it could not
        start before a newer came is superseded, never queued behind it."""
        return self._transient(
            run_id,
            "evaluate",
            self.data,
            f"run.{run_id}.evaluate",
            **NEWEST_ONLY,
        )

    def resume(self, run_id: int) -> QueueSpec:
        """The learner state a resumed run starts from: durable, so it waits for the
        trainer across a broker restart; gone a day after the run stops using it."""
        return QueueSpec(
            name=f"{self.prefix}.run.{run_id}.resume",
            exchange=self.data,
            routing_keys=(f"run.{run_id}.resume",),
            durable=True,
            arguments={"x-expires": RESUME_EXPIRES_MS},
            binary=True,
        )

    # ---- routing keys --------------------------------------------------------------------

    @staticmethod
    def event_key(run_id: int, kind: str) -> str:
        return f"run.{run_id}.{kind}"

    @staticmethod
    def data_key(run_id: int, kind: str) -> str:
        return f"run.{run_id}.{kind}"

    @staticmethod
    def stop_key(run_id: int) -> str:
        return f"run.{run_id}.stop"
