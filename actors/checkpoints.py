"""Reading checkpoints back: the acting policy inside one, without pickle.

A checkpoint is safetensors bytes of the learner's full state (networks, optimiser,
counters) plus a JSON `meta` (algorithm, env, network description). This module turns
one into something that acts, for inference, export and visualisation.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from actors.dqn import QPolicy
from broker.codec import bytes_to_state

POLICY_PREFIX = {"dqn": "q_network."}


class ActingPolicy(Protocol):
    def greedy(self, obs: np.ndarray) -> np.ndarray: ...

    def act(self, obs: np.ndarray, epsilons, rng: np.random.Generator) -> np.ndarray: ...


def policy_tensors(algorithm: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The acting network's weights out of a learner's full state."""
    prefix = POLICY_PREFIX[algorithm]
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def policy_from_checkpoint(meta: dict[str, Any], weights: bytes) -> ActingPolicy:
    algorithm = meta["algorithm"]
    if algorithm not in POLICY_PREFIX:
        raise ValueError(f"checkpoints of {algorithm} cannot be loaded for acting yet")
    state = bytes_to_state(weights)
    return QPolicy.from_meta(meta["network"], policy_tensors(algorithm, state))
