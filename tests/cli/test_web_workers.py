"""`runt web` with several worker processes on one port (`cli/workers.py`), on the real
RabbitMQ and MariaDB: every worker answers, every live stream sees every stored event
whichever worker serves it, events are stored once, a worker that dies is replaced, and
SIGTERM ends them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import aiohttp
import pytest

from broker.topology import Topology
from schemas.config import DatabaseConfig
from schemas.messages import EpisodeFinished, StatusChanged
from tests.conftest import PASSWORD, drop_mysql_database, login, mysql_database_url
from tests.services import (
    add_user,
    child_pids,
    delete_topology,
    free_port,
    port_open,
    read_events,
    zombie,
)
from web.db.migrate import upgrade
from web.events.live import decode_notice, encode_notice

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mysql]

WORKERS = 2


def test_a_notice_carries_the_stored_events_as_received():
    events = [
        StatusChanged(run_id=3, status="running", actor="test"),
        EpisodeFinished(run_id=3, worker=1, seq=7, reward=2.5, length=9),
    ]
    decoded = decode_notice(encode_notice([event.encode() for event in events]))
    assert decoded == events


def worker_pids(pid: int) -> set[int]:
    """The web workers of `runt web` process `pid` (its children but multiprocessing's
    resource tracker)."""
    found = set()
    for child in child_pids(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                if b"spawn_main" in cmdline.read():
                    found.add(child)
        except FileNotFoundError:
            pass  # gone meanwhile
    return found


@pytest.fixture
async def service(mysql_server, amqp_url):
    """`runt web` with WORKERS workers, its own database and broker prefix."""
    name = f"runt_workers_{uuid.uuid4().hex[:10]}"
    db_url = mysql_database_url(mysql_server, name)
    upgrade(DatabaseConfig(url=db_url))
    add_user(db_url, "trainer")
    prefix = f"wrk{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dict(
        os.environ,
        RUNT_DATABASE_URL=db_url,
        RUNT_BROKER_URL=amqp_url,
        RUNT_BROKER_PREFIX=prefix,
        RUNT_SECRET_KEY="workers-test-secret-key-0123456789",
        RUNT_WEB_WORKERS=str(WORKERS),
        # Longer than any test here: a kept answer is fresh only if the notices refresh it.
        RUNT_API_READ_CACHE_SECONDS="60",
        RUNT_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "web", "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (port_open(port) and len(worker_pids(proc.pid)) == WORKERS):
            assert proc.poll() is None, "runt web exited"
            assert time.monotonic() < deadline, "runt web did not listen within 60 s"
            await asyncio.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        await every_worker_answers(url, deadline)
        yield proc, url, Topology(prefix), amqp_url
    finally:
        for pid in child_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        delete_topology(amqp_url, Topology(prefix))
        drop_mysql_database(mysql_server, name)


async def auth_headers(url: str) -> dict[str, str]:
    async with aiohttp.ClientSession(base_url=url) as session:
        return {"Authorization": f"Bearer {await login(session, 'trainer')}"}


def publish_episodes(amqp_url: str, topology: Topology, run_id: int, copies: int = 1) -> None:
    """Episodes 0..2 of worker 0, as a rollout worker reports them, each `copies` times."""
    from kombu import Connection, Exchange, Producer

    with Connection(amqp_url) as conn:
        producer = Producer(conn.channel(), Exchange(topology.events.name, "topic"))
        for seq in range(3):
            event = EpisodeFinished(run_id=run_id, worker=0, seq=seq, reward=seq, length=5)
            for _ in range(copies):
                producer.publish(
                    event.encode(),
                    routing_key=topology.event_key(run_id, event.type),
                    content_type="application/json",
                    delivery_mode=2,
                )


async def every_worker_answers(url: str, deadline: float) -> None:
    """Wait until each worker listens: the port opens with the first one, and the kernel
    gives new connections only to the workers listening already."""
    headers = await auth_headers(url)
    seen: set[int] = set()
    while seen != set(range(WORKERS)):
        assert time.monotonic() < deadline, f"only workers {sorted(seen)} answered within 60 s"
        session, worker = await one_connection(url, headers)
        await session.close()
        seen.add(worker)
        await asyncio.sleep(0.05)


async def one_connection(url: str, headers: dict) -> tuple[aiohttp.ClientSession, int]:
    """A session on a single kept-alive connection, and the worker that serves it."""
    session = aiohttp.ClientSession(
        base_url=url, headers=headers, connector=aiohttp.TCPConnector(limit=1)
    )
    async with session.get("/metrics") as resp:
        assert resp.status == 200
        return session, (await resp.json())["data"]["worker"]


async def test_every_worker_streams_every_stored_event_once(service):
    _, url, topology, amqp_url = service
    headers = await auth_headers(url)
    async with aiohttp.ClientSession(base_url=url) as session:
        async with session.post(
            "/train/",
            json={"algorithm": "dqn", "target_episode": 10},
            headers={**headers, "X-Requested-With": "test"},
        ) as resp:
            assert resp.status == 201
            run_id = (await resp.json())["id"]

    # The kernel spreads new connections over the workers: open some until each worker
    # serves a stream.
    streams: dict[int, list] = {}
    sessions = []
    try:
        for _ in range(40):
            session, worker = await one_connection(url, headers)
            sessions.append(session)
            resp = await session.get(f"/models/{run_id}/events")
            assert (await resp.content.readline()).startswith(b": connected")
            streams.setdefault(worker, []).append(resp)
            if len(streams) == WORKERS:
                break
        assert sorted(streams) == list(range(WORKERS)), "a worker never took a connection"

        publish_episodes(amqp_url, topology, run_id, copies=2)  # delivered twice: stored once
        for worker, responses in streams.items():
            for resp in responses:
                # A stream shows what each stored batch held; a redelivered copy may
                # show too. The record below holds each episode once.
                seen: set[int] = set()
                while seen != {0, 1, 2}:
                    got = await asyncio.wait_for(read_events(resp, 1), timeout=15)
                    seen.add(got[0][1]["seq"])
                    assert got[0][1]["run_id"] == run_id, f"worker {worker}"

        async with aiohttp.ClientSession(base_url=url, headers=headers) as session:
            async with session.get(f"/models/{run_id}/train-data/") as resp:
                rows = (await resp.json())["data"]["train_data"]
        assert [row["episode"] for row in rows] == [1, 2, 3]
    finally:
        for session in sessions:
            await session.close()


async def test_a_dead_worker_is_replaced_and_sigterm_ends_them_all(service):
    proc, url, _, _ = service
    victim = max(worker_pids(proc.pid))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = worker_pids(proc.pid)
        if victim not in now and len(now) == WORKERS:
            break
        assert time.monotonic() < deadline, f"no new worker: {now}"
        await asyncio.sleep(0.2)
    async with aiohttp.ClientSession(base_url=url) as session:
        await login(session, "trainer")  # the service answers

    workers = worker_pids(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_workers_end_when_the_main_process_is_killed(service):
    proc, _, _, _ = service
    workers = worker_pids(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20
    for pid in workers:
        while os.path.exists(f"/proc/{pid}") and not zombie(pid):
            assert time.monotonic() < deadline, f"worker {pid} outlived its main process"
            await asyncio.sleep(0.2)


@pytest.fixture
async def per_worker(service):
    """A logged-in single-connection session on each worker: {worker: session}."""
    url = service[1]
    headers = await auth_headers(url)
    by_worker: dict[int, aiohttp.ClientSession] = {}
    opened: list[aiohttp.ClientSession] = []
    try:
        for _ in range(40):
            session, worker = await one_connection(url, headers)
            opened.append(session)
            by_worker.setdefault(worker, session)
            if len(by_worker) == WORKERS:
                break
        assert len(by_worker) == WORKERS, f"only workers {sorted(by_worker)} took a connection"
        yield by_worker
    finally:
        for session in opened:
            await session.close()


async def test_failed_logins_are_counted_across_workers(per_worker):
    async def attempt(worker: int, password: str) -> int:
        body = {"username": "trainer", "password": password}
        async with per_worker[worker].post("/login/", json=body) as resp:
            return resp.status

    # The default allows 5 failures per window: 3 through one worker, 2 through the
    # other, and then the right password is refused by either.
    for worker in (0, 0, 0, 1, 1):
        assert await attempt(worker, "wrong-password") == 401
    assert await attempt(1, PASSWORD) == 429
    assert await attempt(0, PASSWORD) == 429


async def until(read, check, seconds: float = 15.0):
    """`await read()` again until `check(answer)`; the last answer."""
    deadline = time.monotonic() + seconds
    while not check(answer := await read()):
        assert time.monotonic() < deadline, f"still {answer}"
        await asyncio.sleep(0.1)
    return answer


async def test_every_worker_answers_from_memory_until_a_change_is_stored(service, per_worker):
    """Answers are kept for 60 s here: only the notices of stored changes, heard by
    every worker, can make the workers' answers follow the data."""
    _, _, topology, amqp_url = service

    async def get(worker: int, path: str) -> dict:
        async with per_worker[worker].get(path) as resp:
            assert resp.status == 200
            return (await resp.json())["data"]

    async def listed(worker: int) -> dict[int, str]:
        return {m["id"]: m["status"] for m in (await get(worker, "/models/"))["models"]}

    for worker in per_worker:  # each keeps the empty list
        assert await listed(worker) == {}
        hits = (await get(worker, "/metrics"))["reads"]["hits"]
        assert await listed(worker) == {}
        assert (await get(worker, "/metrics"))["reads"]["hits"] == hits + 1

    # A run created through worker 1 shows on worker 1 at once, on worker 0 soon.
    write = {"X-Requested-With": "test"}
    body = {"algorithm": "dqn", "target_episode": 10}
    async with per_worker[1].post("/train/", json=body, headers=write) as resp:
        assert resp.status == 201
        run_id = (await resp.json())["id"]
    assert await listed(1) == {run_id: "queued"}
    await until(lambda: listed(0), lambda runs: runs == {run_id: "queued"})

    # Episodes stored by the event log (worker 0) reach both workers' pages.
    page = f"/models/{run_id}/train-data/"
    for worker in per_worker:
        assert (await get(worker, page))["total"] == 0
    publish_episodes(amqp_url, topology, run_id)
    for worker in per_worker:
        data = await until(lambda w=worker: get(w, page), lambda d: d["total"] == 3)
        assert [row["episode"] for row in data["train_data"]] == [1, 2, 3]

    # A stop through worker 0 shows on worker 1.
    async with per_worker[0].post("/stop-train/", json={"model_id": run_id}, headers=write) as r:
        assert r.status == 200
    await until(lambda: listed(1), lambda runs: runs == {run_id: "stopped"})
