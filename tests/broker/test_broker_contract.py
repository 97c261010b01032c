"""The broker contract of broker/sync.py and broker/aio.py: one suite, run unchanged
against the in-process transport (memory://) and the real RabbitMQ (amqp://).

Each test gets a broker of its own (the `env` fixture of tests/broker/conftest.py): a
topology with a `t<random>` prefix whose queues and exchanges are deleted afterwards, so
tests share the broker without seeing each other. The sync `Bus` plays the actors and
`AsyncBroker` the web service.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time

import numpy as np
import pytest
import torch

from broker.abc import BrokerUnavailable, Delivery
from broker.aio import AsyncBroker
from broker.codec import bytes_to_state, decode_frame, encode_frame, state_to_bytes
from broker.sync import Bus, make_bus
from broker.topology import DELIVERY_LIMIT, Topology
from schemas.messages import (
    EpisodeFinished,
    ExperienceHeader,
    RunSpec,
    SamplesHeader,
    StartRun,
    StopRun,
    WeightsHeader,
)
from tests.broker.helpers import Env, collect_dead_letters, opened, until
from tests.conftest import service_missing

pytestmark = pytest.mark.timeout(60)


async def drain(bus: Bus, seconds: float = 0.3) -> None:
    """Keep polling a little longer, to catch what should not arrive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.to_thread(bus.poll, 0.05)


def episode(seq: int, run_id: int = 1) -> EpisodeFinished:
    return EpisodeFinished(run_id=run_id, worker=0, seq=seq, reward=1.5 * seq, length=10)


SPEC = dict(algorithm="dqn", env_id="CartPole-v1", target_episode=10, seed=1, num_workers=1)
HYPER = dict(learning_rate=1e-3, batch_size=32, buffer_size=1000, gamma=0.99)


def spec(run_id: int) -> RunSpec:
    return RunSpec(run_id=run_id, **SPEC, **HYPER)


# ---- routing and the web <-> actor paths -------------------------------------------------------


async def test_topic_routing_separates_runs(env: Env):
    t, bus = env.topology, env.bus()
    got: dict[str, list[str]] = {"one": [], "two": []}
    bus.consume(t.event_tap("one", "run.1.*"), lambda d: got["one"].append(d.routing_key))
    bus.consume(t.event_tap("two", "run.2.*"), lambda d: got["two"].append(d.routing_key))
    for key in ("run.1.episode", "run.2.episode", "run.12.episode", "run.1.status", "run.1.a.b"):
        bus.publish(t.events, key, b"{}")
    await until(lambda: len(got["one"]) == 2 and len(got["two"]) == 1, bus)
    await drain(bus)
    assert sorted(got["one"]) == ["run.1.episode", "run.1.status"]
    assert got["two"] == ["run.2.episode"]


async def test_sync_publish_reaches_async_consumer(env: Env):
    """Actor -> web: an event published by an actor reaches the web's event log."""
    t = env.topology
    web, got = env.async_bus(), []

    async def on_event(delivery: Delivery) -> None:
        got.append((delivery.decode(), delivery.routing_key, delivery.content_type))

    await web.consume(t.event_log(), on_event)
    sent = episode(3)
    env.bus().publish_message(t.events, t.event_key(1, "episode"), sent)
    await until(lambda: got)
    assert got == [(sent, "run.1.episode", "application/json")]


async def test_async_publish_reaches_sync_consumer(env: Env):
    """Web -> actor: a stop command reaches the actors of its run only."""
    t, actor, got = env.topology, env.bus(), []
    actor.consume(t.stop_listener("trainer-7", run_id=7), lambda d: got.append(d.decode()))
    web = env.async_bus()
    await web.publish_message(t.commands, t.stop_key(8), StopRun(run_id=8))
    await web.publish_message(t.commands, t.stop_key(7), StopRun(run_id=7, reason="user"))
    await until(lambda: got, actor)
    await drain(actor)
    assert got == [StopRun(run_id=7, reason="user")]


async def test_persistent_command_is_delivered_to_one_agent_once(env: Env):
    t = env.topology
    agents = [env.bus("agent-a"), env.bus("agent-b")]
    got: list[StartRun] = []
    for agent in agents:
        agent.consume(t.agent_work(), lambda d: got.append(d.decode()), prefetch=1)
    await env.async_bus().publish_message(t.commands, "run.start", StartRun(spec=spec(5)))
    await until(lambda: got, agents[0])
    for agent in agents:
        await drain(agent)
    assert got == [StartRun(spec=spec(5))]


# ---- bounded queues and binary frames ----------------------------------------------------------


