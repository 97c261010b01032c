"""Reading checkpoints back: the acting policy inside one, without pickle.

A checkpoint is safetensors bytes of the learner's full state (networks, optimiser,
counters) plus a JSON `meta` (algorithm, env, network description). This module turns
one into something that acts, for inference, export and visualisation.
"""

from __future__ import annotations

import json
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


def public_meta(meta: dict[str, Any], version: int, env_steps: int) -> dict[str, Any]:
    """What a checkpoint says about itself outside runt."""
    network = meta["network"]
    return {
        "format": "runt-policy/1",
        "algorithm": meta["algorithm"],
        "env_id": meta["env_id"],
        "env_params": meta.get("env_params", {}),
        "network": network,
        "observation_shape": [network["obs_dim"]],
        "n_actions": network.get("n_actions"),
        "version": version,
        "env_steps": env_steps,
        "updates": meta.get("updates"),
    }


def policy_file(meta: dict[str, Any], weights: bytes, version: int, env_steps: int) -> bytes:
    """The acting network's weights as a safetensors file whose header metadata holds
    the JSON that describes it (safetensors metadata is string -> string)."""
    from safetensors.torch import save

    tensors = policy_tensors(meta["algorithm"], bytes_to_state(weights))
    described = {"runt": json.dumps(public_meta(meta, version, env_steps))}
    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=described)


class GreedyQ(torch.nn.Module):
    """A Q-network that answers with the greedy action: what `runt export` writes."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(obs).argmax(dim=1)


def torchscript(meta: dict[str, Any], weights: bytes) -> torch.jit.ScriptModule:
    """A module that runs with plain torch: observations (batch, obs_dim) -> actions."""
    policy = policy_from_checkpoint(meta, weights)
    module = GreedyQ(policy.network).eval()
    return torch.jit.script(module)
