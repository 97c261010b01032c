"""Poison messages on the real RabbitMQ: a malformed body, an unknown schema_version, an
oversized body and a message that keeps failing each end in the dead-letter queue after
a bounded number of tries, are counted, and never stop the consumer: a good message
published after them is still processed. Covers the web service's event log (on SQLite
and MariaDB), GET /metrics, and an agent's command consumer.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from sqlalchemy import select

from actors.agent.agent import Agent
from actors.agent.launch import ThreadChild
from broker.abc import Delivery, OversizedMessage, check_size
from broker.topology import DELIVERY_LIMIT, Topology
from schemas.api import TrainRequest
from schemas.messages import EpisodesFinished, RunSpec, StartRun
from tests.broker.helpers import Env, collect_dead_letters, opened, until
from tests.conftest import Api, login
from web.app import init_app
from web.db import store
from web.db.tables import TrainingData
from web.events.eventlog import EventLog

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]
LIMIT = 8192  # bytes a consumer here accepts; the default is 64 MiB
RUN = {"algorithm": "dqn", "target_episode": 1000, "env_id": "CartPole-v1", "seed": 3}


@pytest.fixture
async def env(amqp_url):
    async with opened(amqp_url) as env:
        yield env


def episodes(run_id: int, first_seq: int, count: int = 3, length: int = 10) -> EpisodesFinished:
    return EpisodesFinished(
        run_id=run_id,
        worker=0,
        first_seq=first_seq,
        rewards=[float(i) for i in range(count)],
        lengths=[length] * count,
        env_steps=[0] * count,
        policy_versions=[0] * count,
    )


def poison_bodies(good: EpisodesFinished) -> dict[str, bytes]:
    """Each kind of poison, as the raw body an event publisher could send."""
    as_dict = json.loads(good.encode())
    return {
        "malformed": b'{"type": "episodes", "run_id": ',
        "unknown schema_version": json.dumps({**as_dict, "schema_version": 99}).encode(),
        "oversized": json.dumps({**as_dict, "event_id": "x" * 60, "pad": "y" * LIMIT}).encode(),
        # Valid JSON and a valid event, but the database cannot store a length this large.
        "keeps failing": episodes(good.run_id, 500, length=2**70).encode(),
    }


KINDS = {
    "malformed": "malformed",
    "unknown schema_version": "malformed",
    "oversized": "oversized",
    "keeps failing": "failing",
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_the_event_log_dead_letters_poison_and_carries_on(
    env: Env, database, make_user, kind: str
):
    owner = make_user("alice")
    model_id = database.call(lambda s: _new_model(s, owner))
    inspector, dead = collect_dead_letters(env)
    web = env.async_bus(batch_retry_delay=0.01, max_message_bytes=LIMIT)
    log = EventLog(database, web, env.topology, max_wait=0.05)
    await log.start()
    actor = env.bus("rollout")
    actor.publish_message(env.topology.events, f"run.{model_id}.episodes", episodes(model_id, 0))
    body = poison_bodies(episodes(model_id, 100))[kind]
    actor.publish(env.topology.events, f"run.{model_id}.episodes", body, persistent=True)
    actor.publish_message(env.topology.events, f"run.{model_id}.episodes", episodes(model_id, 3))

    await until(lambda: dead, inspector, timeout=30)
    assert dead[0].body == body
    assert dead[0].routing_key == f"run.{model_id}.episodes"
    await until(lambda: stored_episodes(database, model_id) == 6, timeout=10)
    counted = KINDS[kind]
    assert web.counts["dead_lettered"] == web.counts[f"dead_lettered.{counted}"] == 1
    if counted == "failing":  # tried DELIVERY_LIMIT times, the last one dead-letters it
        assert web.counts["retried"] == DELIVERY_LIMIT - 1
    else:  # never retried
        assert web.counts["retried"] == 0

    # ...and the consumer is still there for the next one.
    actor.publish_message(env.topology.events, f"run.{model_id}.episodes", episodes(model_id, 6))
    await until(lambda: stored_episodes(database, model_id) == 9, timeout=10)
    assert len(dead) == 1


def _new_model(session, owner: int) -> int:
    return store.create_model(session, owner, TrainRequest(**RUN), seed=1).id


def stored_episodes(database, model_id: int) -> int:
    rows = database.call(
        lambda s: s.scalars(select(TrainingData.episode).where(TrainingData.model_id == model_id))
    )
    return len(list(rows))


# ---- GET /metrics ----------------------------------------------------------------------------


@pytest.fixture
def amqp_config(config, env: Env):
    """The app on the real broker, under the test's own prefix."""
    return config.model_copy(
        update={
            "broker": config.broker.model_copy(
                update={"url": env.url, "prefix": env.topology.prefix}
            )
        }
    )


