"""The replay ring buffer and the samples-per-insert rate limiter
(actors/algorithms/replay.py)."""

from __future__ import annotations

import numpy as np
import pytest

from actors.algorithms.replay import RateLimiter, ReplayBuffer, Transition


def numbered(first: int, count: int) -> Transition:
    """Transitions whose every field carries its number, to see where each one went."""
    ids = np.arange(first, first + count)
    return Transition(
        obs=np.repeat(ids[:, None], 2, axis=1).astype(np.float32),
        action=ids,
        reward=ids.astype(np.float32),
        next_obs=np.repeat(ids[:, None], 2, axis=1).astype(np.float32) + 0.5,
        terminated=ids % 2 == 0,
        horizon=(ids % 3 + 1).astype(np.int32),
    )


def stored_ids(buffer: ReplayBuffer) -> list[int]:
    return buffer.action[: len(buffer)].tolist()


def test_add_fills_then_wraps_around_overwriting_the_oldest():
    buffer = ReplayBuffer(5, obs_shape=(2,))
    buffer.add(numbered(0, 3))
    assert len(buffer) == 3 and buffer.position == 3
    buffer.add(numbered(3, 4))  # 3, 4 fill the end; 5, 6 overwrite slots 0 and 1
    assert len(buffer) == 5 and buffer.position == 2
    assert stored_ids(buffer) == [5, 6, 2, 3, 4]
    assert buffer.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buffer.next_obs[:, 1].tolist() == [5.5, 6.5, 2.5, 3.5, 4.5]
    assert buffer.terminated.tolist() == [False, True, True, False, True]


def test_a_batch_larger_than_the_buffer_keeps_its_newest_transitions():
    buffer = ReplayBuffer(4, obs_shape=(2,))
    buffer.add(numbered(0, 1))
    buffer.add(numbered(10, 6))
    assert len(buffer) == 4
    assert sorted(stored_ids(buffer)) == [12, 13, 14, 15]
    buffer.add(numbered(20, 1))  # the oldest survivor (12) goes next
    assert sorted(stored_ids(buffer)) == [13, 14, 15, 20]


def test_sample_is_uniform_over_what_is_stored():
    buffer = ReplayBuffer(100, obs_shape=(2,))
    buffer.add(numbered(0, 10))  # only 10 of 100 slots filled
    rng = np.random.default_rng(0)
    batch = buffer.sample(50_000, rng)
    counts = np.bincount(batch.action, minlength=10)
    assert len(counts) == 10  # never an empty slot
    assert np.all(np.abs(counts / 50_000 - 0.1) < 0.01)
    # each sampled row stays one transition
    assert np.array_equal(batch.obs[:, 0], batch.action)
    assert np.array_equal(batch.reward, batch.action.astype(np.float32))


def test_samples_are_copies_and_empty_buffers_refuse_to_sample():
    buffer = ReplayBuffer(3, obs_shape=(2,))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1, rng)
    buffer.add(numbered(0, 3))
    batch = buffer.sample(4, rng)
    batch.obs[:] = -1
    assert buffer.obs.min() >= 0


def test_transitions_concatenate_field_by_field():
    joined = Transition.concatenate([numbered(0, 2), numbered(2, 3)])
    assert joined.batch_size == 5
    assert joined.action.tolist() == [0, 1, 2, 3, 4]


# ---- rate limiter --------------------------------------------------------------------------


def test_sampling_waits_for_the_minimum_size_while_inserts_are_free():
    limiter = RateLimiter(samples_per_insert=4, min_size_to_sample=100, error_buffer=64)
    assert not limiter.can_sample(1)
    assert limiter.can_insert(100)
    limiter.inserted(99)
    assert not limiter.can_sample(1)
    limiter.inserted(1)
    assert limiter.can_sample(64)


def test_a_chunk_that_crosses_the_minimum_size_is_inserted():
    # 96 + 32 inserts owe more samples than the slack allows; refusing them would leave
    # sampling waiting for the minimum size forever (SAC: ratio 256, frames of 32).
    limiter = RateLimiter(samples_per_insert=256, min_size_to_sample=100, error_buffer=4737)
    limiter.inserted(96)
    assert limiter.can_insert(32)
    limiter.inserted(32)
    assert limiter.can_sample(1024) and not limiter.can_insert(1)


def test_sampling_blocks_when_ahead_of_the_ratio():
    limiter = RateLimiter(samples_per_insert=2, min_size_to_sample=10, error_buffer=8)
    limiter.inserted(10)  # stage 2 begins; 8 samples of slack below the ratio
    assert limiter.can_sample(8) and not limiter.can_sample(9)
    limiter.sampled(8)
    assert not limiter.can_sample(1)
    limiter.inserted(1)  # each insert earns 2 samples
    assert limiter.can_sample(2) and not limiter.can_sample(3)


def test_inserts_block_when_sampling_falls_too_far_behind():
    limiter = RateLimiter(samples_per_insert=2, min_size_to_sample=10, error_buffer=8)
    limiter.inserted(10)
    assert limiter.can_insert(4)  # 4 inserts owe 8 samples: just within the slack
    assert not limiter.can_insert(5)
    limiter.inserted(4)
    assert not limiter.can_insert(1)
    limiter.sampled(2)
    assert limiter.can_insert(1)


def test_measured_ratio_converges_to_samples_per_insert():
    limiter = RateLimiter(samples_per_insert=3, min_size_to_sample=200, error_buffer=200)
    rng = np.random.default_rng(1)
    for _ in range(5_000):  # a fast collector and a greedy learner take turns
        chunk = int(rng.integers(1, 16))
        if limiter.can_insert(chunk):
            limiter.inserted(chunk)
        while limiter.can_sample(64):
            limiter.sampled(64)
    assert limiter.inserts > 20_000
    assert limiter.replay_ratio == pytest.approx(3.0, rel=0.02)
    assert abs(limiter.lag - 3 * 200) <= 200  # never left the window


def test_rate_limiter_rejects_a_window_that_could_deadlock():
    with pytest.raises(ValueError, match="error_buffer"):
        RateLimiter(samples_per_insert=8, min_size_to_sample=10, error_buffer=4)
    with pytest.raises(ValueError, match="min_size_to_sample"):
        RateLimiter(samples_per_insert=1, min_size_to_sample=0, error_buffer=4)
    assert RateLimiter(1, 1, 1).replay_ratio == 0.0
