"""The rollout worker's collector of transitions (actors/algorithms/collectors.py): frames
of every n-step transition, sent when full, when their first step is old, and sized by
their bytes."""

from __future__ import annotations

import numpy as np

from actors.algorithms.collectors import FRAME_BYTES, TransitionCollector, frame_rows
from actors.algorithms.nstep import NStepTransitions
from actors.algorithms.replay import Transition
from actors.envs.build import VectorCollector, make_vector_env


def test_the_collector_frames_every_n_step_transition():
    """The rollout worker's collector ships n-step transitions in frames of at least
    `batch` rows; together with a flush they are every transition completed."""
    envs = make_vector_env("CartPole-v1", None, 4, seed=1)
    vector = VectorCollector(envs, seed=1)
    rng = np.random.default_rng(1)
    collector = TransitionCollector(
        vector,
        lambda obs, steps: rng.integers(0, 2, size=len(obs)),
        50,
        NStepTransitions(3, 0.9),
        max_age_s=float("inf"),  # by size only here
    )
    frames, env_steps = [], 0
    for _ in range(200):
        arrays, _, steps = collector.collect(0)
        env_steps += steps
        if arrays is not None:
            assert 50 <= len(arrays["reward"]) < 50 + 4 * 3
            frames.append(arrays)
    frames.append(collector.flush())
    total = sum(len(frame["reward"]) for frame in frames)
    assert env_steps == 800 and 800 - 4 * 2 <= total <= 800
    assert {int(h) for frame in frames for h in frame["horizon"]} == {1, 2, 3}
    envs.close()


def test_a_frame_goes_out_when_full_or_when_its_first_step_is_old():
    """Frames of `batch` transitions, or fewer once the first is `max_age_s` old: a slow
    environment's transitions do not wait for a full frame."""
    envs = make_vector_env("CartPole-v1", None, 4, seed=1)
    now = [0.0]
    collector = TransitionCollector(
        VectorCollector(envs, seed=1),
        lambda obs, steps: np.zeros(len(obs), dtype=np.int64),
        batch=40,
        max_age_s=0.02,
        clock=lambda: now[0],
    )
    sizes = []
    for step in range(60):
        now[0] = step * 0.001 if step < 30 else 1.0 + 0.05 * step  # fast, then slow steps
        arrays, _, _ = collector.collect(0)
        if arrays is not None:
            sizes.append(len(arrays["reward"]))
    # fast: 10 steps of 4 fill a frame long before 20 ms; slow: steps are 50 ms apart,
    # so a frame goes out with its second step
    assert sizes == [40] * 3 + [8] * 15
    envs.close()


def test_frames_are_sized_by_their_bytes():
    """Without a `batch`, a frame holds what fits in FRAME_BYTES: CartPole's rows are 49
    bytes (obs and next_obs 4 float32 each, an int64 action, a float32 reward, a bool,
    an int32 horizon); a wide observation gets fewer rows, never none."""
    cartpole = Transition(
        obs=np.zeros((8, 4), np.float32),
        action=np.zeros(8, np.int64),
        reward=np.zeros(8, np.float32),
        next_obs=np.zeros((8, 4), np.float32),
        terminated=np.zeros(8, bool),
        horizon=np.ones(8, np.int32),
    )
    assert frame_rows(cartpole) == FRAME_BYTES // 49
    image = cartpole._replace(
        obs=np.zeros((8, 84, 84, 4), np.uint8), next_obs=np.zeros((8, 84, 84, 4), np.uint8)
    )
    assert frame_rows(image) == max(1, FRAME_BYTES // (2 * 84 * 84 * 4 + 17))
    huge = cartpole._replace(obs=np.zeros((8, 2**16), np.float32))
    assert frame_rows(huge) == 1

    envs = make_vector_env("CartPole-v1", None, 8, seed=1)
    collector = TransitionCollector(
        VectorCollector(envs, seed=1),
        lambda obs, steps: np.zeros(len(obs), dtype=np.int64),
        max_age_s=float("inf"),
    )
    sizes = []
    while len(sizes) < 2:
        arrays, _, _ = collector.collect(0)
        if arrays is not None:
            sizes.append(len(arrays["reward"]))
            frame_bytes = sum(a.nbytes for a in arrays.values())
            assert FRAME_BYTES - 8 * 49 < frame_bytes <= FRAME_BYTES + 8 * 49
    assert sizes == [FRAME_BYTES // 49 + 7] * 2  # whole steps of 8: 1,337 rounded up
    envs.close()
