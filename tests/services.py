"""Private RabbitMQ and MariaDB servers that a test owns and may stop, restart or kill.

The shared servers on 5672/3306 serve every other test running at the same time, so
fault tests never touch them: they start servers of their own here, on free ports, with
their data in a temporary directory, and always kill them afterwards (the process group
of each, so no Erlang or MariaDB process outlives the session). A missing server binary
skips, or fails under RUNT_REQUIRE_SERVICES=1 (tests/conftest.py `service_missing`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import service_missing

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
