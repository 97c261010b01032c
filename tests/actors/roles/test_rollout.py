"""The rollout worker (actors/roles/rollout.py), stepped by hand on memory://: an on-policy
worker ships one segment, tagged with the policy version that played it, then waits
without acting until the learner's next version arrives."""

from __future__ import annotations

import uuid

import numpy as np

from actors.roles.factory import make_actor
from broker.codec import decode_frame, encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import SegmentHeader, WeightsHeader
from tests.actors.helpers import PPO_SMALL, learner_for, spec_for


def test_an_on_policy_worker_ships_one_segment_per_policy_version():
    spec = spec_for("ppo", "CartPole-v1", hyperparameters=PPO_SMALL)
    topology = Topology(f"roll{uuid.uuid4().hex[:8]}")
    buffer_bus = make_bus("memory://", topology, "buffer").connect()
    segments: list[tuple[SegmentHeader, dict]] = []
    buffer_bus.consume(
        topology.experience(spec.run_id),
        lambda delivery: segments.append(decode_frame(delivery.body)),
        prefetch=100,
    )
    worker_bus = make_bus("memory://", topology, "rollout").connect()
    worker = make_actor("rollout", spec, worker_bus, topology)
    worker.setup()

    def play(steps: int) -> None:
        for _ in range(steps):
            worker.step()
            buffer_bus.poll(0)

    try:
        play(50)
        assert [header.policy_version for header, _ in segments] == [0]
        header, arrays = segments[0]
        steps_per_segment = PPO_SMALL["n_steps"] * PPO_SMALL["envs_per_worker"]
        assert arrays["reward"].shape == (PPO_SMALL["n_steps"], PPO_SMALL["envs_per_worker"])
        assert header.env_steps == worker.env_steps == steps_per_segment
        play(50)  # no newer version: it waits, without acting
        assert len(segments) == 1 and worker.env_steps == steps_per_segment

        learner = learner_for("ppo", "CartPole-v1", hyperparameters=PPO_SMALL)
        blob = np.frombuffer(state_to_bytes(learner.policy_state()), dtype=np.uint8)
        weights = WeightsHeader(run_id=spec.run_id, version=1)
        buffer_bus.publish(
            topology.data,
            topology.data_key(spec.run_id, "weights"),
            encode_frame(weights, {"safetensors": blob}),
        )
        play(50)
        assert [header.policy_version for header, _ in segments] == [0, 1]
        assert worker.env_steps == 2 * steps_per_segment
    finally:
        worker.finish()
        worker.close()
        buffer_bus.close()