async def test_weights_queue_delivers_only_the_newest(env: Env):
    t, bus = env.topology, env.bus("rollout-0")
    bus.declare(t.weights(1, worker=0))
    for version in range(4):
        frame = encode_frame(WeightsHeader(run_id=1, version=version), {})
        bus.publish(t.data, t.data_key(1, "weights"), frame)
    versions = []
    bus.consume(t.weights(1, worker=0), lambda d: versions.append(decode_frame(d.body)[0].version))
    await until(lambda: versions, bus)
    await drain(bus)
    assert versions == [3]


async def test_binary_frames_survive_the_trip(env: Env):
    t = env.topology
    arrays = {
        "obs": np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32),
        "action": np.arange(64, dtype=np.int64),
        "terminated": np.arange(64) % 7 == 0,
    }
    header = ExperienceHeader(run_id=3, worker=1, policy_version=9, env_steps=640)
    web, got = env.async_bus(), []

    async def on_frame(delivery: Delivery) -> None:
        got.append(decode_frame(delivery.body))

    await web.consume(t.experience(3), on_frame)
    env.bus().publish(t.data, t.data_key(3, "experience"), encode_frame(header, arrays))
    await until(lambda: got)
    assert got[0][0] == header
    for name, array in arrays.items():
        np.testing.assert_array_equal(got[0][1][name], array)

    # and the other way: weights as safetensors inside a frame, web -> actor
    state = {"layer.weight": torch.randn(8, 4), "layer.bias": torch.zeros(8)}
    blob = np.frombuffer(state_to_bytes(state), dtype=np.uint8)
    frame = encode_frame(WeightsHeader(run_id=3, version=2), {"safetensors": blob})
    actor, states = env.bus("rollout-1"), []
    actor.consume(
        t.weights(3, worker=1),
        lambda d: states.append(bytes_to_state(decode_frame(d.body)[1]["safetensors"])),
    )
    await web.publish(t.data, t.data_key(3, "weights"), frame, persistent=False)
    await until(lambda: states, actor)
    assert states[0].keys() == state.keys()
    assert all(torch.equal(states[0][k], state[k]) for k in state)


# ---- failures: dead letters and redelivery -----------------------------------------------------


async def test_bad_messages_are_dead_lettered_and_the_consumers_carry_on(env: Env):
    """An agent (sync) gets a broken command, the web (async) a broken event: each is
    dead-lettered with its routing key, and the next message is handled."""
    t = env.topology
    inspector, dead = collect_dead_letters(env)
    agent, web, got = env.bus("agent"), env.async_bus(), []
    agent.consume(t.agent_work(), lambda d: got.append(d.decode()), prefetch=1)

    async def on_event(delivery: Delivery) -> None:
        got.append(delivery.decode())

    await web.consume(t.event_log(), on_event, prefetch=1)
    command, event = StartRun(spec=spec(1)), episode(1)
    agent.publish(t.commands, "run.start", b"not json", persistent=True)
    agent.publish_message(t.commands, "run.start", command)
    agent.publish(t.events, "run.1.episode", b'{"type": "nonsense"}', persistent=True)
    agent.publish_message(t.events, "run.1.episode", event)
    await until(lambda: len(got) == 2, agent)
    await until(lambda: len(dead) == 2, inspector)
    assert sorted(got, key=lambda m: m.type) == [event, command]
    assert sorted((d.routing_key, d.body) for d in dead) == [
        ("run.1.episode", b'{"type": "nonsense"}'),
        ("run.start", b"not json"),
    ]
    assert {d.headers["x-first-death-reason"] for d in dead} == {"rejected"}
    assert agent.counts["dead_lettered.malformed"] == web.counts["dead_lettered.malformed"] == 1


async def test_batches_are_acked_after_the_handler_and_marked_ones_dead_lettered(env: Env):
    t = env.topology
    inspector, dead = collect_dead_letters(env)
    web, seen = env.async_bus(), []

    async def on_batch(batch: list[Delivery]) -> None:
        for delivery in batch:
            seen.append(delivery.decode().seq)
            if delivery.decode().seq == 2:
                delivery.dead_letter("seq 2 is poison")

    await web.consume_batches(t.event_log(), on_batch, max_wait=0.2)
    publisher = env.bus()
    for seq in range(5):
        publisher.publish_message(t.events, "run.1.episode", episode(seq))
    await until(lambda: len(seen) == 5)
    await until(lambda: dead, inspector)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert EpisodeFinished.model_validate_json(dead[0].body).seq == 2
    await web.close()  # anything left unacked would now return to the queue
    leftovers = []
    publisher.consume(t.event_log(), leftovers.append)
    await drain(publisher, 0.5)
    assert leftovers == []


