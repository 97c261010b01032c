"""Exploration: epsilon-greedy schedules for the acting policy.

Every schedule answers one question, `epsilons(actors, env_steps)`: the epsilon for each
acting slot (a sub-environment of a rollout worker; `actor_ids` numbers them run-wide)
after `env_steps` environment steps of the whole run.

* `ApeXEpsilons`: a fixed epsilon per actor, spread from exploratory to nearly greedy,
  as in Ape-X (Horgan et al. 2018, "Distributed Prioritized Experience Replay"):
  eps_i = eps ** (1 + alpha * i / (N - 1)) with eps = 0.4, alpha = 7.
* `LinearEpsilon`: the same epsilon for every actor, annealed linearly from `start` to
  `end` over the first `fraction` of a budget of env steps, then held (Mnih et al. 2015;
  stable-baselines3's `exploration_fraction`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

APEX_EPSILON = 0.4  # Horgan et al. 2018, section 4.1
APEX_ALPHA = 7.0


class EpsilonSchedule(Protocol):
    def epsilons(self, actors: np.ndarray, env_steps: int) -> np.ndarray: ...


def actor_ids(worker: int, envs_per_worker: int) -> np.ndarray:
    """Run-wide indices of a worker's sub-environments: worker w owns a contiguous block."""
    return np.arange(worker * envs_per_worker, (worker + 1) * envs_per_worker)


class ApeXEpsilons:
    """Fixed per-actor epsilons; the schedule does not change with env steps."""

    def __init__(self, num_actors: int, epsilon: float = APEX_EPSILON, alpha: float = APEX_ALPHA):
        if num_actors < 1:
            raise ValueError(f"num_actors must be at least 1, got {num_actors}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        spread = np.arange(num_actors) / max(num_actors - 1, 1)  # a single actor gets eps
        self.table = epsilon ** (1.0 + alpha * spread)

    def epsilons(self, actors: np.ndarray, env_steps: int = 0) -> np.ndarray:
        return self.table[np.asarray(actors)]


class LinearEpsilon:
    """start -> end linearly over `fraction * budget_steps` env steps, then `end`."""

    def __init__(self, start: float, end: float, fraction: float, budget_steps: int):
        for name, value in (("start", start), ("end", end), ("fraction", fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if budget_steps < 1:
            raise ValueError(f"budget_steps must be at least 1, got {budget_steps}")
        self.start = start
        self.end = end
        self.anneal_steps = fraction * budget_steps

    def value(self, env_steps: int) -> float:
        if env_steps >= self.anneal_steps:
            return self.end
        progress = env_steps / self.anneal_steps
        return self.start + progress * (self.end - self.start)

    def epsilons(self, actors: np.ndarray, env_steps: int) -> np.ndarray:
        return np.full(len(actors), self.value(env_steps))


def make_exploration(
    kind: str,
    num_actors: int,
    *,
    initial_eps: float = 1.0,
    final_eps: float = 0.05,
    fraction: float = 0.1,
    budget_steps: int = 100_000,
    apex_epsilon: float = APEX_EPSILON,
    apex_alpha: float = APEX_ALPHA,
) -> EpsilonSchedule:
    """The schedule named by the `exploration` hyperparameter: "apex" or "linear"."""
    if kind == "apex":
        return ApeXEpsilons(num_actors, apex_epsilon, apex_alpha)
    if kind == "linear":
        return LinearEpsilon(initial_eps, final_eps, fraction, budget_steps)
    raise ValueError(f"exploration: unknown schedule {kind!r}; choose 'apex' or 'linear'")
