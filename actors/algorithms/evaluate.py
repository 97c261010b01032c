"""Greedy evaluation: how a policy scores without exploration, as RL benchmarks report.

All episodes run side by side in one vector env, one episode per sub-environment, so the
policy does one batched forward pass per step. Taking exactly the first episode of every
sub-environment (rather than the first N episodes to finish) keeps the estimate
unbiased: short episodes are not over-represented. Where Gymnasium registers a batched
implementation of the environment (CartPole: one NumPy step for all sub-environments,
the same dynamics) and the run sets no environment parameters, that one plays them:
stepping the sub-environments one by one would cost more than the policy's forward pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from actors.envs.build import make_vector_env


class GreedyActor(Protocol):
    def greedy(self, obs: np.ndarray) -> np.ndarray: ...


class EvalResult(NamedTuple):
    mean: float
    std: float
    episodes: int
    returns: list[float]


def evaluate(
    policy: GreedyActor,
    env_id: str,
    env_params: dict[str, Any] | None,
    episodes: int,
    seed: int | None = None,
    max_episode_steps: int = 100_000,
) -> EvalResult:
    """Play `episodes` episodes with `policy.greedy`; environments are seeded from
    `seed` (`seed, seed + 1, ...` one by one). An episode still running after
    `max_episode_steps` steps (an environment without a time limit) is scored as it
    stands."""
    envs = evaluation_envs(env_id, env_params, episodes, seed)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        for _ in range(max_episode_steps):
            obs, rewards, terminated, truncated, _ = envs.step(policy.greedy(obs))
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        envs.close()
    return EvalResult(float(returns.mean()), float(returns.std()), episodes, returns.tolist())


def evaluation_envs(
    env_id: str, env_params: dict[str, Any] | None, episodes: int, seed: int | None
) -> gym.vector.VectorEnv:
    """The environment's registered batched implementation when it has one and no
    parameters are set, else `make_vector_env` (one environment per episode)."""
    registered = gym.registry.get(env_id)
    if registered is not None and registered.vector_entry_point and not env_params:
        return gym.make_vec(env_id, num_envs=episodes, vectorization_mode="vector_entry_point")
    return make_vector_env(env_id, env_params, episodes, seed)
