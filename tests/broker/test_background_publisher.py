"""Publishing from a thread (broker/background.py), on both transports: what the actor's
loop hands over arrives in order, `close()` returns only once all of it is with the
broker, and a failure in the thread reaches the loop."""

from __future__ import annotations

import kombu
import numpy as np
import pytest

from broker import memory
from broker.abc import BrokerUnavailable
from broker.background import BackgroundPublisher
from broker.codec import decode_frame, encode_frame
from broker.sync import Bus, make_bus
from broker.topology import Topology
from schemas.messages import EpisodeFinished, ExperienceHeader, decode_message
from tests.broker.helpers import Env, until

pytestmark = pytest.mark.timeout(60)


def waiting(url: str, queue: str) -> int:
    """Messages in `queue` right now."""
    transport = memory.Transport if url.startswith("memory://") else None
    with kombu.Connection(url, transport=transport) as conn:
        return conn.channel().queue_declare(queue, passive=True).message_count


async def test_what_is_handed_over_arrives_in_order_once_close_returns(env: Env):
    t, count = env.topology, 200  # fewer frames than the experience queue holds
    inspector = env.bus("inspector")
    inspector.declare(t.event_log(), t.experience(1))  # durable, as the web service has it
    publisher = BackgroundPublisher(make_bus(env.url, t, "rollout-publisher"), max_pending=8)
    for seq in range(count):
        event = EpisodeFinished(run_id=1, worker=0, seq=seq, reward=1.0, length=seq)
        publisher.publish_message(t.events, t.event_key(1, "episode"), event)
        header = ExperienceHeader(run_id=1, worker=0, policy_version=0, env_steps=seq)
        frame = encode_frame(header, {"x": np.ones(3)})
        publisher.publish(t.data, t.data_key(1, "experience"), frame)
    publisher.close()
    # Confirmed before close() returned: all of them are in the durable queue already.
    assert waiting(env.url, t.event_log().name) == count

    events, frames = [], []
    inspector.consume(t.event_log(), lambda d: events.append(decode_message(d.body).seq))
    inspector.consume(t.experience(1), lambda d: frames.append(decode_frame(d.body)[0].env_steps))
    await until(lambda: len(events) == len(frames) == count, inspector)
    assert events == frames == list(range(count))
    with pytest.raises(RuntimeError, match="after close"):
        publisher.publish(t.events, t.event_key(1, "episode"), b"{}")


async def test_a_publish_that_fails_in_the_thread_fails_the_loop():
    bus = Bus("amqp://guest:guest@127.0.0.1:1/", Topology("x"), "lost", publish_timeout=0.3)
    publisher = BackgroundPublisher(bus, max_pending=1)
    event = EpisodeFinished(run_id=1, worker=0, seq=0, reward=1.0, length=1)
    publisher.publish_message(bus.topology.events, "run.1.episode", event)
    with pytest.raises(BrokerUnavailable):  # raised by whichever call comes after it
        for _ in range(100):
            publisher.publish_message(bus.topology.events, "run.1.episode", event)
        publisher.close()
    assert isinstance(publisher.failure, BrokerUnavailable)
