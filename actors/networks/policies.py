"""Actor-critic networks, action distributions and the plumbing PPO and SAC share.

* `ActionBounds` — a Box action space's bounds (EnvSpaces carries only shapes): PPO clips
  its Gaussian samples to them when stepping, SAC rescales its tanh-squashed actions.
* Log-probabilities and entropies written out (no torch.distributions on the hot path):
  diagonal Gaussian, categorical, and the tanh-squashed Gaussian of SAC.
* `ActorCritic` (PPO) and `SquashedGaussianActor` / `TwinQ` (SAC). Each network is
  described by a JSON-able `network_meta()` and rebuilt with `network_from_meta`, as
  QNetwork is; built from a seed, its initial weights depend on the seed alone.
* `config_from_spec`, flat safetensors-compatible state dicts for optimisers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter, ValidationError
from torch import nn

from actors.envs.build import EnvSpaces
from actors.networks.custom import Torso, meta_of, ref_of
from schemas.messages import PolicyRef, RunSpec

LOG_2PI = math.log(2 * math.pi)
SAC_LOG_STD_MIN, SAC_LOG_STD_MAX = -20.0, 2.0  # stable-baselines3 sac/policies.py
RUN_FIELDS = ("learning_rate", "batch_size", "buffer_size", "gamma", "seed", "num_workers")
T = TypeVar("T")


# ---- action bounds and distributions ---------------------------------------------------------


class ActionBounds(NamedTuple):
    """Elementwise bounds of a 1-D Box action space, float32."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_env(cls, env: gym.Env | gym.vector.VectorEnv) -> ActionBounds:
        space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"action space {space} is not a 1-D Box")
        return cls(space.low.astype(np.float32), space.high.astype(np.float32))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ActionBounds:
        return cls(
            np.asarray(meta["action_low"], np.float32), np.asarray(meta["action_high"], np.float32)
        )

    def clip(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, self.low, self.high)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] -> [low, high]."""
        return (self.low + (unit + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def to_unit(self, actions: np.ndarray) -> np.ndarray:
        """[low, high] -> [-1, 1]."""
        return (2.0 * (actions - self.low) / (self.high - self.low) - 1.0).astype(np.float32)

    def meta(self) -> dict[str, list[float]]:
        return {"action_low": self.low.tolist(), "action_high": self.high.tolist()}


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, exp(log_std)^2), summed over the last (action) axis."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian: sum of log_std + (1 + log 2 pi) / 2."""
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def squashed_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor
) -> torch.Tensor:
    """log-density of tanh(u), u ~ N(mean, std): the Gaussian's minus the log-Jacobian,
    sum log(1 - tanh(u)^2) (Haarnoja et al. 2018, appendix C), in the overflow-free form
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))."""
    log_jacobian = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return gaussian_log_prob(mean, log_std, pre_tanh) - log_jacobian.sum(-1)


# ---- networks ---------------------------------------------------------------------------------


