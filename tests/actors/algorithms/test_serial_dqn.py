"""Environments, evaluation and the one-process DQN loop, up to learning CartPole."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from actors.algorithms.evaluate import evaluate, evaluation_envs
from actors.algorithms.serial import run_serial
from actors.envs.build import EnvError, EnvSpaces, VectorCollector, make_env, make_vector_env
from schemas.messages import RunSpec

PRESET = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "configs" / "dqn_cartpole.yaml").read_text()
)
CARTPOLE_X_LIMIT, CARTPOLE_ANGLE_LIMIT = 2.4, 0.2095  # where CartPole-v1 terminates


def preset_spec(seed: int = 0, **overrides) -> RunSpec:
    return RunSpec(**{"run_id": 1, "seed": seed, **PRESET, **overrides})


class ConstantPolicy:
    def __init__(self, action: int):
        self.action = action

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.full(len(obs), self.action)


def test_make_env_reports_the_environments_own_error():
    with pytest.raises(EnvError, match="NoSuchEnv-v0"):
        make_env("NoSuchEnv-v0", {})
    with pytest.raises(EnvError, match=r"CartPole-v1.*unexpected keyword argument 'gravity_x'"):
        make_vector_env("CartPole-v1", {"gravity_x": 3}, num_envs=2)


def test_env_params_reach_the_environment_and_spaces_are_described():
    env = make_env("CartPole-v1", {"max_episode_steps": 7}, seed=0)
    assert env.spec.max_episode_steps == 7
    spaces = EnvSpaces.from_env(env)
    assert spaces.obs_shape == (4,) and spaces.obs_dtype == np.float32
    assert spaces.n_actions == 2 and spaces.discrete and spaces.obs_dim == 4
    pendulum = EnvSpaces.from_env(make_env("Pendulum-v1"))
    assert pendulum.action_shape == (1,) and not pendulum.discrete


def test_collector_stores_the_final_observation_of_a_terminated_episode():
    envs = make_vector_env("CartPole-v1", {}, num_envs=3, seed=0)
    collector = VectorCollector(envs, seed=0)
    finished = []
    while not finished:  # always pushing right ends an episode within ~10 steps
        obs_before = collector.obs.copy()
        transition, finished = collector.step(np.ones(3, dtype=np.int64))
        assert transition.batch_size == 3
        assert np.array_equal(transition.obs, obs_before)
    for episode in finished:
        i = episode.env_index
        assert transition.terminated[i]
        x, _, angle, _ = transition.next_obs[i]
        assert abs(x) > CARTPOLE_X_LIMIT or abs(angle) > CARTPOLE_ANGLE_LIMIT  # the end state
        assert np.all(np.abs(collector.obs[i]) <= 0.05)  # while acting resumes from a reset
        assert episode.length == episode.reward  # +1 per step
    collector.close()


def test_a_time_limit_ends_the_episode_without_a_terminal_transition():
    envs = make_vector_env("CartPole-v1", {"max_episode_steps": 5}, num_envs=2, seed=1)
    collector = VectorCollector(envs, seed=1)
    wobble = [np.array([0, 1]), np.array([1, 0])]  # alternate pushes: no early failure
    for step in range(4):
        _, finished = collector.step(wobble[step % 2])
        assert not finished
    transition, finished = collector.step(wobble[0])
    assert [(e.env_index, e.length) for e in finished] == [(0, 5), (1, 5)]
    assert not transition.terminated.any()  # truncated: the learner still bootstraps
    assert not np.array_equal(transition.next_obs, collector.obs)
    collector.close()


def test_evaluate_scores_one_episode_per_environment():
    result = evaluate(ConstantPolicy(1), "CartPole-v1", {}, episodes=6, seed=3)
    assert result.episodes == 6 and len(result.returns) == 6
    assert 5 <= result.mean <= 15  # pushing one way topples the pole quickly
    assert result.std == pytest.approx(np.std(result.returns))
    again = evaluate(ConstantPolicy(1), "CartPole-v1", {}, episodes=6, seed=3)
    assert again.returns == result.returns


def test_evaluation_steps_cartpole_batched_with_the_same_dynamics():
    batched = evaluation_envs("CartPole-v1", {}, 4, seed=0)
    one_by_one = evaluation_envs("CartPole-v1", {"max_episode_steps": 500}, 4, seed=0)
    assert not isinstance(batched, gym.vector.SyncVectorEnv)
    assert isinstance(one_by_one, gym.vector.SyncVectorEnv)
    obs, _ = batched.reset(seed=1)
    one_by_one.reset(seed=2)
    for index, env in enumerate(one_by_one.envs):  # the same start in both
        env.unwrapped.state = batched.unwrapped.state[:, index].copy()
    rng = np.random.default_rng(0)
    running = np.ones(4, dtype=bool)
    while running.any():
        actions = rng.integers(0, 2, size=4)
        obs, rewards, terminated, truncated, _ = batched.step(actions)
        obs_1, rewards_1, terminated_1, _, _ = one_by_one.step(actions)
        assert np.array_equal(rewards[running], rewards_1[running])
        assert np.array_equal(terminated[running], terminated_1[running])
        running &= ~(terminated | truncated)  # (an ended one shows its next start)
        assert np.allclose(obs[running], obs_1[running], atol=1e-6)
    batched.close()
    one_by_one.close()


def test_serial_loop_wires_collection_replay_and_learning():
    spec = preset_spec(hyperparameters={**PRESET["hyperparameters"], "eval_interval_updates": 25})
    result = run_serial(spec, max_env_steps=1_200)
    assert result.stop_reason == "max_env_steps"
    assert result.env_steps == 1_200
    samples_per_insert = PRESET["hyperparameters"]["samples_per_insert"]
    learning_starts = PRESET["hyperparameters"]["learning_starts"]
    expected_updates = (1_200 - learning_starts) * samples_per_insert / PRESET["batch_size"]
    assert result.updates == pytest.approx(expected_updates, abs=10)
    assert [e.updates for e in result.evaluations] == list(range(25, result.updates + 1, 25))
    assert "losses/td_loss" in result.metrics
    assert result.episodes > 0


def test_serial_loop_stops_at_the_target_episode():
    result = run_serial(preset_spec(target_episode=5), max_env_steps=10_000)
    assert result.stop_reason == "target_episode"
    assert 5 <= result.episodes < 5 + 8  # one step of 8 environments may end several


@pytest.mark.slow
def test_the_preset_learns_cartpole_in_serial_mode():
    """Solved: the greedy policy averages >= 475 over 10 episodes (random play: ~22)."""
    result = run_serial(preset_spec(seed=3), max_env_steps=150_000, time_limit_s=80)
    best = max(e.mean for e in result.evaluations)
    assert result.solved_at is not None, (result.stop_reason, best, result.env_steps)
    assert result.solved_at.mean >= 475
