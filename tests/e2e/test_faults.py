"""Faults, on the real services: processes killed, RabbitMQ restarted, MariaDB stopped,
the web service restarted, an agent killed, a start command lost. Each run must end as
runt promises, and its training_data must hold exactly what the rollout workers sent:
episodes 1..N without gap or duplicate, and for each worker incarnation a contiguous
run of its sequence numbers from 0, all of which a broker tap saw it send.

Restarting or stopping a server happens on private ones (tests/services.py): the shared
servers carry other tests at the same time. Budgets are small DQN CartPole runs whose
policy stays poor (a tiny learning rate), so episodes stay short and come quickly.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import create_engine, select

from broker.topology import Topology
from schemas.config import DatabaseConfig
from schemas.messages import EpisodeFinished, StartRun, decode_message, expand_episodes
from tests.conftest import (
    AMQP_URL,
    MYSQL_URL,
    SECRET,
    Api,
    drop_mysql_database,
    login,
    make_config,
    mysql_database_url,
)
from tests.e2e.helpers import PPO_PRESET, PRESET, TERMINAL, actor_pids, all_episodes, wait_for
from tests.services import (  # noqa: F401 - private_mariadb, private_rabbitmq: fixtures
    Agents,
    WebProcess,
    add_user,
    child_pids,
    delete_topology,
    private_mariadb,
    private_rabbitmq,
    zombie,
)
from web.app import init_app
from web.db import store
from web.db.migrate import upgrade
from web.db.tables import Heartbeat as HeartbeatRow
from web.db.tables import TrainingData
from web.typedefs import EVENTLOG

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.mysql, pytest.mark.timeout(240)]

HEARTBEAT_TIMEOUT_S = 8
START_RETRY_S = 3
SUPERVISION = {
    "heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT_S,
    "start_retry_seconds": START_RETRY_S,
}
# A poor, fast-moving policy: ~20-step episodes, dozens per second.
RUN = {
    **PRESET,
    "num_workers": 2,
    "stop_reward": None,
    "learning_rate": 1e-5,
    "seed": 5,
    "target_episode": 1500,
    "hyperparameters": {
        **PRESET["hyperparameters"],
        "hidden": [32],
        "envs_per_worker": 2,
        # The trainer paces the run: 2 env steps an update keeps it long enough (a few
        # hundred episodes a second) for a fault to land mid-run and for a restarted actor
        # to take part before the run ends.
        "samples_per_insert": 32,
        "eval_interval_updates": 1_000_000,
    },
}


# ---- what the workers sent ------------------------------------------------------------


class SentEpisodes:
    """A durable queue of its own on the events exchange: every episode report of the
    test's runs, kept across a broker restart, read when the run is over."""

    def __init__(self, url: str, topology: Topology):
        self.url = url
        exchange = Exchange(topology.events.name, type="topic", durable=True)
        self.queue = Queue(
            f"{topology.prefix}.test.sent-episodes",
            exchange=exchange,
            routing_key="run.*.episodes",
            durable=True,
        )
        with Connection(url) as conn:
            self.queue(conn.channel()).declare()

    def collect(self, run_id: int) -> dict[tuple[int, int], list[int]]:
        """(worker, incarnation) -> the sequence numbers it sent, duplicates included."""
        sent: dict[tuple[int, int], list[int]] = defaultdict(list)
        with Connection(self.url) as conn:
            bound = self.queue(conn.channel())
            while (message := bound.get(no_ack=True)) is not None:
                for event in expand_episodes([decode_message(message.body)]):
                    if isinstance(event, EpisodeFinished) and event.run_id == run_id:
                        sent[(event.worker, event.incarnation)].append(event.seq)
        return dict(sent)

    def delete(self) -> None:
        with Connection(self.url) as conn:
            conn.channel().queue_delete(self.queue.name)


def heartbeat_stored(db_url: str, model_id: int) -> bool:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        found = conn.scalar(select(HeartbeatRow.agent).where(HeartbeatRow.model_id == model_id))
    engine.dispose()
    return found is not None


