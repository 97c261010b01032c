"""The on-policy buffer actor (the `on_policy` path, PPO): turns the rollout workers'
segments into one training batch per policy version.

PPO's update is only valid on data of the policy being updated, so unlike the replay
buffer this one keeps nothing across versions:
- it takes segments (`SegmentHeader` frames on run.<id>.experience), each tagged with the
  `policy_version` that played it;
- `SegmentAssembler` keeps those of the current version; one from an older version is
  stale and dropped, and a newer version (the learner moved on, or a resumed run)
  makes the pending ones stale. Every dropped segment is counted;
- once `num_workers` segments of the current version are there, they go to the trainer
  as one `TrainingBatchHeader` frame (every segment array stacked on a new first axis),
  and the current version becomes the next one: the learner makes exactly one update,
  one new version, per batch.
Workers wait for the new version after each segment, so in steady state nothing is
stale; the count shows restarts and anything that went wrong.
"""

from __future__ import annotations

import numpy as np

from actors.roles.base import Actor
from broker.codec import decode_frame, encode_frame
from schemas.messages import BadMessage, SegmentHeader, TrainingBatchHeader

Arrays = dict[str, np.ndarray]


class SegmentAssembler:
    """Segments of the current policy version, `segments_per_batch` at a time."""

    def __init__(self, segments_per_batch: int, version: int = 0):
        if segments_per_batch < 1:
            raise ValueError(f"segments_per_batch must be at least 1, got {segments_per_batch}")
        self.segments_per_batch = segments_per_batch
        self.version = version  # the version a batch is being assembled for
        # The trainer incarnation of that version: a restarted trainer goes on from the
        # version of its checkpoint, lower than the lost one's, and its versions win.
        self.epoch = 0
        self.pending: list[Arrays] = []
        self.stale = 0  # segments dropped, over the run

    def add(self, version: int, segment: Arrays, epoch: int = 0) -> bool:
        """Keep `segment` if it is of the current (epoch, version) (a newer one becomes
        current); False if it was dropped as stale. BadMessage if its arrays do not match
        the pending segments' layout."""
        if (epoch, version) < (self.epoch, self.version):
            self.stale += 1
            return False
        if (epoch, version) > (self.epoch, self.version):
            self.stale += len(self.pending)
            self.pending = []
            self.epoch, self.version = epoch, version
        if self.pending:
            expected = {name: a.shape for name, a in self.pending[0].items()}
            if {name: a.shape for name, a in segment.items()} != expected:
                raise BadMessage(f"segment layout differs from the others: expected {expected}")
        self.pending.append(segment)
        return True

    def take(self) -> tuple[int, Arrays] | None:
        """(version, the batch's arrays stacked on a new first axis) when enough segments
        of the current version are there; the next version becomes current."""
        if len(self.pending) < self.segments_per_batch:
            return None
        segments = self.pending[: self.segments_per_batch]
        self.stale += len(self.pending) - len(segments)
        self.pending = []
        version, self.version = self.version, self.version + 1
        return version, {name: np.stack([s[name] for s in segments]) for name in segments[0]}


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
