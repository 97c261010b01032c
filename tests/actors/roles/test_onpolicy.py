"""The on-policy buffer (actors/roles/onpolicy.py): the segment frames it reads, and PPO's
actors over the in-process broker without a stale segment. (How segments become batches:
tests/actors/algorithms/test_segments.py.)"""

from __future__ import annotations

from broker.codec import decode_frame, encode_frame
from schemas.messages import SegmentHeader
from tests.actors.helpers import PPO_SMALL, run_in_process, segment, spec_for


def test_a_segment_frame_round_trips():
    header = SegmentHeader(run_id=1, worker=2, incarnation=1, policy_version=5, env_steps=64)
    decoded, arrays = decode_frame(encode_frame(header, segment(1.5)))
    assert decoded == header and arrays["reward"].shape == (4, 2)


# ---- PPO's actors over the in-process broker -------------------------------------------------


def test_ppo_runs_on_policy_over_the_broker_without_stale_segments():
    spec = spec_for(
        "ppo",
        "CartPole-v1",
        num_workers=2,
        target_episode=40,
        batch_size=32,
        hyperparameters=PPO_SMALL,
    )
    events = run_in_process(spec)
    statuses = [e for e in events if e.type == "status" and e.status == "completed"]
    assert statuses and "40 training episodes" in statuses[0].reason
    episodes = [e for e in events if e.type == "episode"]
    assert {e.worker for e in episodes} == {0, 1}
    # Each worker waits for the next version after a segment: versions only move on.
    for worker in (0, 1):
        versions = [e.policy_version for e in episodes if e.worker == worker]
        assert versions == sorted(versions) and versions[-1] > 0
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["buffer/stale_segments"] == 0 and metrics["charts/policy_lag"] == 0
    assert metrics["charts/updates"] == metrics["charts/policy_version"] > 0
    assert "losses/clip_fraction" in metrics
    checkpoints = [e for e in events if e.type == "checkpoint"]
    assert checkpoints[-1].final and checkpoints[-1].meta["algorithm"] == "ppo"
