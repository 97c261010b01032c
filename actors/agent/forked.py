"""Actor processes forked from a warm agent.

A fresh `python -m actors.agent.runner` imports torch, gymnasium and the algorithms before
it does anything, and a run starts several actors at once. An agent that has imported them
once (`preload`) forks each actor instead: the child starts with all of it in memory,
shared copy-on-write, and runs `actors.agent.runner.main` with the same arguments, run spec
on stdin and environment as the exec'd process would.

Fork safety: the agent is one thread; it has imported torch but never run an operation,
so no torch thread pool exists yet (the child sets its own thread count). The agent's
broker connections are not the child's: broker/sync.py closes the child's copies of
their sockets at fork without a word to the broker. The child leaves with `os._exit`,
so nothing of the agent's state is torn down twice.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from schemas.messages import RunSpec

log = logging.getLogger("runt.agent")


def preload() -> None:
    """Import, once in the agent, what every actor process imports."""
    # torch._dynamo is what torch imports on a learner's first optimiser, and it is slow.
    for module in ("actors.roles.factory", "actors.agent.runner", "torch._dynamo"):
        importlib.import_module(module)


def can_fork() -> bool:
    return hasattr(os, "fork")


class CapturedStderr:
    """What every actor process handle shares: the child's stderr, kept in a temporary
    file, from which the agent reports why it died."""

    exit_code: int | None

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child

    def error(self) -> str:
        """The last line the child wrote to stderr that names an error."""
        lines = self._stderr_lines()
        for line in reversed(lines):
            if "Error" in line or "Exception" in line:
                return line.strip()[:1000]
        return lines[-1][:1000] if lines else f"exit code {self.exit_code}"

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self._stderr_lines()[-lines:])

    def _stderr_lines(self) -> list[str]:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip().splitlines()


class ForkedChild(CapturedStderr):
    """One actor process forked from this one; the agent supervises it by its pid, as a
    direct child (the same handle as `actors.agent.launch.ProcessChild`)."""

    def __init__(self, label: str, role: str, argv: list[str], spec: RunSpec, env: dict[str, str]):
        super().__init__()
        self.label = label  # for the agent's log: the actor's id
        self.process_name = f"runt-{role}"  # what ps and top show (at most 15 characters)
        self._status: int | None = None  # waitpid's, once it has exited
        read_end, write_end = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # else the child would write them again
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:
            os.close(write_end)
            self._run_child(argv, read_end, env)  # never returns
        os.close(read_end)
        self.pid = pid
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(spec.model_dump_json().encode())
        except BrokenPipeError:  # it died at once; supervision sees the exit
            pass

    def _run_child(self, argv: list[str], stdin_fd: int, env: dict[str, str]) -> None:
        code = 1
        try:
            os.dup2(stdin_fd, 0)
            os.close(stdin_fd)
            os.dup2(self._stderr.fileno(), 2)
            sys.stdin = os.fdopen(0, "r", closefd=False)
            os.environ.clear()
            os.environ.update(env)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the agent's is not ours
            with contextlib.suppress(OSError):
                Path("/proc/self/comm").write_text(self.process_name[:15])
            from actors.agent.runner import main

            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            from actors.agent.runner import exit_now

            exit_now(code)

    def _poll(self) -> int | None:
        if self._status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == self.pid:
                    self._status = status
        return self._status

    def alive(self) -> bool:
        return self._poll() is None

    @property
    def exit_code(self) -> int | None:
        """As subprocess has it: the exit status, or -N after signal N."""
        status = self._poll()
        return None if status is None else os.waitstatus_to_exitcode(status)

    def _signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        if self.alive():
            log.warning("%s: last output before SIGTERM: %s", self.label, self.tail())
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def reap(self) -> None:
        if self._status is None:
            with contextlib.suppress(ChildProcessError):
                self._status = os.waitpid(self.pid, 0)[1]
        self._stderr.close()