async def test_metrics_count_what_the_event_log_rejected(
    aiohttp_client, amqp_config, make_user, env: Env
):
    app = init_app(amqp_config)
    client = await aiohttp_client(app)
    # The app declares the shared queues under the test's prefix: delete them afterwards.
    env.async_bus().declared.update({env.topology.event_log().name, env.topology.agent_work().name})
    make_user("alice")
    alice = Api(client, await login(client, "alice"))
    status, body = await alice.post("/train/", json=RUN)
    assert status == 201, body
    model_id = body["id"]
    actor = env.bus("rollout")
    key = f"run.{model_id}.episodes"
    actor.publish(env.topology.events, key, b"not json at all", persistent=True)
    actor.publish_message(env.topology.events, key, episodes(model_id, 0))

    async def current_episode() -> int:
        return (await alice.get(f"/models/{model_id}/"))[1]["data"]["current_episode"]

    for _ in range(100):
        if await current_episode() == 3:
            break
        await asyncio.sleep(0.1)
    assert await current_episode() == 3
    for _ in range(50):  # the dead letter reaches its queue a moment after the reject
        status, body = await alice.get("/metrics")
        assert status == 200, body
        data = body["data"]
        if data["dead_letter_queue"]:
            break
        await asyncio.sleep(0.1)
    assert data["consumers"]["dead_lettered"] == data["consumers"]["dead_lettered.malformed"] == 1
    assert data["event_log"]["episode"] == 3
    assert data["dead_letter_queue"] == 1
    # The counters need a session, like everything but /login/ and /healthz.
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401


# ---- an agent's command consumer ---------------------------------------------------------------


class RecordingLauncher:
    """Launches nothing real: each actor is a thread waiting to be stopped. Starting run
    666 always fails, as a machine that cannot start it would."""

    def __init__(self):
        self.launched: list[tuple[str, int]] = []

    def launch(self, ident, spec: RunSpec) -> ThreadChild:
        if spec.run_id == 666:
            raise RuntimeError("cannot start run 666 here")
        self.launched.append((ident.role, spec.run_id))
        return ThreadChild(ident, lambda stop: stop.wait())


def spec(run_id: int) -> RunSpec:
    return RunSpec(
        run_id=run_id, algorithm="dqn", env_id="CartPole-v1", learning_rate=1e-3,
        batch_size=32, buffer_size=1000, gamma=0.99, seed=1, num_workers=0, target_episode=5,
    )  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
async def test_an_agent_dead_letters_poison_commands_and_carries_on(env: Env, kind: str):
    t = env.topology
    inspector, dead = collect_dead_letters(env)
    launcher = RecordingLauncher()
    bus = env.bus("agent")
    bus.max_message_bytes = LIMIT
    agent = Agent(bus, t, launcher, name="agent-poison")
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert agent.started.wait(10)
        good = json.loads(StartRun(spec=spec(7)).encode())
        body = {
            "malformed": b"\x80\x04not a command",
            "unknown schema_version": json.dumps({**good, "schema_version": 2}).encode(),
            "oversized": json.dumps({**good, "pad": "z" * LIMIT}).encode(),
            "keeps failing": StartRun(spec=spec(666)).encode(),
        }[kind]
        publisher = env.bus("web")
        publisher.publish(t.commands, "run.start", body, persistent=True)
        publisher.publish_message(t.commands, "run.start", StartRun(spec=spec(7)))
        await until(lambda: dead, inspector, timeout=30)
        await until(lambda: ("trainer", 7) in launcher.launched, timeout=10)
    finally:
        stop.set()
        runner.join(10)
    assert dead[0].body == body and dead[0].routing_key == "run.start"
    counted = KINDS[kind]
    assert bus.counts["dead_lettered"] == bus.counts[f"dead_lettered.{counted}"] == 1
    assert bus.counts["retried"] == (DELIVERY_LIMIT - 1 if counted == "failing" else 0)
    assert sorted(launcher.launched) == [("buffer", 7), ("evaluator", 7), ("trainer", 7)]


def test_only_commands_and_events_have_a_size_limit():
    """A resumed run's learner state is a large binary frame on a durable queue: it must
    not be taken for an oversized event."""
    t = Topology("limits")
    big = Delivery(body=b"x" * (LIMIT + 1), routing_key="", headers={}, redelivered=False,
                   content_type=None)  # fmt: skip
    for spec in (t.event_log(), t.agent_work()):
        with pytest.raises(OversizedMessage):
            check_size(big, spec, LIMIT)
    for spec in (t.resume(1), t.experience(1), t.weights(1, 0)):
        check_size(big, spec, LIMIT)