def stored_episodes(db_url: str, model_id: int) -> list[tuple[int, int, int, int]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                TrainingData.episode,
                TrainingData.worker,
                TrainingData.worker_incarnation,
                TrainingData.worker_seq,
            )
            .where(TrainingData.model_id == model_id)
            .order_by(TrainingData.episode)
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def assert_episodes_match(stack: Stack, model: dict, *, everything: bool) -> int:
    """training_data against what the workers sent. `everything`: every sent episode is
    stored (a run that ended before its target); otherwise the run reached its target and
    the event log stored the first `target_episode` to arrive. Returns N."""
    rows = stored_episodes(stack.db_url, model["id"])
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "episode numbers: gap or dup"
    assert len(rows) == model["current_episode"]
    stored: dict[tuple[int, int], list[int]] = defaultdict(list)
    for _, worker, incarnation, seq in rows:
        stored[(worker, incarnation)].append(seq)
    sent = stack.sent.collect(model["id"])
    for key, seqs in sent.items():  # a worker numbers its episodes without gaps
        assert set(seqs) == set(range(max(seqs) + 1)), f"worker {key} sent with gaps"
    for key, seqs in stored.items():
        assert sorted(seqs) == list(range(len(seqs))), f"worker {key}: stored {sorted(seqs)}"
        assert key in sent and len(seqs) <= len(set(sent[key])), f"worker {key}: not all sent"
    if everything:
        assert {k: sorted(v) for k, v in stored.items()} == {
            k: sorted(set(v)) for k, v in sent.items()
        }, "sent episodes missing from training_data"
    else:
        assert len(rows) == model["target_episode"]
    return len(rows)


# ---- the deployment under test -----------------------------------------------------------


@dataclass
class Stack:
    db_url: str
    amqp_url: str
    prefix: str
    agents: Agents
    api: Api
    sent: SentEpisodes
    web: WebProcess | None = None


@pytest.fixture
async def build(aiohttp_client):
    """Make a deployment on the given servers: a database and broker prefix of its own,
    agents (started by the test), the web service in this process or as a process."""
    cleanups: list = []

    async def _build(db_server: str, amqp_url: str, *, web_process: bool = False) -> Stack:
        prefix = f"flt{uuid.uuid4().hex[:8]}"
        name = f"runt_fault_{uuid.uuid4().hex[:10]}"
        db_url = mysql_database_url(db_server, name)
        upgrade(DatabaseConfig(url=db_url))
        cleanups.append(lambda: drop_mysql_database(db_server, name))
        cleanups.append(lambda: delete_topology(amqp_url, Topology(prefix)))
        add_user(db_url, "trainer")
        sent = SentEpisodes(amqp_url, Topology(prefix))
        cleanups.append(sent.delete)
        agents = Agents(amqp_url, prefix, db_url)
        agents.env["RUNT_SUPERVISION_HEARTBEAT_SECONDS"] = "1"
        cleanups.append(agents.stop_all)
        web = None
        if web_process:
            env = dict(agents.env, RUNT_SECRET_KEY=SECRET)
            env.update({f"RUNT_SUPERVISION_{k.upper()}": str(v) for k, v in SUPERVISION.items()})
            web = WebProcess(env)
            cleanups.append(web.kill)
            await web.start()
            session = aiohttp.ClientSession(base_url=web.url)
            cleanups.append(session.close)
            api = Api(session, await login(session, "trainer"))
        else:
            cfg = make_config(
                db_url, broker={"url": amqp_url, "prefix": prefix}, supervision=SUPERVISION
            )
            client = await aiohttp_client(init_app(cfg))
            cleanups.append(client.close)  # before the database goes
            api = Api(client, await login(client, "trainer"))
        return Stack(db_url, amqp_url, prefix, agents, api, sent, web)

    yield _build
    for cleanup in reversed(cleanups):
        try:
            result = cleanup()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:  # one failed cleanup must not leave the others undone
            print(f"cleanup failed: {exc!r}")


async def start_run(stack: Stack, **changes) -> int:
    status, body = await stack.api.post("/train/", json={**RUN, **changes})
    assert status == 201, body
    return body["id"]


async def history(stack: Stack, model_id: int) -> list[dict]:
    _, body = await stack.api.get(f"/models/{model_id}/")
    return body["data"]["status_history"]


