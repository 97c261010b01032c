"""Networks and an environment for the custom-network tests: importable as
`tests.custom_nets`, which the tests add to the allow-list (it is not in the default)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

ENV_ID = "RuntTestShortCartPole-v0"
gym.register(ENV_ID, entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=50)


class OneTooManyQ(nn.Module):
    """DQN contract, but one output too many."""

    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.layer = nn.Linear(obs_dim, n_actions + 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layer(obs)


class FlatTorso(nn.Module):
    """Returns one number per batch instead of (batch, features)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.layer = nn.Linear(obs_dim, 8)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layer(obs).sum()


class BrokenTorso(nn.Module):
    def __init__(self, obs_dim: int, width: int = 8):
        super().__init__()
        self.layer = nn.Linear(obs_dim + 1, width)  # the wrong input size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layer(obs)


class GatedTorso(nn.Module):
    """A torso TorchScript cannot compile (a Python-side dict of options), but tracing
    can export."""

    def __init__(self, obs_dim: int, width: int = 16):
        super().__init__()
        self.options = {"scale": lambda x: 2.0 * x}
        self.layer = nn.Linear(obs_dim, width)
        self.gate = nn.Linear(obs_dim, width)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(obs)) * torch.sigmoid(self.options["scale"](self.gate(obs)))


NOT_A_MODULE = 3
