"""runt as the deployment runs it: an agent process, the web app on a database of the
benchmark's own (or the broker directly), and the run's events read from tap queues."""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from benchlib import REPO, child_pids, delete_prefix, end_process, fresh_prefix, run_queue_names

from solve.common import PASSWORD, SOLVED_MEAN, USERNAME, Trial, runt_spec, train_body


class EventTap(threading.Thread):
    """Receives every `evaluation` and `status` event of a prefix on tap queues, with the
    time it arrived. The thread owns its Bus (a Bus belongs to one thread)."""

    def __init__(self, url: str, topology):
        super().__init__(name="event-tap", daemon=True)
        self.url, self.topology = url, topology
        self.events: queue.Queue = queue.Queue()
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from broker.sync import make_bus

        bus = make_bus(self.url, self.topology, "bench-tap")
        try:
            bus.connect()
            for kind in ("evaluation", "status"):
                tap = self.topology.event_tap(
                    f"bench-{kind}-{uuid.uuid4().hex[:6]}", f"run.*.{kind}"
                )
                bus.declare(tap)
                bus.consume(tap, self.on_event, prefetch=100)
            self.ready.set()
            while not self.stopping.is_set():
                bus.poll(0.02)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
        finally:
            bus.close()

    def on_event(self, delivery) -> None:
        from schemas.messages import decode_message

        self.events.put((time.monotonic(), decode_message(delivery.body)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def queue_consumers(url: str, name: str) -> int:
    """Consumers of a queue (0 if it does not exist yet)."""
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue=name, passive=True).consumer_count
        except Exception:  # NOT_FOUND until the agent declares it
            return 0


def start_agent(url: str, prefix: str, log, actor_nice: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
    env.update(
        RUNT_BROKER_URL=url,
        RUNT_BROKER_PREFIX=prefix,
        RUNT_AGENT_ACTOR_NICE=str(actor_nice),
        RUNT_LOG_FORMAT="text",
        RUNT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    command = [sys.executable, "-m", "cli.main", "agent", "--name", f"bench-{prefix}"]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


class WebSubmitter:
    """POST /train/ and /stop-train/ to the real app, served on a free local port."""

    def __init__(self, url: str, prefix: str, database_url: str):
        from schemas.config import load_config

        self.cfg = load_config(
            environ={},
            overrides={
                "secret_key": "bench-secret-key-0123456789abcdef",
                "database": {"url": database_url},
                "broker": {"url": url, "prefix": prefix},
                "log_level": "WARNING",
                "log_format": "text",
            },
        )
        self.runner = self.session = None

    async def start(self) -> None:
        import aiohttp
        from aiohttp import web

        from web.app import init_app

        self.runner = web.AppRunner(init_app(self.cfg), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.session = aiohttp.ClientSession(f"http://127.0.0.1:{port}")
        login = {"username": USERNAME, "password": PASSWORD}
        async with self.session.post("/login/", json=login) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"login: HTTP {resp.status}: {body}")
        self.session.headers["Authorization"] = f"Bearer {body['data']['token']}"

    async def submit(self, body: dict[str, Any]) -> int:
        async with self.session.post("/train/", json=body) as resp:
            answer = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"POST /train/: HTTP {resp.status}: {answer}")
            return int(answer["id"])

    async def stop(self, run_id: int) -> None:
        async with self.session.post("/stop-train/", json={"model_id": run_id}) as resp:
            await resp.read()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()


class BrokerSubmitter:
    """Publish StartRun / StopRun directly, as the web service would (no database)."""

    RUN_ID = 1

    def __init__(self, url: str, prefix: str, preset: dict[str, Any], num_workers: int | None):
        from broker.topology import Topology

        self.url, self.topology = url, Topology(prefix)
        self.preset, self.num_workers = preset, num_workers

    def _publish(self, key: str, message) -> None:
        from broker.sync import make_bus

        with make_bus(self.url, self.topology, "bench-submit") as bus:
            bus.declare(self.topology.agent_work())
            bus.publish_message(self.topology.commands, key, message)

    async def start(self) -> None:
        pass

    async def submit(self, body: dict[str, Any]) -> int:
        from schemas.messages import StartRun

        spec = runt_spec(self.preset, self.RUN_ID, body["seed"], self.num_workers)
        await asyncio.to_thread(self._publish, "run.start", StartRun(spec=spec))
        return self.RUN_ID

    async def stop(self, run_id: int) -> None:
        from schemas.messages import StopRun

        stop = StopRun(run_id=run_id, status="stopped", reason="benchmark time cap")
        await asyncio.to_thread(self._publish, self.topology.stop_key(run_id), stop)

    async def close(self) -> None:
        pass


async def follow_run(trial: Trial, tap: EventTap, submitted: float, cap: float, workers: int):
    """Read the run's events until it is solved, ends or reaches the time cap; returns
    True if the run is still going (so the caller stops it)."""
    from schemas.messages import EvaluationFinished, StatusChanged

    trainer_up, rollouts_up = None, set()
    while True:
        try:
            at, event = tap.events.get_nowait()
        except queue.Empty:
            if time.monotonic() - submitted > cap:
                trial.note = f"time cap {cap:g} s"
                return True
            await asyncio.sleep(0.02)
            continue
        if isinstance(event, EvaluationFinished):
            trial.record_eval(event.mean_return)
            if event.mean_return >= SOLVED_MEAN:
                trial.solved, trial.wall_s = True, at - submitted
                trial.env_steps = event.env_steps
                return False  # the trainer ends the run itself at stop_reward
        elif isinstance(event, StatusChanged):
            actor = event.actor or ""
            if event.status == "running" and actor.startswith("trainer-"):
                trainer_up = at
            elif event.status == "running" and actor.startswith("rollout-"):
                rollouts_up.add(actor.split("@")[0].rsplit(".", 1)[0])
            elif event.status in ("failed", "completed", "stopped"):
                trial.note = f"{event.status}: {event.reason}"[:120]
                return False
            if trial.startup_s is None and trainer_up and len(rollouts_up) >= workers:
                trial.startup_s = at - submitted  # the last of them just reported


async def run_runt_trial(
    args: argparse.Namespace,
    contender: str,
    preset: dict[str, Any],
    seed: int,
    database_url: str | None,
) -> Trial:
    from broker.topology import Topology

    trial = Trial(contender, seed)
    prefix = fresh_prefix("tts")
    topology = Topology(prefix)
    workers = args.num_workers or int(preset.get("num_workers", 1))
    tap = EventTap(args.broker, topology)
    agent: subprocess.Popen | None = None
    submitter: WebSubmitter | BrokerSubmitter | None = None
    run_id: int | None = None
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    try:
        tap.start()
        tap.ready.wait(30)
        if tap.error is not None:
            raise RuntimeError(f"event tap: {tap.error}")
        agent = start_agent(args.broker, prefix, log, args.actor_nice)
        deadline = time.monotonic() + 60
        work_queue = topology.agent_work().name
        while await asyncio.to_thread(queue_consumers, args.broker, work_queue) < 1:
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the agent did not start")
            await asyncio.sleep(0.1)
        if args.submit == "web":
            submitter = WebSubmitter(args.broker, prefix, database_url)
        else:
            submitter = BrokerSubmitter(args.broker, prefix, preset, args.num_workers)
        await submitter.start()
        submitted = time.monotonic()
        run_id = await submitter.submit(train_body(preset, seed, args.num_workers))
        still_running = await follow_run(trial, tap, submitted, args.time_cap, workers)
        if still_running:
            await submitter.stop(run_id)
            await asyncio.sleep(2)  # let the actors finish by themselves
    except Exception as exc:
        trial.note = f"error: {exc}"[:120]
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
        print(f"runt trial seed {seed} failed: {exc}\nagent log:\n" + "\n".join(tail))
    finally:
        if agent is not None:
            end_process(agent, grace=15.0, extra_pids=child_pids(agent.pid))
        if submitter is not None:
            await submitter.close()
        tap.stop()
        log.close()
        queues = run_queue_names(topology, run_id, workers) if run_id is not None else []
        delete_prefix(args.broker, prefix, queues)
    return trial


# ---- the database of --submit web --------------------------------------------------------------


def create_database(server_url: str) -> str:
    from sqlalchemy import make_url

    from schemas.config import DatabaseConfig
    from web.auth import hash_password
    from web.db import store
    from web.db.engine import Database
    from web.db.migrate import upgrade

    url = make_url(server_url).set(
        database=f"runt_bench_tts_{os.getpid()}", query={"charset": "utf8mb4"}
    )
    url_text = url.render_as_string(hide_password=False)
    upgrade(DatabaseConfig(url=url_text))
    db = Database(DatabaseConfig(url=url_text))
    try:
        db.call(store.add_user, USERNAME, hash_password(PASSWORD))
    finally:
        db.close()
    return url_text