def mlp(in_features: int, hidden: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    """Hidden layers only; callers add their heads."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), activation()]
        in_features = width
    return nn.Sequential(*layers)


def orthogonal_(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights, zero bias (Engstrom et al. 2020; stable-baselines3's ortho_init)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def seeded(seed: int | None, build: Callable[[], T]) -> T:
    """`build()` with the global torch generator seeded, and restored afterwards."""
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class ActorCritic(nn.Module):
    """PPO's separate policy and value MLPs (tanh), stable-baselines3's MlpPolicy layout.

    Discrete actions: categorical logits. Box actions: a Gaussian mean and a
    state-independent log-std parameter (initial 0, stable-baselines3's log_std_init)."""

    architecture = "mlp_actor_critic"

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int],
        n_actions: int | None = None,
        bounds: ActionBounds | None = None,
        policy: PolicyRef | None = None,
    ):
        super().__init__()
        if (n_actions is None) == (bounds is None):
            raise ValueError("give n_actions (discrete) or bounds (Box), not both")
        self.obs_dim, self.hidden = obs_dim, tuple(int(h) for h in hidden)
        self.n_actions, self.bounds, self.policy = n_actions, bounds, policy
        out = n_actions if n_actions is not None else len(bounds.low)
        if (
            policy is not None
        ):  # the run's own torsos (actors/networks/custom.py), initialised by it
            self.policy_body, self.value_body = Torso(policy, obs_dim), Torso(policy, obs_dim)
            policy_width, value_width = self.policy_body.width, self.value_body.width
        else:
            policy_width = value_width = self.hidden[-1] if self.hidden else obs_dim
            self.policy_body = mlp(obs_dim, self.hidden, nn.Tanh)
            self.value_body = mlp(obs_dim, self.hidden, nn.Tanh)
            for layer in [*self.policy_body, *self.value_body]:
                if isinstance(layer, nn.Linear):
                    orthogonal_(layer, math.sqrt(2))
        self.policy_head = orthogonal_(nn.Linear(policy_width, out), 0.01)
        self.value_head = orthogonal_(nn.Linear(value_width, 1), 1.0)
        self.log_std = nn.Parameter(torch.zeros(out)) if bounds is not None else None

    @property
    def discrete(self) -> bool:
        return self.n_actions is not None

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.value_body(obs.reshape(obs.shape[0], -1).float())).squeeze(-1)

    def policy_out(self, obs: torch.Tensor) -> torch.Tensor:
        """Categorical logits, or the Gaussian mean."""
        return self.policy_head(self.policy_body(obs.reshape(obs.shape[0], -1).float()))

    def log_prob_entropy(
        self, out: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            return categorical_log_prob(out, actions), categorical_entropy(out)
        log_std = self.log_std.expand_as(out)
        return gaussian_log_prob(out, log_std, actions), gaussian_entropy(log_std)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob of `actions`, entropy, value) for a batch: what PPO's loss needs."""
        logp, entropy = self.log_prob_entropy(self.policy_out(obs), actions)
        return logp, entropy, self.value(obs)

    def network_meta(self) -> dict[str, Any]:
        meta = {"architecture": self.architecture, "obs_dim": self.obs_dim}
        meta |= {"hidden": list(self.hidden), "n_actions": self.n_actions}
        if self.policy is not None:
            meta["policy"] = meta_of(self.policy)
        return meta | (self.bounds.meta() if self.bounds is not None else {})


