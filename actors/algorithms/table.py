"""The algorithm table: every algorithm runt trains, by the name a run gives.

Adding an algorithm is one module with its `Algorithm` record (interfaces.py) and one
entry here; docs/algorithms.md has the checklist.
"""

from __future__ import annotations

from actors.algorithms.dqn import DQN
from actors.algorithms.interfaces import Algorithm
from actors.algorithms.ppo import PPO
from actors.algorithms.sac import SAC
from schemas.messages import RunSpec

ALGORITHMS: dict[str, Algorithm] = {"dqn": DQN, "ppo": PPO, "sac": SAC}
CONFIGS = {name: algorithm.config for name, algorithm in ALGORITHMS.items()}


def algorithm_of(spec: RunSpec) -> Algorithm:
    """The spec's algorithm; ValueError naming the field if runt has no such algorithm."""
    name = spec.algorithm.lower()
    if name not in ALGORITHMS:
        available = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"algorithm: {name} is not available yet (available: {available})")
    return ALGORITHMS[name]