async def until(predicate, timeout: float, what: str) -> float:
    """Wait for `predicate()`; returns the seconds it took."""
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - began


def running_with(n: int):
    return lambda m: m["status"] in TERMINAL or m["current_episode"] >= n


async def midway(stack: Stack, model_id: int, episodes: int) -> dict:
    """Wait until the run has `episodes` episodes; it must still be running (the fault
    comes in the middle of the run, not after it)."""
    model = await wait_for(stack.api, model_id, running_with(episodes), timeout=90, every=0.3)
    assert model["status"] == "running", model["status_history"]
    return model


# ---- 1. a rollout worker killed -----------------------------------------------------------


async def test_a_killed_rollout_worker_is_restarted_and_the_run_completes(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("solo")
    model_id = await start_run(stack, target_episode=1500)  # seconds after the restart
    await midway(stack, model_id, 150)
    victim = min(actor_pids(agent.pid, "rollout"))
    os.kill(victim, signal.SIGKILL)

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_history"]
    restarts = [
        h for h in model["status_history"] if "restarted as rollout-" in (h["reason"] or "")
    ]
    assert len(restarts) == 1, model["status_history"]
    assert "died (killed by SIGKILL)" in restarts[0]["reason"]
    assert assert_episodes_match(stack, model, everything=False) == 1500
    incarnations = {(w, i) for _, w, i, _ in stored_episodes(stack.db_url, model_id)}
    assert {i for _, i in incarnations} == {0, 1}, model["status_history"]


async def test_a_killed_evaluator_is_restarted_and_evaluations_go_on(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("solo")
    hyper = {**RUN["hyperparameters"], "eval_interval_updates": 100, "eval_episodes": 2}
    model_id = await start_run(stack, target_episode=100_000, hyperparameters=hyper)

    def evaluated(n: int):
        return lambda m: m["status"] in TERMINAL or len(m["evaluations"]) >= n

    model = await wait_for(stack.api, model_id, evaluated(2), timeout=90, every=0.3)
    assert model["status"] == "running", model["status_history"]
    (victim,) = actor_pids(agent.pid, "evaluator")
    os.kill(victim, signal.SIGKILL)

    def restarted(m) -> bool:
        reasons = [h["reason"] or "" for h in m["status_history"]]
        return any("restarted as evaluator-" in r for r in reasons)

    model = await wait_for(stack.api, model_id, restarted, timeout=30, every=0.3)
    last = max(e["env_steps"] for e in model["evaluations"])

    def evaluated_again(m) -> bool:  # the detail lists the 20 newest evaluations
        newer = [e for e in m["evaluations"] if e["env_steps"] > last]
        return m["status"] in TERMINAL or len(newer) >= 2

    model = await wait_for(stack.api, model_id, evaluated_again, timeout=60, every=0.3)
    assert model["status"] == "running", model["status_history"]
    assert actor_pids(agent.pid, "evaluator") - {victim}
    await stack.api.post("/stop-train/", json={"model_id": model_id})
    await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=30)


# ---- 2. the trainer killed ---------------------------------------------------------------

RESTORED = re.compile(
    r"restarted from its checkpoint: (\d+) updates, (\d+) env steps, (\d+) episodes, "
    r"policy version (\d+)"
)


async def test_a_killed_trainer_continues_from_its_checkpoint(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("solo")
    # Far enough that the run is still going when the trainer is killed.
    model_id = await start_run(stack, target_episode=10_000)
    before = await midway(stack, model_id, 300)
    await asyncio.sleep(4)  # a local checkpoint after learning started (every 3 s)
    _, body = await stack.api.get(f"/models/{model_id}/")
    assert body["data"]["status"] == "running", "the run ended before the fault"
    (victim,) = actor_pids(agent.pid, "trainer")
    os.kill(victim, signal.SIGKILL)

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_history"]
    reasons = [h["reason"] or "" for h in model["status_history"]]
    died = f"trainer-{model_id}-0.0 died (killed by SIGKILL); restarted as trainer-{model_id}-0.1"
    assert died in reasons, reasons
    found = [m for r in reasons if (m := RESTORED.search(r))]
    assert len(found) == 1, reasons
    restored = found[0]
    updates, env_steps, episodes, version = map(int, restored.groups())
    assert updates > 0 and env_steps > 0 and episodes >= before["current_episode"] // 2
    assert version == updates // RUN["hyperparameters"]["weights_publish_interval"]
    # It went on from there, not from zero: the run's last metrics count on from it.
    assert model["metrics"]["charts/updates"] > updates
    assert model["metrics"]["charts/env_steps"] > env_steps
    assert assert_episodes_match(stack, model, everything=False) == 10_000


async def test_a_killed_ppo_trainer_continues_and_its_workers_follow(build, mysql_server):
    """On-policy, the restored version is lower than the one the workers and the segment
    assembler had reached; the new trainer's incarnation (epoch) makes its versions win."""
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("solo")
    run = {
        **PPO_PRESET,
        "num_workers": 2,
        "stop_reward": None,
        "learning_rate": 1e-5,  # slow learning keeps episodes short and the run long enough
        "seed": 5,
        "target_episode": 5000,
        "hyperparameters": {**PPO_PRESET["hyperparameters"], "eval_interval_updates": 10_000},
    }
    status, body = await stack.api.post("/train/", json=run)
    assert status == 201, body
    model_id = body["id"]
    await midway(stack, model_id, 300)
    await asyncio.sleep(4)  # a local checkpoint after learning started (every 3 s)
    (victim,) = actor_pids(agent.pid, "trainer")
    os.kill(victim, signal.SIGKILL)

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_history"]
    reasons = [h["reason"] or "" for h in model["status_history"]]
    found = [m for r in reasons if (m := RESTORED.search(r))]
    assert len(found) == 1, reasons
    updates, _, _, version = map(int, found[0].groups())
    assert updates > 0 and version == updates  # PPO: one version per update
    assert model["metrics"]["charts/updates"] > updates  # it learned on after the restart
    assert assert_episodes_match(stack, model, everything=False) == 5000


async def test_a_killed_buffer_fails_the_run_with_the_reason(build, mysql_server):
    """An empty replay buffer would wait for more experience than the workers send
    before a newer policy, so a killed buffer is not restarted: the run fails, clearly."""
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("solo")
    model_id = await start_run(stack, target_episode=100_000)
    await midway(stack, model_id, 100)
    (victim,) = actor_pids(agent.pid, "buffer")
    os.kill(victim, signal.SIGKILL)

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=30)
    assert model["status"] == "failed"
    assert model["status_reason"] == f"buffer-{model_id}-0.0 failed: killed by SIGKILL", model
    await until(lambda: not child_pids(agent.pid), 10, "the run's other actors stop")
    assert_episodes_match(stack, model, everything=True)


# ---- 3. RabbitMQ restarted ---------------------------------------------------------------


async def test_everything_reconnects_after_a_rabbitmq_restart(
    build,
    mysql_server,
    private_rabbitmq,  # noqa: F811 - the fixture of tests/services.py
):
    stack = await build(MYSQL_URL, private_rabbitmq.url)
    agent = stack.agents.start("solo")
    model_id = await start_run(stack, target_episode=1000)
    await midway(stack, model_id, 150)
    private_rabbitmq.stop()
    await asyncio.sleep(2)
    private_rabbitmq.start()

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=180)
    assert model["status"] == "completed", model["status_history"]
    assert agent.poll() is None  # the agent lived through it
    assert assert_episodes_match(stack, model, everything=False) == 1000
    status, body = await stack.api.get("/healthz")
    assert status == 200, body


