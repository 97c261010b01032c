"""Helpers shared by the training benchmarks in bench/ (not a benchmark itself).

The preset is read when a benchmark runs, so a retuned configs/dqn_cartpole.yaml is
what gets measured; broker prefixes are fresh per trial and deleted afterwards; child
processes are ended by their own pid, with SIGKILL as the last resort.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from broker.topology import Topology  # noqa: E402

DEFAULT_PRESET = REPO / "configs" / "dqn_cartpole.yaml"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def load_preset(path: str | Path = DEFAULT_PRESET) -> dict[str, Any]:
    """The training preset as POST /train/ takes it (a YAML mapping)."""
    preset = yaml.safe_load(Path(path).read_text())
    if not isinstance(preset, dict):
        raise SystemExit(f"{path}: expected a YAML mapping of POST /train/ fields")
    return preset


def fresh_prefix(kind: str) -> str:
    return f"bench{kind}{uuid.uuid4().hex[:8]}"


def run_queue_names(topology: Topology, run_id: int, workers: int) -> list[str]:
    """The transient queues of one run (they would expire by themselves after 10 min)."""
    specs = [topology.experience(run_id), topology.samples(run_id), topology.credit(run_id)]
    specs += [topology.weights(run_id, worker) for worker in range(workers)]
    return [spec.name for spec in specs]


def delete_prefix(url: str, prefix: str, run_queues: Iterable[str] = ()) -> None:
    """Delete every queue and exchange a benchmark prefix may have left on the broker:
    the shared durable queues, the named run queues and the four exchanges. (Stop
    listeners and event taps are exclusive and went with their connections.)"""
    from kombu import Connection

    from broker import memory

    topology = Topology(prefix)
    names = [topology.agent_work().name, topology.event_log().name]
    names += [topology.dead_letters().name, *run_queues]
    transport = memory.Transport if url.startswith("memory://") else None
    with Connection(url, transport=transport, connect_timeout=5) as conn:
        for name in names:
            channel = conn.channel()  # a failed delete closes its channel: one each
            try:
                channel.queue_delete(name)
            except Exception as exc:  # a missing queue is fine
                if "NOT_FOUND" not in str(exc):
                    print(f"warning: could not delete queue {name}: {exc}", file=sys.stderr)
            finally:
                _close_quietly(channel)
        for exchange in topology.exchanges:
            channel = conn.channel()
            try:
                channel.exchange_delete(exchange.name)
            except Exception as exc:
                if "NOT_FOUND" not in str(exc):
                    print(f"warning: could not delete {exchange.name}: {exc}", file=sys.stderr)
            finally:
                _close_quietly(channel)


def _close_quietly(channel: Any) -> None:
    with contextlib.suppress(Exception):  # already closed by the broker
        channel.close()


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (an agent's actor processes), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # field 4 (ppid) follows the parenthesised command name, which may hold spaces
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def end_process(proc: subprocess.Popen, grace: float = 10.0, extra_pids: Sequence[int] = ()):
    """SIGTERM `proc` (and `extra_pids`, e.g. its children), wait `grace` seconds, then
    SIGKILL whatever of them is still alive."""
    pids = [p for p in extra_pids if pid_alive(p)]
    if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not any(pid_alive(p) for p in pids):
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    proc.wait()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, from /proc/<pid>/stat."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so cleanup code runs for both."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def drop_database(url: str) -> None:
    """Drop the database `url` names, on its server (MySQL/MariaDB)."""
    from sqlalchemy import create_engine, make_url, text

    parsed = make_url(url)
    server = create_engine(parsed.set(database=""))
    try:
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    finally:
        server.dispose()


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
