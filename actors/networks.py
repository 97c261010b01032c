"""Policy and value networks.

A network is described by a small JSON-able `meta` dict (architecture and sizes), so a
checkpoint or a weights message is rebuilt as `network_from_meta(meta)` plus
`load_state_dict(tensors)`: no pickled modules anywhere.

Initialisation is deterministic given the seed: PyTorch's default layer init draws from
the global CPU generator, so the trainer and every rollout worker that build version 0
from the run seed get identical weights without exchanging them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from actors.envs import EnvSpaces

DEFAULT_HIDDEN = (256, 256)


class QNetwork(nn.Module):
    """MLP from a flattened observation to one Q-value per discrete action."""

    architecture = "mlp_q"

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = DEFAULT_HIDDEN):
        super().__init__()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.hidden = tuple(int(h) for h in hidden)
        layers: list[nn.Module] = []
        in_features = obs_dim
        for width in self.hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, n_actions))
        self.layers = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs.reshape(obs.shape[0], -1).float())

    def network_meta(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
        }


def build_q_network(
    spaces: EnvSpaces, hidden: Sequence[int] = DEFAULT_HIDDEN, seed: int | None = None
) -> QNetwork:
    """A Q-network for `spaces`. With `seed`, the weights depend on the seed alone (the
    global torch generator is left as it was)."""
    if not spaces.discrete:
        raise ValueError("a Q-network needs a discrete action space")
    if seed is None:
        return QNetwork(spaces.obs_dim, spaces.n_actions, hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return QNetwork(spaces.obs_dim, spaces.n_actions, hidden)


def network_from_meta(meta: dict[str, Any]) -> QNetwork:
    """Rebuild an (untrained) network from `network_meta()`; load its weights after."""
    if meta.get("architecture") != QNetwork.architecture:
        raise ValueError(f"unknown network architecture {meta.get('architecture')!r}")
    return QNetwork(int(meta["obs_dim"]), int(meta["n_actions"]), meta["hidden"])