class SquashedGaussianActor(nn.Module):
    """SAC's actor: ReLU MLP to a mean and a state-dependent log-std (clamped to
    [-20, 2], stable-baselines3); actions are tanh(u) in [-1, 1], rescaled to the bounds
    outside the network."""

    architecture = "mlp_squashed_gaussian"

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int],
        bounds: ActionBounds,
        policy: PolicyRef | None = None,
    ):
        super().__init__()
        self.obs_dim, self.hidden, self.bounds = obs_dim, tuple(int(h) for h in hidden), bounds
        self.action_dim, self.policy = len(bounds.low), policy
        if policy is not None:  # the run's own torso (actors/networks/custom.py)
            self.body = Torso(policy, obs_dim)
            width = self.body.width
        else:
            width = self.hidden[-1] if self.hidden else obs_dim
            self.body = mlp(obs_dim, self.hidden, nn.ReLU)
        self.mean_head = nn.Linear(width, self.action_dim)
        self.log_std_head = nn.Linear(width, self.action_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.body(obs.reshape(obs.shape[0], -1).float())
        log_std = self.log_std_head(latent).clamp(SAC_LOG_STD_MIN, SAC_LOG_STD_MAX)
        return self.mean_head(latent), log_std

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised tanh(mean + std * noise) in [-1, 1] and its log-prob."""
        mean, log_std = self(obs)
        pre_tanh = mean + log_std.exp() * noise
        return torch.tanh(pre_tanh), squashed_gaussian_log_prob(mean, log_std, pre_tanh)

    def network_meta(self) -> dict[str, Any]:
        meta = {"architecture": self.architecture, "obs_dim": self.obs_dim}
        if self.policy is not None:
            meta["policy"] = meta_of(self.policy)
        return meta | {"hidden": list(self.hidden)} | self.bounds.meta()


class TwinQ(nn.Module):
    """Two independent Q(s, a) MLPs (Fujimoto et al. 2018's clipped double Q, as SAC uses);
    actions enter in the [-1, 1] scale of the actor."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]):
        super().__init__()
        width = hidden[-1] if hidden else obs_dim + action_dim
        self.q1 = nn.Sequential(*mlp(obs_dim + action_dim, hidden, nn.ReLU), nn.Linear(width, 1))
        self.q2 = nn.Sequential(*mlp(obs_dim + action_dim, hidden, nn.ReLU), nn.Linear(width, 1))

    def forward(self, obs: torch.Tensor, unit_action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = torch.cat([obs.reshape(obs.shape[0], -1).float(), unit_action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def build_actor_critic(
    spaces: EnvSpaces,
    hidden: Sequence[int],
    seed: int | None = None,
    action_bounds: ActionBounds | None = None,
    policy: PolicyRef | None = None,
) -> ActorCritic:
    """PPO's network for `spaces` (torsos: MLPs of `hidden`, or the run's custom `policy`);
    a Box action space needs its bounds."""
    if spaces.discrete:
        return seeded(
            seed,
            lambda: ActorCritic(spaces.obs_dim, hidden, n_actions=spaces.n_actions, policy=policy),
        )
    if action_bounds is None or (len(action_bounds.low),) != spaces.action_shape:
        raise ValueError(f"a Box action space {spaces.action_shape} needs its 1-D action_bounds")
    return seeded(
        seed, lambda: ActorCritic(spaces.obs_dim, hidden, bounds=action_bounds, policy=policy)
    )


def network_from_meta(meta: dict[str, Any]) -> ActorCritic | SquashedGaussianActor:
    """Rebuild an (untrained) PPO or SAC policy network from its `network_meta()`."""
    architecture = meta.get("architecture")
    if architecture == ActorCritic.architecture:
        bounds = ActionBounds.from_meta(meta) if meta.get("n_actions") is None else None
        return ActorCritic(
            int(meta["obs_dim"]), meta["hidden"], meta.get("n_actions"), bounds, ref_of(meta)
        )
    if architecture == SquashedGaussianActor.architecture:
        return SquashedGaussianActor(
            int(meta["obs_dim"]), meta["hidden"], ActionBounds.from_meta(meta), ref_of(meta)
        )
    raise ValueError(f"unknown network architecture {architecture!r}")


# ---- learner plumbing -------------------------------------------------------------------------


def config_from_spec(cls: type[T], spec: RunSpec, algorithm: str) -> T:
    """A frozen config dataclass from the spec's own fields (those `cls` has) and its
    `hyperparameters` over the defaults; a ValueError names the offending field."""
    if spec.algorithm.lower() != algorithm:
        raise ValueError(f"algorithm: expected {algorithm!r}, got {spec.algorithm!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in spec.hyperparameters:
        if key in (*RUN_FIELDS, "policy"):
            raise ValueError(f"hyperparameters.{key}: set it as the run's own field")
        if key not in names:
            raise ValueError(f"hyperparameters.{key}: unknown {algorithm.upper()} hyperparameter")
    values = {name: getattr(spec, name) for name in (*RUN_FIELDS, "policy") if name in names}
    try:
        config = TypeAdapter(cls).validate_python(values | spec.hyperparameters)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{field_name(where)}: {first['msg']}") from None
    config.check()
    return config


def field_name(name: str) -> str:
    """How an error names a config field: a run field as is, else under hyperparameters."""
    return name if name in RUN_FIELDS else f"hyperparameters.{name}"


def require_positive(config: object, names: Sequence[str]) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{field_name(name)}: must be positive")


def module_state(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter tensors, flat (its hyperparameters come from config)."""
    flat = {}
    for index, param_state in optimizer.state_dict()["state"].items():
        flat |= {f"{prefix}.{index}.{k}": v.clone() for k, v in param_state.items()}
    return flat


def section(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    prefix += "."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor], prefix: str
) -> None:
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in section(state, prefix).items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value.clone()
    param_groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": per_param, "param_groups": param_groups})