async def test_a_batch_whose_handler_was_interrupted_is_delivered_again(env: Env):
    t = env.topology
    web, started = env.async_bus(), asyncio.Event()

    async def stuck(batch: list[Delivery]) -> None:
        started.set()
        await asyncio.Event().wait()

    await web.consume_batches(t.event_log(), stuck)
    publisher, sent = env.bus(), episode(0)
    publisher.publish_message(t.events, "run.1.episode", sent)
    await asyncio.wait_for(started.wait(), 5)
    await web.close()  # the handler never returned: nothing was acked
    again: list[Delivery] = []
    publisher.consume(t.event_log(), again.append)
    await until(lambda: again, publisher)
    assert again[0].decode() == sent and again[0].redelivered


async def test_a_raising_batch_handler_gets_each_message_again_alone(env: Env):
    t = env.topology
    web, batches = env.async_bus(batch_retry_delay=0.05), []

    async def flaky(batch: list[Delivery]) -> None:
        batches.append([d.decode().seq for d in batch])
        if len(batches) == 1:
            raise RuntimeError("database away")

    publisher = env.bus()
    publisher.declare(t.event_log())
    for seq in range(3):  # all waiting before the consumer starts: one batch
        publisher.publish_message(t.events, "run.1.episode", episode(seq))
    await web.consume_batches(t.event_log(), flaky, max_wait=0.3)
    await until(lambda: sum(len(b) for b in batches) >= 6)
    assert sorted(batches[0]) == [0, 1, 2]
    assert sorted(batches[1:]) == [[0], [1], [2]]
    assert web.counts["retried"] == web.counts["dead_lettered"] == 0


async def test_a_message_that_keeps_failing_is_dead_lettered_after_bounded_tries(env: Env):
    """One poison event among good ones: the good ones are handled once, the poison one
    DELIVERY_LIMIT times, then it is dead-lettered and counted; the consumer carries on."""
    t = env.topology
    inspector, dead = collect_dead_letters(env)
    web, tries, handled = env.async_bus(batch_retry_delay=0.01), [], []

    async def on_batch(batch: list[Delivery]) -> None:
        seqs = [d.decode().seq for d in batch]
        if 2 in seqs:
            tries.append(len(batch))
            raise ValueError("seq 2 cannot be stored")
        handled.extend(seqs)

    publisher = env.bus()
    publisher.declare(t.event_log())
    for seq in range(5):
        publisher.publish_message(t.events, "run.1.episode", episode(seq))
    await web.consume_batches(t.event_log(), on_batch, max_wait=0.2)
    await until(lambda: dead, inspector, timeout=20)
    publisher.publish_message(t.events, "run.1.episode", episode(9))
    await until(lambda: 9 in handled, timeout=10)
    assert sorted(handled) == [0, 1, 3, 4, 9]
    assert sum(1 for n in tries if n == 1) == DELIVERY_LIMIT  # tries of seq 2 alone
    assert EpisodeFinished.model_validate_json(dead[0].body).seq == 2
    assert web.counts["dead_lettered"] == web.counts["dead_lettered.failing"] == 1
    assert web.counts["retried"] == DELIVERY_LIMIT - 1


async def test_bad_frames_on_data_queues_are_dropped_and_counted(env: Env):
    t, actor, frames = env.topology, env.bus("buffer"), []
    actor.consume(t.experience(1), lambda d: frames.append(decode_frame(d.body)[0].worker))
    good = encode_frame(ExperienceHeader(run_id=1, worker=3, policy_version=0), {})
    for body in (b"not a frame", good):
        actor.publish(t.data, t.data_key(1, "experience"), body)
    await until(lambda: frames, actor)
    await drain(actor)
    assert frames == [3]
    assert actor.counts["discarded"] == actor.counts["discarded.malformed"] == 1
    assert actor.counts["dead_lettered"] == 0


async def test_frames_consumed_without_acks_are_gone_once_handled(env: Env):
    """The trainer takes sample frames with auto_ack: each arrives once, a bad one is
    dropped and counted as on any data queue, and none is delivered again to the next
    consumer of the queue (nothing was left unacknowledged)."""
    t, trainer, seqs = env.topology, env.bus("trainer"), []
    settled: list[Delivery] = []
    trainer.settle = lambda delivery, outcome: settled.append(delivery)  # no ack is sent
    trainer.declare(t.samples(1))
    for seq in range(5):
        frame = encode_frame(SamplesHeader(run_id=1, seq=seq), {})
        trainer.publish(t.data, t.data_key(1, "samples"), frame if seq != 2 else b"bad")
    trainer.consume(t.samples(1), lambda d: seqs.append(decode_frame(d.body)[0].seq), auto_ack=True)
    await until(lambda: len(seqs) == 4, trainer)
    await drain(trainer)
    assert seqs == [0, 1, 3, 4]
    assert trainer.counts["discarded"] == trainer.counts["discarded.malformed"] == 1
    assert settled == []
    trainer.close()

    again, later = env.bus("trainer-again"), []
    again.consume(t.samples(1), lambda d: later.append(d), prefetch=10)
    await drain(again, 0.5)
    assert later == []
    with pytest.raises(ValueError, match="auto_ack"):
        again.consume(t.event_log(), lambda d: None, auto_ack=True)


