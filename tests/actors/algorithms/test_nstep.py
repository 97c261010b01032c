"""n-step transitions (actors/algorithms/nstep.py): returns, horizons and episode ends
checked against sums written out by hand, and the DQN learner's use of them
(actors/algorithms/dqn.py). How workers frame them: test_collectors.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.algorithms.dqn import DQNConfig, DQNLearner, double_dqn_target, n_step_discounts
from actors.algorithms.nstep import NStepTransitions
from actors.algorithms.replay import Transition
from actors.envs.build import VectorCollector, make_vector_env
from schemas.messages import RunSpec
from tests.actors.helpers import DISCRETE, spec_for

GAMMA = 0.5  # powers that are exact in binary floating point


def step_of(t: int, rewards, terminated=(False, False), num_envs: int = 2) -> Transition:
    """Step t of `num_envs` sub-environments: observation t*10+env, next t*10+10+env."""
    envs = np.arange(num_envs)
    return Transition(
        obs=(t * 10 + envs)[:, None].astype(np.float32),
        action=np.full(num_envs, t),
        reward=np.asarray(rewards, dtype=np.float32),
        next_obs=(t * 10 + 10 + envs)[:, None].astype(np.float32),
        terminated=np.asarray(terminated, dtype=bool),
        horizon=np.ones(num_envs, dtype=np.int32),
    )


def dqn_spec(**hyperparameters) -> RunSpec:
    return spec_for(
        "dqn",
        "CartPole-v1",
        batch_size=8,
        buffer_size=1000,
        gamma=0.9,
        seed=0,
        hyperparameters=hyperparameters,
    )


def rows(batch: Transition) -> list[tuple]:
    """(obs, action, reward, next_obs, terminated, horizon) per transition, sorted."""
    return sorted(
        (float(o[0]), int(a), float(r), float(n[0]), bool(d), int(h))
        for o, a, r, n, d, h in zip(*batch, strict=True)
    )


def test_one_step_passes_transitions_through():
    step = step_of(0, [1.0, 2.0])
    assert NStepTransitions(1, GAMMA).add(step, ()) is step


def test_a_window_completes_after_n_steps_with_the_discounted_reward_sum():
    nstep = NStepTransitions(3, GAMMA)
    assert nstep.add(step_of(0, [1.0, 10.0])).batch_size == 0
    assert nstep.add(step_of(1, [2.0, 20.0])).batch_size == 0
    out = nstep.add(step_of(2, [4.0, 40.0]))
    # s_0 -> s_3: r0 + g r1 + g^2 r2 = 1 + 1 + 1 (env 0), 10 + 10 + 10 (env 1)
    assert rows(out) == [(0.0, 0, 3.0, 30.0, False, 3), (1.0, 0, 30.0, 31.0, False, 3)]
    out = nstep.add(step_of(3, [8.0, 80.0]))
    # s_1 -> s_4: 2 + 0.5 * 4 + 0.25 * 8
    assert rows(out) == [(10.0, 1, 6.0, 40.0, False, 3), (11.0, 1, 60.0, 41.0, False, 3)]


def test_a_terminal_state_closes_every_window_of_its_environment_without_bootstrap():
    nstep = NStepTransitions(3, GAMMA)
    nstep.add(step_of(0, [1.0, 1.0]))
    out = nstep.add(step_of(1, [2.0, 2.0], terminated=(True, False)), ended=[0])
    # env 0 ended on step 1: s_0 -> s_2 over 2 steps, s_1 -> s_2 over 1, both terminal;
    # env 1 goes on
    assert rows(out) == [(0.0, 0, 2.0, 20.0, True, 2), (10.0, 1, 2.0, 20.0, True, 1)]
    out = nstep.add(step_of(2, [4.0, 4.0]))
    # env 0's new episode has one step so far; env 1's first window completes
    assert rows(out) == [(1.0, 0, 1.0 + 1.0 + 1.0, 31.0, False, 3)]


def test_a_time_limit_closes_the_windows_but_they_still_bootstrap():
    nstep = NStepTransitions(4, GAMMA)
    for t in range(2):
        nstep.add(step_of(t, [1.0], num_envs=1))
    out = nstep.add(step_of(2, [1.0], num_envs=1), ended=[0])  # truncated: not terminated
    assert rows(out) == [
        (0.0, 0, 1.75, 30.0, False, 3),
        (10.0, 1, 1.5, 30.0, False, 2),
        (20.0, 2, 1.0, 30.0, False, 1),
    ]


def test_every_step_becomes_exactly_one_transition_on_a_real_environment():
    """CartPole with 3 sub-environments and n = 5: each (obs, action) started is returned
    once, its return is the discounted sum of the rewards that followed within its
    episode, and `next_obs` is the observation `horizon` steps later."""
    envs = make_vector_env("CartPole-v1", None, 3, seed=0)
    vector = VectorCollector(envs, seed=0)
    gamma = 0.9
    nstep, rng = NStepTransitions(5, gamma), np.random.default_rng(0)
    history: list[tuple[Transition, list[int]]] = []
    out = []
    for _ in range(300):
        step, episodes = vector.step(rng.integers(0, 2, size=3))
        ended = [episode.env_index for episode in episodes]
        history.append((step, ended))
        out.append(nstep.add(step, ended))
    got = Transition.concatenate(out)
    expected = []
    for env in range(3):
        starts_left = []  # (t, reward so far, horizon) of the env's open windows
        for t, (step, ended) in enumerate(history):
            starts_left.append([t, 0.0, 0])
            for window in starts_left:
                window[1] += gamma ** window[2] * float(step.reward[env])
                window[2] += 1
            for window in list(starts_left):
                if window[2] == 5 or env in ended:
                    start = history[window[0]][0]
                    expected.append(
                        (tuple(start.obs[env]), int(start.action[env]), window[1],
                         tuple(step.next_obs[env]), bool(step.terminated[env]), window[2])
                    )  # fmt: skip
                    starts_left.remove(window)
    assert got.batch_size == len(expected) > 850  # all but the last few of 900 steps
    assert got.horizon.max() == 5 and got.horizon.min() == 1 and got.terminated.any()
    by_obs = {(tuple(o), int(a)): (float(r), tuple(n), bool(d), int(h))
              for o, a, r, n, d, h in zip(*got, strict=True)}  # fmt: skip
    for obs, action, reward, next_obs, terminated, horizon in expected:
        r, n, d, h = by_obs[(obs, action)]
        assert (n, d, h) == (next_obs, terminated, horizon)
        assert r == pytest.approx(reward, rel=1e-5)
    envs.close()


def test_the_learner_bootstraps_with_gamma_to_the_horizon():
    assert n_step_discounts(0.9, 3).tolist() == pytest.approx([1.0, 0.9, 0.81, 0.729])
    reward = torch.tensor([1.0, 1.0, 1.0])
    terminated = torch.tensor([False, False, True])
    discount = n_step_discounts(0.9, 3)[torch.tensor([1, 3, 2], dtype=torch.int32)]
    next_q = torch.tensor([[2.0, 10.0], [2.0, 10.0], [2.0, 10.0]])
    target = double_dqn_target(reward, terminated, discount, next_q, next_q)
    assert target.tolist() == pytest.approx([1.0 + 0.9 * 10, 1.0 + 0.729 * 10, 1.0])


def test_an_n_step_update_uses_each_transitions_horizon():
    """Two learners from the same seed, one given horizons 1 and one horizons 3: their
    first TD targets differ by exactly (gamma^3 - gamma) * the bootstrapped value."""
    config = DQNConfig.from_spec(dqn_spec(hidden=[8], n_step=3))
    rng = np.random.default_rng(0)
    batch = Transition(
        obs=rng.normal(size=(8, 4)).astype(np.float32),
        action=rng.integers(0, 2, size=8),
        reward=rng.normal(size=8).astype(np.float32),
        next_obs=rng.normal(size=(8, 4)).astype(np.float32),
        terminated=np.zeros(8, dtype=bool),
        horizon=np.ones(8, dtype=np.int32),
    )
    one = DQNLearner(config, DISCRETE, seed=0).update(batch)["losses/td_target_mean"]
    three = DQNLearner(config, DISCRETE, seed=0).update(
        batch._replace(horizon=np.full(8, 3, dtype=np.int32))
    )["losses/td_target_mean"]
    learner = DQNLearner(config, DISCRETE, seed=0)
    with torch.no_grad():
        next_obs = torch.as_tensor(batch.next_obs)
        picked = learner.q_network(next_obs).argmax(dim=1, keepdim=True)
        value = learner.target_network(next_obs).gather(1, picked).mean().item()
    assert three - one == pytest.approx((0.9**3 - 0.9) * value, rel=1e-4, abs=1e-6)


def test_n_step_must_be_at_least_one():
    with pytest.raises(ValueError, match="n must be at least 1"):
        NStepTransitions(0, 0.9)
    with pytest.raises(ValueError, match=r"hyperparameters\.n_step"):
        DQNConfig.from_spec(dqn_spec(n_step=0))
