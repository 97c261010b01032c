"""`SegmentAssembler` (actors/algorithms/segments.py): one batch per policy version from
the workers' segments, stale ones dropped and counted."""

from __future__ import annotations

import pytest

from actors.algorithms.segments import SegmentAssembler
from schemas.messages import BadMessage
from tests.actors.helpers import segment


def test_a_batch_is_assembled_from_segments_of_the_current_version():
    assembler = SegmentAssembler(segments_per_batch=2)
    assert assembler.add(0, segment(1.0))
    assert assembler.take() is None  # one of two
    assert assembler.add(0, segment(2.0))
    version, batch = assembler.take()
    assert version == 0 and assembler.version == 1 and assembler.stale == 0
    assert batch["reward"].shape == (2, 4, 2) and batch["last_value"].shape == (2, 2)
    assert batch["reward"][:, 0, 0].tolist() == [1.0, 2.0]  # in arrival order
    assert assembler.take() is None


def test_stale_segments_are_dropped_and_counted():
    assembler = SegmentAssembler(segments_per_batch=2)
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(1.0))
    assembler.take()  # the learner moves on to version 1
    assert not assembler.add(0, segment(9.0))  # a late segment of version 0
    assert assembler.stale == 1
    assembler.add(1, segment(2.0))
    assert assembler.take() is None  # the stale one does not count towards the batch
    assembler.add(1, segment(3.0))
    version, batch = assembler.take()
    assert version == 1 and 9.0 not in batch["reward"]
    assert assembler.stale == 1


def test_a_newer_version_makes_the_pending_segments_stale():
    assembler = SegmentAssembler(segments_per_batch=3)  # e.g. a resumed run's trainer
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(1.0))
    assembler.add(7, segment(2.0))
    assert (assembler.version, assembler.stale, len(assembler.pending)) == (7, 2, 1)


def test_a_restarted_trainers_versions_win_though_they_are_lower():
    assembler = SegmentAssembler(segments_per_batch=2)
    for version in range(9):  # the lost trainer reached version 9
        assembler.add(version, segment(1.0))
        assembler.add(version, segment(1.0))
        assembler.take()
    assembler.add(9, segment(1.0))  # half a batch for the lost trainer
    assert assembler.add(6, segment(2.0), epoch=1)  # its successor restored version 6
    assert not assembler.add(9, segment(9.0))  # a late segment of the lost trainer
    assert assembler.add(6, segment(3.0), epoch=1)
    version, batch = assembler.take()
    assert version == 6 and batch["reward"][:, 0, 0].tolist() == [2.0, 3.0]
    assert (assembler.epoch, assembler.version, assembler.stale) == (1, 7, 2)


def test_segments_beyond_the_batch_are_stale_once_it_is_taken():
    assembler = SegmentAssembler(segments_per_batch=1)
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(2.0))  # a restarted worker's duplicate of version 0
    version, batch = assembler.take()
    assert version == 0 and batch["reward"].shape[0] == 1 and assembler.stale == 1


def test_a_segment_of_another_layout_is_a_bad_message():
    assembler = SegmentAssembler(segments_per_batch=2)
    assembler.add(0, segment(1.0, steps=4))
    with pytest.raises(BadMessage, match="layout"):
        assembler.add(0, segment(1.0, steps=5))
