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

from actors.envs.build import EnvSpaces
from actors.networks.custom import CustomQNetwork, ref_of
from schemas.messages import PolicyRef

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
    spaces: EnvSpaces,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    seed: int | None = None,
    policy: PolicyRef | None = None,
) -> QNetwork | CustomQNetwork:
    """A Q-network for `spaces`: runt's MLP of `hidden`, or the run's custom `policy`
    (actors/networks/custom.py). With `seed`, the weights depend on the seed alone (the global
    torch generator is left as it was)."""
    if not spaces.discrete:
        raise ValueError("a Q-network needs a discrete action space")

    def build() -> QNetwork | CustomQNetwork:
        if policy is not None:
            return CustomQNetwork(policy, spaces.obs_dim, spaces.n_actions)
        return QNetwork(spaces.obs_dim, spaces.n_actions, hidden)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def network_from_meta(meta: dict[str, Any]) -> QNetwork | CustomQNetwork:
    """Rebuild an (untrained) network from `network_meta()`; load its weights after."""
    if meta.get("architecture") == CustomQNetwork.architecture:
        return CustomQNetwork(ref_of(meta), int(meta["obs_dim"]), int(meta["n_actions"]))
    if meta.get("architecture") != QNetwork.architecture:
        raise ValueError(f"unknown network architecture {meta.get('architecture')!r}")
    return QNetwork(int(meta["obs_dim"]), int(meta["n_actions"]), meta["hidden"])


# ---- networks a run can name as its `policy` (actors/networks/custom.py: the contract) ----

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {name!r}")
    return ACTIVATIONS[name]


class MLPTorso(nn.Module):
    """A torso for PPO and SAC: `hidden` layers with `activation`, optionally each
    followed by LayerNorm (Ba et al. 2016) before the activation.

    `policy: {path: actors.networks:MLPTorso, kwargs: {hidden: [64, 64], layer_norm: true}}`"""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        layer_norm: bool = False,
    ):
        super().__init__()
        if not hidden:
            raise ValueError("hidden needs at least one layer")
        act = _activation(activation)
        layers: list[nn.Module] = []
        for width in hidden:
            layers.append(nn.Linear(obs_dim, int(width)))
            if layer_norm:
                layers.append(nn.LayerNorm(int(width)))
            layers.append(act())
            obs_dim = int(width)
        self.layers = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs)


class DuelingQNetwork(nn.Module):
    """DQN's dueling architecture (Wang et al. 2016): a shared MLP, then a state value V
    and advantages A, combined as Q = V + A - mean(A).

    `policy: {path: actors.networks:DuelingQNetwork, kwargs: {hidden: [64, 64]}}`"""

    def __init__(
        self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64, 64), activation="relu"
    ):
        super().__init__()
        self.body = MLPTorso(obs_dim, hidden, activation)
        width = int(hidden[-1])
        self.value = nn.Linear(width, 1)
        self.advantage = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.body(obs)
        advantages = self.advantage(features)
        return self.value(features) + advantages - advantages.mean(dim=1, keepdim=True)
