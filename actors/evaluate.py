"""Greedy evaluation: how a policy scores without exploration, as RL benchmarks report.

All episodes run side by side in one vector env, one episode per sub-environment, so the
policy does one batched forward pass per step. Taking exactly the first episode of every
sub-environment (rather than the first N episodes to finish) keeps the estimate
unbiased: short episodes are not over-represented.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

from actors.envs import make_vector_env


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
    """Play `episodes` episodes with `policy.greedy`; environments are seeded
    `seed, seed + 1, ...`. An episode still running after `max_episode_steps` steps
    (an environment without a time limit) is scored as it stands."""
    envs = make_vector_env(env_id, env_params, episodes, seed)
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
