"""Starting an actor as a separate process (distributed mode) or as a thread (embedded
mode), behind one small handle the agent supervises."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from actors.agent.forked import CapturedStderr, ForkedChild, can_fork, preload
from actors.roles.base import error_text
from schemas.messages import RunSpec

log = logging.getLogger("runt.agent")


@dataclass
class ActorId:
    role: str
    run_id: int
    worker: int = 0
    incarnation: int = 0

    def __str__(self) -> str:
        return f"{self.role}-{self.run_id}-{self.worker}.{self.incarnation}"


def runner_args(ident: ActorId, agent: str, work_dir: str) -> list[str]:
    """The arguments of `python -m actors.agent.runner` for one actor."""
    return [
        "--role",
        ident.role,
        "--worker",
        str(ident.worker),
        "--incarnation",
        str(ident.incarnation),
        "--agent",
        agent,
        "--work-dir",
        work_dir,
    ]


class ProcessChild(CapturedStderr):
    """An actor in its own Python process: `python -m actors.agent.runner`, spec on stdin,
    broker settings from the environment (never on the command line)."""

    def __init__(
        self, ident: ActorId, spec: RunSpec, agent: str, env: dict[str, str], work_dir: str
    ):
        super().__init__()
        self.ident = ident
        command = [
            sys.executable,
            "-m",
            "actors.agent.runner",
            *runner_args(ident, agent, work_dir),
        ]
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stderr=self._stderr, env=env
        )
        self.proc.stdin.write(spec.model_dump_json().encode())
        self.proc.stdin.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        if self.alive():
            log.warning("%s: last output before SIGTERM: %s", self.ident, self.tail())
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()

    def reap(self) -> None:
        self.proc.wait()
        self._stderr.close()


@dataclass
class ThreadChild:
    """An actor as a thread of this process (embedded mode): same actor code, in-process
    broker. Terminating sets its stop event; a thread cannot be killed, only asked."""

    ident: ActorId
    target: Callable[[threading.Event], None]
    stop_event: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name=str(self.ident), daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.target(self.stop_event)
        except BaseException as exc:
            self.failure = exc

    pid = None

    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def exit_code(self) -> int | None:
        if self.alive():
            return None
        return 1 if self.failure else 0

    def error(self) -> str:
        return error_text(self.failure) if self.failure else "exited"

    def terminate(self) -> None:
        self.stop_event.set()

    kill = terminate

    def reap(self) -> None:
        self.thread.join(timeout=1)


class ProcessLauncher:
    """Actor processes of one agent. `work_dir` (default: a temporary directory the agent
    removes when it exits) holds what a restarted actor continues from: the trainer's
    local checkpoint, `run-<id>/trainer.safetensors`."""

    def __init__(
        self,
        agent: str,
        env: dict[str, str] | None = None,
        work_dir: str | None = None,
        *,
        fork: bool | None = None,
    ):
        self.agent = agent
        self.owns_work_dir = work_dir is None
        self.work_dir = work_dir or tempfile.mkdtemp(prefix=f"runt-{agent}-")
        self.env = dict(os.environ if env is None else env)
        # Make `python -m actors.agent.runner` importable from a source checkout too.
        root = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, self.env.get("PYTHONPATH", "")) if p
        )

        # Actors are forked from this process once it has imported what they need
        # (actors/agent/forked.py), so none pays for those imports itself.
        self.fork = can_fork() if fork is None else fork
        if self.fork:
            preload()

    def launch(self, ident: ActorId, spec: RunSpec) -> ProcessChild | ForkedChild:
        if self.fork:
            argv = runner_args(ident, self.agent, self.work_dir)
            return ForkedChild(str(ident), ident.role, argv, spec, self.env)
        return ProcessChild(ident, spec, self.agent, self.env, self.work_dir)


class ThreadLauncher:
    def __init__(self, agent: str, make_bus: Callable[[str], object], topology):
        self.agent = agent
        self.make_bus = make_bus
        self.topology = topology

    def launch(self, ident: ActorId, spec: RunSpec) -> ThreadChild:
        from actors.roles.factory import make_actor

        def target(stop_event: threading.Event) -> None:
            from actors.threads import single_threaded

            single_threaded()  # torch's count is per thread: here, not only in main
            actor = make_actor(
                ident.role,
                spec,
                self.make_bus(str(ident)),
                self.topology,
                worker=ident.worker,
                incarnation=ident.incarnation,
                stop_event=stop_event,
                agent=self.agent,
            )
            actor.run()

        return ThreadChild(ident, target)
