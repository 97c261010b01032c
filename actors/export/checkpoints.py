"""Reading checkpoints back: the acting policy inside one, without pickle.

A checkpoint is safetensors bytes of the learner's full state (networks, optimiser,
counters) plus a JSON `meta` (algorithm, env, network description). This module turns
one into something that acts, for inference, export and visualisation, for every
algorithm of the registry: its record says where the acting weights sit in the state
(`policy_prefix`), how to rebuild the policy and how it acts.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from actors.algorithms.interfaces import ActingPolicy, Algorithm
from actors.algorithms.table import ALGORITHMS
from broker.codec import bytes_to_state

__all__ = ["POLICY_PREFIX", "ActingPolicy", "policy_file", "policy_from_checkpoint"]

POLICY_PREFIX = {name: algorithm.policy_prefix for name, algorithm in ALGORITHMS.items()}


def algorithm_of(meta: dict[str, Any]) -> Algorithm:
    algorithm = ALGORITHMS.get(meta["algorithm"])
    if algorithm is None:
        raise ValueError(f"checkpoints of {meta['algorithm']} cannot be loaded for acting")
    return algorithm


def policy_tensors(algorithm: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The acting network's weights out of a learner's full state."""
    return algorithm_of({"algorithm": algorithm}).policy_tensors(state)


def loaded_policy(meta: dict[str, Any], weights: bytes):
    """The algorithm's own policy object (QPolicy, PPOPolicy, SACPolicy) with the weights."""
    algorithm = algorithm_of(meta)
    state = bytes_to_state(weights)
    return algorithm.policy_from_meta(meta["network"], algorithm.policy_tensors(state))


def policy_from_checkpoint(meta: dict[str, Any], weights: bytes) -> ActingPolicy:
    """`greedy(obs)` and `act(obs, epsilons, rng)`, whatever the algorithm."""
    return algorithm_of(meta).acting_policy(loaded_policy(meta, weights))


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


def torchscript(meta: dict[str, Any], weights: bytes) -> torch.jit.ScriptModule:
    """A module that runs with plain torch: observations (batch, obs_dim) -> greedy
    actions (DQN, PPO discrete: action indices; PPO Box, SAC: actions in the bounds).
    A custom network that TorchScript cannot compile is traced instead."""
    module = algorithm_of(meta).greedy_module(loaded_policy(meta, weights)).eval()
    try:
        return torch.jit.script(module)
    except Exception:
        if "policy" not in meta["network"]:
            raise
    example = torch.zeros(2, int(meta["network"]["obs_dim"]))
    with torch.no_grad():
        return torch.jit.trace(module, example, check_trace=False)
