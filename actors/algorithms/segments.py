"""On-policy batches: rollout workers' segments assembled into one training batch per
policy version, as the on-policy buffer (actors/roles/onpolicy.py) and the serial loop
(actors/algorithms/serial.py) both do it.

PPO's update is only valid on data of the policy being updated: `SegmentAssembler` keeps
the segments of the current version, drops and counts stale ones, and hands out
`segments_per_batch` of them stacked on a new first axis; `unstack` turns such a batch
back into the algorithm's segment records for its learner.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from schemas.messages import BadMessage

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


def unstack(segment_type: Any, batch: Arrays) -> list[Any]:
    """A batch from `SegmentAssembler.take` as the learner's list of `segment_type`
    records (the algorithm's `Algorithm.segment_type`), in arrival order."""
    count = len(next(iter(batch.values())))
    return [segment_type(**{name: array[i] for name, array in batch.items()}) for i in range(count)]
