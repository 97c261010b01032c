"""Custom networks: a run's `policy: {path, kwargs}` names a class that runt imports and
builds in place of its own MLPs.

Importing a module runs its code, so only modules under the configured allow-list
(`training.allowed_modules`, actors/settings.py; default `actors.networks`) are imported,
by the web service when it checks a run and by the actors and inference when they build
the network.

The contract (`CONTRACTS`): for DQN, `Class(obs_dim, n_actions, **kwargs)` maps float32
observations (B, obs_dim) to Q-values (B, n_actions); for PPO and SAC, `Class(obs_dim,
**kwargs)` is a torso returning features (B, F) under runt's heads. Weights initialise from
torch's seeded global generator; `state_dict()` holds tensors only. The contract in full:
docs/algorithms.md (custom networks); the allow-list: docs/security.md.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from actors.settings import allowed_modules, module_allowed
from schemas.messages import PolicyRef

PROBE_BATCH = 2  # observations in the forward pass that checks a network's output
CONTRACTS = {
    1: "PPO and SAC build Class(obs_dim, **kwargs), a torso returning (batch, features)",
    2: "DQN builds Class(obs_dim, n_actions, **kwargs), returning (batch, n_actions) Q-values",
}


class PolicyError(ValueError):
    """A custom network that cannot be used; the message starts with the field at fault
    (`policy.path` or `policy.kwargs`)."""


def split_path(path: str) -> tuple[str, str]:
    """`package.module:Class` or `package.module.Class` -> (module, attribute)."""
    if ":" in path:
        module, _, name = path.partition(":")
    else:
        module, _, name = path.rpartition(".")
    return module, name


def load_class(ref: PolicyRef) -> type[nn.Module]:
    """The class `ref.path` names, imported only if its module is allowed."""
    module_name, name = split_path(ref.path)
    if not module_allowed(module_name):
        allowed = ", ".join(allowed_modules()) or "none"
        raise PolicyError(
            f"policy.path: module {module_name!r} is not under training.allowed_modules "
            f"({allowed}); an administrator can add it to the service config"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PolicyError(f"policy.path: cannot import {module_name!r}: {exc}") from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        what = "nothing" if found is None else type(found).__name__
        raise PolicyError(f"policy.path: {ref.path!r} is {what}, not a torch.nn.Module class")
    return found


def construct(ref: PolicyRef, *args: int) -> nn.Module:
    """`Class(*args, **kwargs)`; a failure blames the kwargs when there are any."""
    cls = load_class(ref)
    try:
        return cls(*args, **ref.kwargs)
    except Exception as exc:
        field = "policy.kwargs" if ref.kwargs else "policy.path"
        call = f"{cls.__name__}({', '.join(map(str, args))}{', **kwargs' if ref.kwargs else ''})"
        raise PolicyError(
            f"{field}: {call} failed: {type(exc).__name__}: {exc} ({CONTRACTS[len(args)]})"
        ) from None


def output_width(ref: PolicyRef, network: nn.Module, obs_dim: int) -> int:
    """F of the (B, F) float tensor the network returns for B observations (zeros)."""
    field = "policy.kwargs" if ref.kwargs else "policy.path"
    try:
        with torch.no_grad():
            out = network(torch.zeros(PROBE_BATCH, obs_dim))
    except Exception as exc:
        raise PolicyError(
            f"{field}: forward pass on observations of shape ({PROBE_BATCH}, {obs_dim}) "
            f"failed: {type(exc).__name__}: {exc}"
        ) from None
    if not (
        isinstance(out, torch.Tensor)
        and out.is_floating_point()
        and out.dim() == 2
        and out.shape[0] == PROBE_BATCH
        and out.shape[1] >= 1
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PolicyError(
            f"policy.path: returns {got} for observations of shape ({PROBE_BATCH}, {obs_dim}); "
            f"it must return a float tensor of shape ({PROBE_BATCH}, width)"
        )
    return int(out.shape[1])


def meta_of(ref: PolicyRef) -> dict[str, Any]:
    return ref.model_dump(mode="json")


def ref_of(meta: dict[str, Any]) -> PolicyRef | None:
    """The PolicyRef in a network's meta, if it has one."""
    described = meta.get("policy")
    return None if described is None else PolicyRef.model_validate(described)


class Torso(nn.Module):
    """A custom feature extractor (PPO, SAC); `width` is its F."""

    def __init__(self, ref: PolicyRef, obs_dim: int):
        super().__init__()
        self.net = construct(ref, obs_dim)
        self.width = output_width(ref, self.net, obs_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class CustomQNetwork(nn.Module):
    """A custom DQN network: observations -> one Q-value per action."""

    architecture = "custom_q"

    def __init__(self, ref: PolicyRef, obs_dim: int, n_actions: int):
        super().__init__()
        self.ref, self.obs_dim, self.n_actions = ref, obs_dim, n_actions
        self.net = construct(ref, obs_dim, n_actions)
        width = output_width(ref, self.net, obs_dim)
        if width != n_actions:
            raise PolicyError(
                f"policy.path: returns {width} values per observation; DQN needs one "
                f"Q-value per action, {n_actions}"
            )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.reshape(obs.shape[0], -1).float())

    def network_meta(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "hidden": [],
            "policy": meta_of(self.ref),
        }