# ---- 4. MariaDB stopped for 20 s ---------------------------------------------------------


async def test_the_event_log_waits_out_a_database_outage(build, private_mariadb):  # noqa: F811
    stack = await build(private_mariadb.url, AMQP_URL)
    stack.agents.start("solo")
    model_id = await start_run(stack, target_episode=100_000)
    before = await midway(stack, model_id, 100)
    private_mariadb.stop()
    await asyncio.sleep(20)
    private_mariadb.start()

    after = await wait_for(
        stack.api, model_id, running_with(before["current_episode"] + 300), timeout=90
    )
    assert after["status"] == "running", after["status_history"]
    status, body = await stack.api.post("/stop-train/", json={"model_id": model_id})
    assert status == 200, body
    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=60)
    assert model["status"] == "stopped", model["status_history"]
    await asyncio.sleep(2)  # the workers' last reports, sent as they stopped
    model = (await stack.api.get(f"/models/{model_id}/"))[1]["data"]
    assert stack.api.client.server.app[EVENTLOG].counts["db_retries"] > 0
    assert assert_episodes_match(stack, model, everything=True) > after["current_episode"]


# ---- 5. the web service restarted --------------------------------------------------------


async def test_a_web_restart_leaves_the_run_alone(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL, web_process=True)
    stack.agents.start("solo")
    model_id = await start_run(stack, target_episode=1000)
    await midway(stack, model_id, 150)
    stack.web.kill()
    await asyncio.sleep(8)  # the run goes on; its events wait in the durable queue
    await stack.web.start()

    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_history"]
    assert assert_episodes_match(stack, model, everything=False) == 1000
    assert len(await all_episodes(stack.api, model_id)) == 1000


