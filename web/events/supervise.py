"""The web service's watch over runs it cannot see directly.

- A running run whose agent sent no heartbeat for `supervision.heartbeat_timeout_seconds`
  is failed with the reason, and a stop command ends what is left of it on other agents.
- A run still `queued` after `supervision.start_retry_seconds` gets its `run.start` again
  (the web service may have died before publishing it, or the command was lost).

Both judge from what the event log has stored, so both wait while the database or the
broker is away, and for a timeout after either comes back (heartbeats held in the queue
meanwhile are stored first). See docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from broker.abc import BrokerUnavailable
from schemas.config import SupervisionConfig
from schemas.messages import ResumeFrom, RunSpec, StartRun, StopRun
from web.db import store
from web.db.tables import Checkpoint, Heartbeat, Model, StatusChange, utcnow

log = logging.getLogger("runt.supervise")


def fail_silent_runs(db: DbSession, timeout: float) -> list[tuple[int, str]]:
    """Fail running runs with an agent silent for `timeout` s; [(run id, reason)]."""
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout)
    silent: dict[int, tuple[str, float]] = {}
    stale = db.execute(
        select(Heartbeat.model_id, Heartbeat.agent, Heartbeat.last_seen)
        .join(Model, Model.id == Heartbeat.model_id)
        .where(Model.status == "running", Heartbeat.last_seen < cutoff)
    ).all()
    for run_id, agent, last_seen in stale:
        silent.setdefault(run_id, (f"agent {agent}", (now - last_seen).total_seconds()))
    # A running run no agent ever vouched for: judged from when it last changed status.
    unheard = db.execute(
        select(Model.id, func.max(StatusChange.create_time))
        .join(StatusChange, StatusChange.model_id == Model.id)
        .where(Model.status == "running", ~Model.id.in_(select(Heartbeat.model_id)))
        .group_by(Model.id)
        .having(func.max(StatusChange.create_time) < cutoff)
    ).all()
    for run_id, since in unheard:
        silent.setdefault(run_id, ("no agent", (now - since).total_seconds()))
    failed = []
    for run_id, (who, age) in sorted(silent.items()):
        model = db.scalar(select(Model).where(Model.id == run_id).with_for_update())
        if model is None or model.status != "running":
            continue
        reason = f"{who} stopped sending heartbeats for {age:.0f} s"
        if who == "no agent":
            reason = f"no agent has sent heartbeats for the run for {age:.0f} s"
        store.set_status(db, model, "failed", reason)
        failed.append((run_id, reason))
    return failed


def stale_queued_runs(db: DbSession, older_than: float) -> list[RunSpec]:
    """The specs of runs still queued `older_than` s after they were stored."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    models = db.scalars(select(Model).where(Model.status == "queued", Model.create_time < cutoff))
    specs = []
    for model in models:
        resume = None
        if model.resume_from is not None:
            env_steps = db.scalar(
                select(Checkpoint.env_steps).where(
                    Checkpoint.model_id == model.resume_from,
                    Checkpoint.version == model.resume_version,
                )
            )
            resume = ResumeFrom(
                model_id=model.resume_from, version=model.resume_version, env_steps=env_steps or 0
            )
        specs.append(store.run_spec(model, resume))
    return specs


class Supervisor:
    def __init__(
        self, db, broker, topology, eventlog, config: SupervisionConfig, changed, every=1.0
    ):
        self.db = db
        self.broker = broker
        self.topology = topology
        self.eventlog = eventlog
        self.config = config
        self.every = every
        self.changed = changed  # LiveFeed.changed: tells every web process of a failed run
        self.connected_since: float | None = None
        self.restarted: dict[int, float] = {}  # run id -> when its start was sent again

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.check()
            except Exception:  # the database or the broker away: judge again later
                log.warning("supervising runs failed; trying again", exc_info=True)

    def settled_for(self) -> float:
        """Seconds the event log has been storing what the broker brings."""
        now = time.monotonic()
        if not self.broker.connected:
            self.connected_since = None
            return 0.0
        if self.connected_since is None:
            self.connected_since = now
        healthy = self.eventlog.healthy_since
        return 0.0 if healthy is None else now - max(healthy, self.connected_since)

    async def check(self) -> None:
        settled = self.settled_for()
        if settled >= self.config.heartbeat_timeout_seconds:
            for run_id, reason in await self.db.run(
                fail_silent_runs, self.config.heartbeat_timeout_seconds
            ):
                log.error("run %d failed: %s", run_id, reason)
                self.changed(run_id, "failed", reason)
                await self.publish_stop(run_id, reason)
        if settled >= min(self.config.start_retry_seconds, self.config.heartbeat_timeout_seconds):
            await self.restart_queued()

    async def publish_stop(self, run_id: int, reason: str) -> None:
        command = StopRun(run_id=run_id, status="failed", reason=reason)
        try:
            await self.broker.publish_message(
                self.topology.commands, self.topology.stop_key(run_id), command
            )
        except BrokerUnavailable:
            log.warning("could not send the stop of failed run %d", run_id)

    async def restart_queued(self) -> None:
        retry = self.config.start_retry_seconds
        now = time.monotonic()
        self.restarted = {r: t for r, t in self.restarted.items() if now - t < retry}
        for spec in await self.db.run(stale_queued_runs, retry):
            if spec.run_id in self.restarted:
                continue
            log.warning(
                "run %d still queued after %g s: sending its start again", spec.run_id, retry
            )
            await self.broker.declare(self.topology.agent_work())
            await self.broker.publish_message(
                self.topology.commands, "run.start", StartRun(spec=spec)
            )
            self.restarted[spec.run_id] = now
