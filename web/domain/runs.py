"""Training runs: submitting one (checked, stored, then handed to the agents), resuming
one from another run's newest checkpoint, stopping one, and finding a user's own run.

A submitted run goes on without the web service: `submit` returns once the start
command is on the broker. Every status stored here is announced at once to this
process's read cache and to every process's live streams.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from actors.algorithms.validate import check_spec
from broker.abc import BrokerUnavailable
from broker.aio import AsyncBroker
from broker.codec import encode_frame
from broker.topology import Topology
from schemas import api
from schemas.messages import ResumeFrom, ResumeHeader, StartRun, StopRun
from web.db import store
from web.db.engine import Database
from web.db.tables import Model
from web.domain.errors import Conflict, Invalid, NotFound, Unavailable
from web.events.live import LiveFeed
from web.events.readcache import ReadCache

NO_SUCH_MODEL = "no such model"


@dataclass(frozen=True)
class Resume:
    """Where a new run starts from, and the learner state it starts with."""

    point: ResumeFrom
    weights: bytes


@dataclass(frozen=True)
class Runs:
    """The rules of runs over the database and the broker; one per web process."""

    db: Database
    broker: AsyncBroker
    topology: Topology
    reads: ReadCache
    live: LiveFeed
    allowed_modules: Sequence[str]  # what a custom network may import

    def changed(self, run_id: int, status: str, reason: str | None = None) -> None:
        """After storing a run's status here: this process's cached reads go at once, the
        other processes' (and every live stream) hear it from the notice."""
        self.reads.runs_changed([run_id])
        self.live.changed(run_id, status, reason)

    # ---- a user's own runs ---------------------------------------------------------------

    async def status(self, owner: int, run_id: int) -> str:
        """The run's status; NotFound unless `owner` owns it."""
        status = await self.db.run(store.model_status, owner, run_id)
        if status is None:
            raise NotFound("model_id", NO_SUCH_MODEL)
        return status

    async def detail(self, owner: int, run_id: int) -> dict:
        detail = await self.db.run(store.model_detail, owner, run_id)
        if detail is None:
            raise NotFound("model_id", NO_SUCH_MODEL)
        return detail

    async def checkpoint(
        self, owner: int, run_id: int, version: int | None, version_field: str = "version"
    ) -> store.CheckpointRef:
        """The run's newest checkpoint, or version `version` of it (named `version_field`
        in the request). NotFound for another user's run or a missing version; Conflict
        while the run has none."""
        ref = await self.db.run(store.find_checkpoint, owner, run_id, version)
        if ref is None:
            raise NotFound("model_id", NO_SUCH_MODEL)
        if ref.version is None:
            if version is not None:
                raise NotFound(version_field, f"the run has no checkpoint {version}")
            raise Conflict("model_id", "the run has no checkpoint yet")
        return ref

    # ---- submitting ----------------------------------------------------------------------

    async def submit(self, owner: int, body: api.TrainRequest) -> Model:
        """Check and store the run, then ask the agents to start it (status `queued`).
        If the broker cannot take the command, the run is stored as failed and the
        answer is Unavailable."""
        seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        try:
            # Making the environment may take a while: not on the event loop.
            config = await asyncio.to_thread(
                check_spec, store.spec_of(body, run_id=0, seed=seed), self.allowed_modules
            )
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise Invalid(field, message) from None
        resume = None
        if body.resume_from is not None:
            resume = await self.resume_point(owner, body, config.hidden)
        point = resume.point if resume else None
        model = await self.db.run(store.create_model, owner, body, seed, point)
        self.changed(model.id, model.status)
        try:
            await self._start(model, resume)
        except BrokerUnavailable as exc:
            reason = f"the broker was unreachable when the run was submitted ({exc})"
            await self.db.run(store.mark_failed, model.id, reason)
            self.changed(model.id, "failed", reason)
            raise Unavailable("broker", "unavailable; the run was not started") from None
        return model

    async def _start(self, model: Model, resume: Resume | None) -> None:
        work = self.topology.agent_work()
        if work.name not in self.broker.declared:
            # The durable work queue holds the command until an agent takes it, even if
            # no agent has ever run on this broker; without it the command is unroutable.
            await self.broker.declare(work)
        point = None
        if resume is not None:
            await self._publish_resume_state(model.id, resume)
            point = resume.point
        start = StartRun(spec=store.run_spec(model, point))
        await self.broker.publish_message(self.topology.commands, "run.start", start)

    async def resume_point(
        self, owner: int, body: api.TrainRequest, hidden: Sequence[int]
    ) -> Resume:
        """The newest checkpoint of `body.resume_from`, checked against the new run's
        algorithm and network (`hidden`: its hidden layer sizes)."""
        source = body.resume_from
        ref = await self.db.run(store.find_checkpoint, owner, source, None)
        if ref is None:
            raise NotFound("resume_from", NO_SUCH_MODEL)
        if ref.version is None:
            raise Conflict("resume_from", "that run has no checkpoint to resume from")
        meta, weights, env_steps = await self.db.run(store.checkpoint_blob, source, ref.version)
        if meta["algorithm"] != body.algorithm:
            message = f"its checkpoint is {meta['algorithm']}, not {body.algorithm}"
            raise Invalid("resume_from", message)
        network = meta["network"]
        described = None if body.policy is None else body.policy.model_dump(mode="json")
        if described != network.get("policy"):
            message = f"must match the checkpoint's network {network.get('policy')}"
            raise Invalid("policy", message)
        if network["architecture"] != "custom_q" and list(hidden) != list(network["hidden"]):
            message = f"must match the checkpoint's network {network['hidden']}"
            raise Invalid("hyperparameters.hidden", message)
        point = ResumeFrom(model_id=source, version=ref.version, env_steps=env_steps)
        return Resume(point, weights)

    async def _publish_resume_state(self, run_id: int, resume: Resume) -> None:
        """The learner state goes on the run's own durable resume queue, not in the start
        command: tensors stay out of control messages."""
        topology, point = self.topology, resume.point
        await self.broker.declare(topology.resume(run_id))
        header = ResumeHeader(run_id=run_id, version=point.version, env_steps=point.env_steps)
        frame = encode_frame(header, {"safetensors": np.frombuffer(resume.weights, dtype=np.uint8)})
        key = topology.data_key(run_id, "resume")
        await self.broker.publish(topology.data, key, frame, persistent=True)

    # ---- stopping ------------------------------------------------------------------------

    async def stop(self, owner: int, run_id: int) -> str:
        """Tell the run's actors to stop (they finish, checkpoint and exit), then mark it:
        the new status (`stopped` for a run not started yet, else `stopping`)."""
        status = await self.status(owner, run_id)
        if status not in api.ACTIVE_STATUSES:
            raise Conflict("model_id", f"the run has already ended ({status})")
        command = StopRun(run_id=run_id, status="stopped", reason="stopped by the user")
        try:
            key = self.topology.stop_key(run_id)
            await self.broker.publish_message(self.topology.commands, key, command)
        except BrokerUnavailable:
            raise Unavailable("broker", "unavailable; try again") from None
        result = await self.db.run(store.request_stop, owner, run_id)
        if result is None:  # cannot happen: ownership was checked and runs are never deleted
            raise NotFound("model_id", NO_SUCH_MODEL)
        status, changed = result
        if not changed:
            raise Conflict("model_id", f"the run has already ended ({status})")
        self.changed(run_id, status)
        return status