async def test_oversized_messages_are_dead_lettered_unread(env: Env):
    t = env.topology
    inspector, dead = collect_dead_letters(env)
    web, seen = env.async_bus(max_message_bytes=4096), []

    async def on_batch(batch: list[Delivery]) -> None:
        seen.extend(d.decode().seq for d in batch)

    await web.consume_batches(t.event_log(), on_batch, max_wait=0.1)
    agent, commands = make_bus(env.url, t, "agent"), []
    agent.max_message_bytes = 4096
    env.buses.append(agent.connect())
    agent.consume(t.agent_work(), lambda d: commands.append(d.decode()), prefetch=1)
    big = b'{"type": "episode", "pad": "' + b"x" * 5000 + b'"}'
    agent.publish(t.events, "run.1.episode", big, persistent=True)
    agent.publish(t.commands, "run.start", big, persistent=True)
    agent.publish_message(t.events, "run.1.episode", episode(1))
    agent.publish_message(t.commands, "run.start", StartRun(spec=spec(1)))
    await until(lambda: seen and commands, agent)
    await until(lambda: len(dead) == 2, inspector)
    assert seen == [1] and commands == [StartRun(spec=spec(1))]
    assert sorted(d.routing_key for d in dead) == ["run.1.episode", "run.start"]
    assert web.counts["dead_lettered.oversized"] == agent.counts["dead_lettered.oversized"] == 1


async def test_async_publish_without_a_broker_raises_broker_unavailable():
    web = AsyncBroker("amqp://guest:guest@127.0.0.1:1/", Topology("x"), publish_timeout=0.5)
    try:
        with pytest.raises(BrokerUnavailable):
            await web.publish(web.topology.events, "run.1.status", b"{}")
        assert not web.connected
    finally:
        await web.close()


# ---- a broker restart (RabbitMQ only) ----------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def restartable_rabbitmq(amqp_url: str) -> str:
    try:
        rabbitmqctl("-q", "status")
    except (OSError, subprocess.SubprocessError) as exc:  # not installed, not allowed, ...
        service_missing(f"cannot restart RabbitMQ with rabbitmqctl: {exc}")
    return amqp_url


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_clients_reconnect_by_themselves_after_a_broker_restart(restartable_rabbitmq: str):
    """The sync consumer notices the restart, reconnects and re-consumes by itself; a
    persistent publish made while the broker is down waits for it and arrives once; the
    async consumer is restored by aio-pika's robust connection."""
    async with opened(restartable_rabbitmq) as env:
        t = env.topology
        agent, actor, got, events = env.bus("agent"), env.bus("actor"), [], []
        agent.consume(t.agent_work(), lambda d: got.append(d.decode().spec.run_id), prefetch=1)
        web = env.async_bus(retry_seconds=0.5)

        async def on_event(delivery: Delivery) -> None:
            events.append(delivery.decode().seq)

        await web.consume(t.event_log(), on_event)
        await web.publish_message(t.commands, "run.start", StartRun(spec=spec(1)))
        await until(lambda: got, agent)  # handled and acked before the restart
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        try:
            await drain(agent, 0.5)  # notices the loss; must not raise
            second = StartRun(spec=spec(2))
            call = functools.partial(actor.publish_message, t.commands, "run.start", second)
            publishing = asyncio.ensure_future(asyncio.to_thread(call))
            await asyncio.sleep(0.5)
            assert not publishing.done()  # waiting for the broker to come back
        finally:
            await asyncio.to_thread(rabbitmqctl, "start_app")
            await asyncio.to_thread(rabbitmqctl, "await_startup")
        assert await asyncio.wait_for(publishing, 60)
        await until(lambda: len(got) >= 2, agent, timeout=60)
        await drain(agent, 1.0)
        assert got == [1, 2]
        actor.publish_message(t.events, "run.2.episode", episode(7, run_id=2))
        await until(lambda: events, timeout=30)
        assert events == [7]
