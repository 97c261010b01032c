"""The on-policy buffer actor (the `on_policy` path, PPO): turns the rollout workers'
segments into one training batch per policy version.

PPO's update is only valid on data of the policy being updated, so this buffer keeps
nothing across versions: `SegmentAssembler` (actors/algorithms/segments.py) keeps the
`SegmentHeader` frames of the current `policy_version` and drops (and counts) stale ones;
`num_workers` of them go to the trainer as one `TrainingBatchHeader` frame, and the
learner makes exactly one update, one new version, per batch. Workers wait for the new
version after each segment, so in steady state nothing is stale. See docs/architecture.md.
"""

from __future__ import annotations

from actors.algorithms.segments import SegmentAssembler
from actors.roles.base import Actor
from broker.codec import decode_frame, encode_frame
from schemas.messages import BadMessage, SegmentHeader, TrainingBatchHeader

__all__ = ["OnPolicyBuffer"]


class OnPolicyBuffer(Actor):
    role = "buffer"

    def setup(self) -> None:
        self.config = self.algorithm.config_of(self.spec)
        self.assembler = SegmentAssembler(self.config.num_workers)
        self.worker_steps: dict[tuple[int, int], int] = {}
        self.published = 0

        experience = self.topology.experience(self.run_id)
        samples = self.topology.samples(self.run_id)
        self.bus.declare(experience, samples)
        self.bus.consume(experience, self.on_segment, prefetch=8)

    def on_segment(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if not isinstance(header, SegmentHeader):
            raise BadMessage(f"{header.type} on the experience queue of an on-policy run")
        self.worker_steps[(header.worker, header.incarnation)] = header.env_steps
        self.assembler.add(header.policy_version, arrays, header.epoch)

    def step(self) -> None:
        ready = self.assembler.take()
        if ready is None:
            self.bus.poll(0.002)
            return
        version, arrays = ready
        header = TrainingBatchHeader(
            run_id=self.run_id,
            seq=self.published,
            policy_version=version,
            segments=self.assembler.segments_per_batch,
            stale=self.assembler.stale,
            env_steps=sum(self.worker_steps.values()),
        )
        self.bus.publish(
            self.topology.data,
            self.topology.data_key(self.run_id, "samples"),
            encode_frame(header, arrays),
        )
        self.published += 1
