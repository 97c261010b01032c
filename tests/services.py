"""Processes and servers the tests of every layer start: free ports, waiting for a
process to listen, stopping it, `runt agent` and `runt web` processes, the children of a
process, a live event stream read, a broker prefix's queues deleted, a user added to a
test's own database.

Also RabbitMQ and MariaDB servers of a test's own, which it may stop, restart or kill: the
shared servers on 5672/3306 serve every other test running at the same time, so fault
tests start their own here, on free ports, with their data in a temporary directory, and
always kill them afterwards (the process group of each, so no Erlang or MariaDB process
outlives the session). A missing server binary skips, or fails under
RUNT_REQUIRE_SERVICES=1 (tests/conftest.py `service_missing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kombu
import pytest

from broker.topology import Topology
from schemas.config import DatabaseConfig
from tests.conftest import PASSWORD, cached_hash, service_missing
from web.db import store
from web.db.engine import Database

REPO = Path(__file__).resolve().parents[1]
RABBITMQ_SERVER = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until_healthy(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    """Until `proc` listens on `port`; fails if it exits first or takes over `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        if port_open(port):
            return
        time.sleep(0.1)
    raise AssertionError("the web service did not start")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def child_pids(pid: int) -> set[int]:
    """Processes whose parent is `pid` (the agent's actor processes)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def zombie(pid: int) -> bool:
    """Whether process `pid` has ended but its parent has not reaped it yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return False


async def read_events(resp, count: int) -> list[tuple[str, dict]]:
    """The next `count` events of a live stream (server-sent events): (event, data)."""
    events, kind = [], None
    while len(events) < count:
        line = (await resp.content.readline()).decode().strip()
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def delete_topology(url: str, topology: Topology) -> None:
    """Remove the durable queues and exchanges a test prefix left behind."""
    with kombu.Connection(url) as conn:
        channel = conn.channel()
        for queue in (topology.agent_work(), topology.event_log(), topology.dead_letters()):
            channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            channel.exchange_delete(exchange.name)


def add_user(db_url: str, username: str) -> None:
    """A user with the tests' PASSWORD in the (migrated) database at `db_url`."""
    database = Database(DatabaseConfig(url=db_url))
    database.call(store.add_user, username, cached_hash(PASSWORD))
    database.close()


class Agents:
    """Agent processes started as `runt agent` would be."""

    def __init__(self, amqp_url: str, prefix: str, db_url: str):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
        self.env.update(
            RUNT_BROKER_URL=amqp_url,
            RUNT_BROKER_PREFIX=prefix,
            RUNT_DATABASE_URL=db_url,
            RUNT_LOG_FORMAT="text",
            PYTHONPATH=str(REPO),
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.amqp_url, self.work_queue = amqp_url, Topology(prefix).agent_work().name

    def wait_consuming(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` agents consume the work queue (an agent imports torch and the
        algorithms before it does, to fork its actors warm)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with kombu.Connection(self.amqp_url) as conn:
                try:
                    consumers = conn.channel().queue_declare(self.work_queue, passive=True)[2]
                except conn.channel_errors:  # not declared yet
                    consumers = 0
            if consumers >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} agents consuming after {timeout:g} s")

    def start(self, name: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "agent", "--name", name], env=self.env
        )
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


class WebProcess:
    """`runt web` as its own process, so that it can be killed."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "web", "--port", str(self.port)], env=self.env
        )
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            assert self.proc.poll() is None, "runt web exited"
            assert time.monotonic() < deadline, "runt web did not listen within 60 s"
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def find_binary(*candidates: str) -> str | None:
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


class PrivateServer:
    """A server process in a session (process group) of its own."""

    name = "server"

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        self.starts += 1
        log = open(self.base / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.kill()
                raise RuntimeError(f"private {self.name} did not start: {tail}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        path = self.base / f"{self.name}-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL if it does not end in time."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        while port_open(self.port):  # wait until the port is free for the next start
            time.sleep(0.1)
        self.proc = None

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


class PrivateRabbitMQ(PrivateServer):
    """A RabbitMQ node of its own: node name, ports, Erlang cookie, database and logs."""

    name = "rabbitmq"

    def __init__(self, base: Path, binary: str):
        super().__init__(base)
        self.binary = binary
        self.dist_port = free_port()
        self.node = f"runt-fault-{os.getpid()}-{self.port}@localhost"
        (base / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        (base / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        return [self.binary]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.base),  # its own Erlang cookie
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.base / "rabbitmq.pid"),
        )
        return env

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=0)
            return True
        except Exception:
            return False


class PrivateMariaDB(PrivateServer):
    """A mariadbd of its own on a fresh data directory, without grant tables (root, no
    password: only this machine's tests reach it, on 127.0.0.1)."""

    name = "mariadb"

    def __init__(self, base: Path, server: str, install: str):
        super().__init__(base)
        self.server = server
        self.datadir = base / "data"
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [install, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", *user],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        user = ["--user=root"] if os.geteuid() == 0 else []
        return [
            self.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.base / 'mariadb.sock'}",
            f"--pid-file={self.base / 'mariadb.pid'}",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            *user,
        ]


@pytest.fixture(scope="session")
def private_rabbitmq(tmp_path_factory):
    binary = find_binary(*RABBITMQ_SERVER)
    if binary is None:
        service_missing("rabbitmq-server not installed: no private RabbitMQ for fault tests")
    server = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), binary)
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def private_mariadb(tmp_path_factory):
    binary = find_binary("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
    install = find_binary("mariadb-install-db", "mysql_install_db")
    if binary is None or install is None:
        service_missing("mariadbd/mariadb-install-db not installed: no private MariaDB")
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"), binary, install)
    try:
        server.start()
        yield server
    finally:
        server.kill()