# ---- 6. an agent killed ------------------------------------------------------------------


async def test_a_killed_agent_fails_its_runs_and_leaves_no_actor_behind(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL)
    agent = stack.agents.start("doomed")
    model_id = await start_run(stack, target_episode=100_000)
    await midway(stack, model_id, 100)
    await until(lambda: heartbeat_stored(stack.db_url, model_id), 20, "a heartbeat is stored")
    actors = child_pids(agent.pid)
    assert len(actors) == 5  # trainer, buffer, evaluator and two rollout workers
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    killed_at = time.monotonic()

    def alive() -> set[int]:
        return {pid for pid in actors if Path(f"/proc/{pid}").exists() and not zombie(pid)}

    await until(lambda: not alive(), 5, "the killed agent's actors exit")
    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, 40, every=0.5)
    took = time.monotonic() - killed_at
    assert model["status"] == "failed"
    assert re.fullmatch(
        r"agent doomed stopped sending heartbeats for \d+ s", model["status_reason"]
    ), model["status_reason"]
    assert took < HEARTBEAT_TIMEOUT_S + 10, took
    assert model["status_history"][-1]["actor"] == "web"
    assert_episodes_match(stack, model, everything=True)


# ---- 7. a start command lost -------------------------------------------------------------


async def test_a_run_whose_start_was_lost_is_started_again_once(build, mysql_server):
    stack = await build(MYSQL_URL, AMQP_URL)
    model_id = await start_run(stack, target_episode=300)
    # As if the web service had died between storing the run and publishing its start.
    work = Topology(stack.prefix).agent_work()
    with Connection(stack.amqp_url) as conn:
        assert conn.channel().queue_purge(work.name) == 1
    agent = stack.agents.start("solo")
    model = await wait_for(stack.api, model_id, lambda m: m["status"] != "queued", 60, every=0.3)
    assert model["status"] in ("running", "completed"), model["status_history"]

    # A second start of the same run (a retry that crossed the agent's report) changes
    # nothing: still one trainer.
    _, body = await stack.api.get(f"/models/{model_id}/")
    spec = store.spec_of(_Fields(body["data"]), model_id, body["data"]["seed"])
    with Connection(stack.amqp_url) as conn:
        producer = conn.Producer()
        producer.publish(
            StartRun(spec=spec).encode(),
            exchange=Topology(stack.prefix).commands.name,
            routing_key="run.start",
            delivery_mode=2,
        )
    await asyncio.sleep(3)
    _, body = await stack.api.get(f"/models/{model_id}/")
    if body["data"]["status"] == "running":
        assert len(actor_pids(agent.pid, "trainer")) == 1, body["data"]["status_history"]
    model = await wait_for(stack.api, model_id, lambda m: m["status"] in TERMINAL, timeout=120)
    assert model["status"] == "completed", model["status_history"]
    starts = [h for h in model["status_history"] if (h["reason"] or "").startswith("started by")]
    assert len(starts) == 1, model["status_history"]
    assert_episodes_match(stack, model, everything=False)


class _Fields:
    """A model's API fields as attributes, for store.spec_of."""

    def __init__(self, data: dict):
        self.__dict__.update(data)
