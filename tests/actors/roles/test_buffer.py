"""The replay buffer (actors/roles/buffer.py): it samples nothing before `learning_starts`,
then holds sampled/inserted to `samples_per_insert` within its rate limiter's window, sends
at most `IN_FLIGHT` sample frames ahead of the trainer's credit, drops the oldest
experience (and counts it) when its backlog is full, and keeps SAC's replay ratio in a run
over the in-process broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from actors.roles.buffer import BACKLOG_FRAMES, BATCHES_PER_FRAME, IN_FLIGHT
from actors.roles.factory import make_actor
from broker.codec import decode_frame, encode_frame
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import CreditGranted, ExperienceHeader, SamplesHeader
from tests.actors.helpers import DISCRETE, random_transitions, run_in_process, spec_for

LEARNING_STARTS, RATIO, BATCH = 64, 2, 8
SPEC = spec_for(
    "dqn",
    "CartPole-v1",
    batch_size=BATCH,
    hyperparameters={"learning_starts": LEARNING_STARTS, "samples_per_insert": RATIO},
)
FRAME = BATCH * BATCHES_PER_FRAME  # transitions sampled into one samples frame


class TrainerSide:
    """A buffer actor on memory://, fed experience frames as a rollout worker would and
    read as the trainer would: samples frames in, credit back once `credit` is on."""

    def __init__(self, topology: Topology):
        self.topology = topology
        self.bus = make_bus("memory://", topology, "trainer").connect()
        buffer_bus = make_bus("memory://", topology, "buffer").connect()
        self.buffer = make_actor("buffer", SPEC, buffer_bus, topology)
        self.buffer.setup()
        self.bus.consume(topology.samples(SPEC.run_id), self.on_samples, prefetch=100)
        self.samples: list[SamplesHeader] = []
        self.credit = False
        self.collected = 0
        self.rng = np.random.default_rng(0)

    def on_samples(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        assert len(arrays["reward"]) == FRAME
        self.samples.append(header)
        if self.credit:
            self.grant()

    def grant(self) -> None:
        credit = CreditGranted(run_id=SPEC.run_id, consumed=len(self.samples))
        self.bus.publish_message(
            self.topology.data, self.topology.data_key(SPEC.run_id, "credit"), credit
        )

    def collect(self, count: int) -> None:
        """`count` transitions in one experience frame."""
        self.collected += count
        header = ExperienceHeader(
            run_id=SPEC.run_id, worker=0, policy_version=0, env_steps=self.collected
        )
        batch = random_transitions(self.rng, DISCRETE, size=count)
        self.bus.publish(
            self.topology.data,
            self.topology.data_key(SPEC.run_id, "experience"),
            encode_frame(header, batch._asdict()),
        )

    def pump(self, steps: int = 200) -> None:
        for _ in range(steps):
            self.buffer.step()
            self.bus.poll(0)


@pytest.fixture
def trainer() -> Iterator[TrainerSide]:
    side = TrainerSide(Topology(f"buf{uuid.uuid4().hex[:8]}"))
    yield side
    side.buffer.close()
    side.bus.close()


def test_samples_wait_for_learning_starts_then_keep_the_ratio_and_the_credit(trainer):
    trainer.collect(LEARNING_STARTS - 1)
    trainer.pump()
    assert trainer.samples == []  # still warming up
    trainer.collect(1)
    trainer.pump()
    # 64 inserts owe 128 samples; one frame of 32 is as far ahead as the window allows
    assert [(s.inserted, s.sampled) for s in trainer.samples] == [(LEARNING_STARTS, FRAME)]

    for _ in range(10):
        trainer.collect(32)
    trainer.pump()
    assert [s.seq for s in trainer.samples] == list(range(IN_FLIGHT))  # no credit came
    # Sampling has stopped, so inserts wait too: the rest stays in the backlog.
    assert trainer.buffer.backlog and trainer.buffer.limiter.inserts < trainer.collected

    trainer.credit = True
    trainer.grant()
    trainer.pump(400)
    assert [s.seq for s in trainer.samples] == list(range(len(trainer.samples)))
    last = trainer.samples[-1]
    assert last.inserted == last.buffer_size == last.env_steps == trainer.collected
    assert last.dropped == 0
    window = trainer.buffer.limiter.error_buffer
    for header in trainer.samples:
        assert abs(header.sampled - RATIO * (header.inserted - LEARNING_STARTS)) <= window


def test_a_full_backlog_drops_its_oldest_experience_and_counts_it(trainer):
    trainer.collect(LEARNING_STARTS)
    trainer.pump()
    for _ in range(BACKLOG_FRAMES + 20):  # more pieces than the backlog holds
        trainer.collect(32)
    trainer.pump()
    assert 0 < len(trainer.buffer.backlog) <= BACKLOG_FRAMES
    trainer.credit = True
    trainer.grant()
    trainer.pump(2000)
    last = trainer.samples[-1]
    assert last.dropped > 0 and last.dropped % 32 == 0
    assert last.inserted + last.dropped == trainer.collected  # every transition accounted
    assert last.env_steps == trainer.collected  # the newest frame was kept


# ---- SAC's actors over the in-process broker -------------------------------------------------


def test_sac_runs_on_the_replay_path_with_box_actions():
    spec = spec_for(
        "sac",
        "Pendulum-v1",
        target_episode=2,
        batch_size=32,
        hyperparameters={"hidden": [16], "learning_starts": 50, "samples_per_insert": 8},
    )
    events = run_in_process(spec)
    assert any(e.type == "status" and e.status == "completed" for e in events)
    assert len([e for e in events if e.type == "episode"]) >= 2
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["charts/updates"] > 0 and "losses/alpha" in metrics
    assert metrics["charts/replay_ratio"] == pytest.approx(8, rel=0.5)
