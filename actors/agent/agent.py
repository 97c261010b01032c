"""The agent: takes run commands from the shared work queue, starts the actors of a run
and watches over them until they exit.

`Agent` lists what it does with each command and with an actor that dies; the roles and
the faults it handles are described in docs/architecture.md and docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from actors.agent.launch import ActorId
from actors.roles.base import Every
from broker.abc import Declined
from broker.topology import Topology
from schemas.messages import (
    BadMessage,
    Heartbeat,
    RunSpec,
    SpawnActor,
    StartRun,
    StatusChanged,
    StopRun,
    decode_message,
)

log = logging.getLogger("runt.agent")
STOPPED_MEMORY_S = 3600.0  # how long a stopped run's id is remembered (late spawns ignored)


@dataclass
class Supervised:
    ident: ActorId
    spec: RunSpec
    child: object
    restarts: int = 0
    deadline: float | None = None  # set when the run is stopping
    terminated_at: float | None = None


class Agent:
    """Takes commands and supervises the actors it started.

    - `run.start`: launch the run's trainer, buffer and evaluator here and ask, with one
      `actor.spawn` per rollout worker, for the workers; any agent may take those, so a
      run's workers spread over every agent on the broker.
    - `actor.spawn`: launch one rollout worker here. An agent that already hosts a worker
      of the run hands a spawn back once (requeue), so another agent may take it.
    - `run.<id>.stop` (every agent hears every stop): the run's actors here get `stop_grace`
      seconds to finish by themselves, then SIGTERM, then SIGKILL.
    - A rollout worker or an evaluator that dies is started again as a new incarnation,
      up to `max_restarts` times. A trainer killed by a signal (kill -9, the OOM
      killer) is started again too and continues from the checkpoint it keeps in this
      agent's work directory (weights, optimiser, counters). Any other trainer or buffer that
      dies fails the run (one that raised has reported its error as the failure itself), and
      the agent stops the run's other actors.
    - Every `heartbeat_seconds` it sends a `heartbeat` event for each run it hosts actors
      of; the web service fails a running run whose heartbeats stop (web/events/supervise.py).
      Its actors leave when the agent dies (actors/agent/runner.py), so none is left orphaned.
    - A `run.start` of a run it already hosts is ignored (the web service sends the start
      of a run again when it stayed queued).
    """

    def __init__(
        self,
        bus,
        topology: Topology,
        launcher,
        *,
        name: str | None = None,
        max_restarts: int = 3,
        stop_grace: float = 3.0,
        kill_grace: float = 1.0,
        heartbeat_seconds: float = 2.0,
    ):
        self.bus = bus
        self.topology = topology
        self.launcher = launcher
        self.name = name or f"agent-{uuid.uuid4().hex[:6]}"
        self.max_restarts = max_restarts
        self.stop_grace = stop_grace
        self.kill_grace = kill_grace
        self.children: list[Supervised] = []
        self.stopped_runs: dict[int, float] = {}
        self.started = threading.Event()
        self.heartbeat_due = Every(heartbeat_seconds)

    # ---- main loop ---------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        self.bus.connect()
        work = self.topology.agent_work()
        stops = self.topology.stop_listener(f"{self.name}.{uuid.uuid4().hex[:6]}")
        self.bus.declare(work, stops)
        self.bus.consume(stops, self.on_stop, prefetch=50)
        self.bus.consume(work, self.on_command, prefetch=1)
        self.started.set()
        log.info("agent %s waiting for runs", self.name)
        try:
            while not stop_event.is_set():
                self.bus.poll(0.2)
                try:
                    self.supervise()
                    if self.heartbeat_due():
                        self.send_heartbeats()
                except Exception:  # a bug here must not orphan every actor of this agent
                    log.exception("supervising failed; carrying on")
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for entry in self.children:
            entry.child.terminate()
        deadline = time.monotonic() + self.stop_grace
        while any(e.child.alive() for e in self.children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for entry in self.children:
            entry.child.kill()
            entry.child.reap()
        self.children.clear()
        self.bus.close()
        work_dir = getattr(self.launcher, "work_dir", None)
        if work_dir and getattr(self.launcher, "owns_work_dir", False):
            shutil.rmtree(work_dir, ignore_errors=True)

    # ---- commands ------------------------------------------------------------------------------

    def on_command(self, delivery) -> None:
        command = decode_message(delivery.body)
        if isinstance(command, StartRun):
            self.start_run(command.spec)
        elif isinstance(command, SpawnActor):
            if not delivery.redelivered and self.hosts_rollout_of(command.spec.run_id):
                # Offer it to the other agents first; if it comes back, take it.
                raise Declined(f"already hosting a worker of run {command.spec.run_id}")
            self.spawn(command)
        else:
            raise BadMessage(f"{command.type} is not an agent command")

    def start_run(self, spec: RunSpec) -> None:
        if spec.run_id in self.stopped_runs:
            log.info("run %d was stopped before it started; not starting it", spec.run_id)
            return
        if any(e.ident.run_id == spec.run_id and e.ident.role == "trainer" for e in self.children):
            log.info("run %d already runs here; ignoring its start", spec.run_id)
            return
        self.launch(ActorId("trainer", spec.run_id), spec)
        self.launch(ActorId("buffer", spec.run_id), spec)
        self.launch(ActorId("evaluator", spec.run_id), spec)
        for worker in range(spec.num_workers):
            self.bus.publish_message(
                self.topology.commands,
                "actor.spawn",
                SpawnActor(spec=spec, role="rollout", worker=worker),
            )
        self.report(spec.run_id, "running", f"started by {self.name}")

    def spawn(self, command: SpawnActor) -> None:
        if command.spec.run_id in self.stopped_runs:
            return
        ident = ActorId(command.role, command.spec.run_id, command.worker, command.incarnation)
        self.launch(ident, command.spec)

    def hosts_rollout_of(self, run_id: int) -> bool:
        return any(e.ident.run_id == run_id and e.ident.role == "rollout" for e in self.children)

    def on_stop(self, delivery) -> None:
        command = decode_message(delivery.body)
        if not isinstance(command, StopRun):
            raise BadMessage(f"{command.type} on a stop queue")
        self.stopped_runs[command.run_id] = time.monotonic()
        deadline = time.monotonic() + self.stop_grace
        for entry in self.children:
            if entry.ident.run_id == command.run_id and entry.deadline is None:
                entry.deadline = deadline

    # ---- supervision ---------------------------------------------------------------------------

    def launch(self, ident: ActorId, spec: RunSpec, restarts: int = 0) -> None:
        first = not any(e.ident.run_id == ident.run_id for e in self.children)
        child = self.launcher.launch(ident, spec)
        log.info("launched %s (pid %s)", ident, getattr(child, "pid", None))
        self.children.append(Supervised(ident, spec, child, restarts))
        if first:  # vouch for a new run at once, not only at the next beat
            self.heartbeat_due.last = 0.0

    def supervise(self) -> None:
        now = time.monotonic()
        for entry in list(self.children):
            if not entry.child.alive():
                self.children.remove(entry)
                self.on_exit(entry)
                entry.child.reap()
            elif entry.deadline is not None and now > entry.deadline:
                self.enforce_stop(entry, now)
        cutoff = now - STOPPED_MEMORY_S
        self.stopped_runs = {r: t for r, t in self.stopped_runs.items() if t > cutoff}

    def enforce_stop(self, entry: Supervised, now: float) -> None:
        if entry.terminated_at is None:
            log.warning("%s did not stop in time; terminating it", entry.ident)
            entry.child.terminate()
            entry.terminated_at = now
        elif now > entry.terminated_at + self.kill_grace:
            log.warning("%s ignored SIGTERM; killing it", entry.ident)
            entry.child.kill()

    def on_exit(self, entry: Supervised) -> None:
        run_id, code = entry.ident.run_id, entry.child.exit_code
        if code == 0 or run_id in self.stopped_runs:
            log.info("%s exited (%s)", entry.ident, code)
            if code == 0 and entry.ident.role == "trainer":
                self.forget_run_files(run_id)
            return
        error = entry.child.error() if code is None or code >= 0 else killed_by(code)
        if self.restartable(entry, code) and entry.restarts < self.max_restarts:
            ident = ActorId(
                entry.ident.role, run_id, entry.ident.worker, entry.ident.incarnation + 1
            )
            log.warning("%s died (%s); restarting it as %s", entry.ident, error, ident)
            self.launch(ident, entry.spec, entry.restarts + 1)
            self.report(run_id, "running", f"{entry.ident} died ({error}); restarted as {ident}")
            return
        reason = f"{entry.ident} failed: {error}"
        log.error("run %d failed: %s", run_id, reason)
        self.report(run_id, "failed", reason)
        self.bus.publish_message(
            self.topology.commands,
            self.topology.stop_key(run_id),
            StopRun(run_id=run_id, status="failed", reason=reason),
        )
        self.stopped_runs[run_id] = time.monotonic()

    @staticmethod
    def restartable(entry: Supervised, code: int | None) -> bool:
        """A rollout worker or an evaluator (neither holds state worth keeping) is
        restarted whatever ended it. A trainer only when a signal
        killed it (one that raised has failed the run and stopped it already); it goes on
        from its local checkpoint, and its weights carry its incarnation, so the workers
        (and, on-policy, the segment assembler) follow its versions. A buffer is not
        restarted: empty, it would wait for more experience than workers send before
        the learner moves on."""
        if entry.ident.role in ("rollout", "evaluator"):
            return True
        return entry.ident.role == "trainer" and code is not None and code < 0

    def forget_run_files(self, run_id: int) -> None:
        """The trainer's local checkpoint of a run that ended here is no longer needed."""
        work_dir = getattr(self.launcher, "work_dir", None)
        if work_dir:
            shutil.rmtree(Path(work_dir) / f"run-{run_id}", ignore_errors=True)

    def send_heartbeats(self) -> None:
        """One heartbeat per run this agent hosts actors of. Transient: a lost one is
        followed by the next, and the agent must not wait for the broker."""
        runs = {e.ident.run_id for e in self.children} - set(self.stopped_runs)
        for run_id in sorted(runs):
            beat = Heartbeat(
                run_id=run_id, actor=self.name, host=socket.gethostname(), pid=os.getpid()
            )
            self.bus.publish_message(
                self.topology.events,
                self.topology.event_key(run_id, "heartbeat"),
                beat,
                persistent=False,
            )

    def report(self, run_id: int, status: str, reason: str) -> None:
        self.bus.publish_message(
            self.topology.events,
            self.topology.event_key(run_id, "status"),
            StatusChanged(run_id=run_id, status=status, reason=reason, actor=self.name),
        )


def killed_by(code: int) -> str:
    """What ended a child that exit code -N says a signal ended."""
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
