"""The algorithm interface: what the rollout, buffer and trainer roles (and the serial
loop, `serial.py`) need to know about an algorithm, as one `Algorithm` record per
algorithm, and the protocols of its parts (config, learner, policy, collector).
Concrete pieces live beside it: the algorithms in their own modules, the shared
collectors in `collectors.py`, the table in `table.py`.
See docs/algorithms.md for what each field means and the checklist for adding one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch

from actors.envs.build import EnvSpaces, Episode, VectorCollector
from actors.networks.policies import ActionBounds
from schemas.messages import RunSpec

BufferKind = Literal["replay", "on_policy"]
ActionKind = Literal["discrete", "box"]


class Config(Protocol):
    """An algorithm's frozen settings, from a RunSpec (DQNConfig, PPOConfig, SACConfig).
    The actors read these: `num_workers`, `envs_per_worker`, `hidden`,
    `weights_publish_interval` (updates per policy version), `eval_interval_updates`,
    `eval_episodes`; the replay path also `batch_size`, `buffer_size`, `learning_starts`,
    `replay_ratio`, `rate_error_buffer` and (the serial loop's) `rate_limiter(insert_chunk)`."""

    num_workers: int
    envs_per_worker: int
    hidden: tuple[int, ...]


class Learner(Protocol):
    """`update` on what the buffer sends; weights for workers; full state for checkpoints."""

    updates: int

    def update(self, batch: Any) -> dict[str, float]: ...

    def network_meta(self) -> dict[str, Any]: ...

    def policy_state(self) -> dict[str, torch.Tensor]: ...

    def state(self) -> dict[str, torch.Tensor]: ...

    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...


class Policy(Protocol):
    """A rollout worker's acting policy: loads the learner's `policy_state()`; `greedy`
    is what evaluation plays."""

    def load(self, policy_state: dict[str, torch.Tensor]) -> None: ...

    def greedy(self, obs: np.ndarray) -> np.ndarray: ...


class ActingPolicy(Protocol):
    """A trained policy as inference uses it: greedy, or sampled (`epsilons` is DQN's
    exploration; stochastic policies sample from themselves and ignore it)."""

    def greedy(self, obs: np.ndarray) -> np.ndarray: ...

    def act(self, obs: np.ndarray, epsilons, rng: np.random.Generator) -> np.ndarray: ...


class Collected(NamedTuple):
    """One `Collector.collect` call: a frame's arrays when one is complete (else None),
    the training episodes that ended, and the env steps taken (all sub-environments)."""

    arrays: dict[str, np.ndarray] | None
    episodes: list[Episode]
    env_steps: int


class Collector(Protocol):
    """What a rollout worker runs between broker polls. `run_steps` is the run's env
    steps so far, approximately (exploration schedules and warm-ups depend on it).
    `flush` hands out what `collect` holds back for a fuller frame (None if nothing):
    a worker about to wait ships it, and the serial loop takes it after every call."""

    def collect(self, run_steps: int) -> Collected: ...

    def flush(self) -> dict[str, np.ndarray] | None: ...


@dataclass(frozen=True)
class EnvShape:
    """An environment's spaces, and its action bounds when the actions are a Box."""

    spaces: EnvSpaces
    bounds: ActionBounds | None

    @classmethod
    def of(cls, env: gym.Env | gym.vector.VectorEnv) -> EnvShape:
        spaces = EnvSpaces.from_env(env)
        return cls(spaces, None if spaces.discrete else ActionBounds.from_env(env))


@dataclass(frozen=True)
class Algorithm:
    """One algorithm as the actors see it (see the module docstring)."""

    name: str
    config: Any  # the config class: `config.from_spec(spec)` -> a Config
    buffer: BufferKind
    action_kinds: tuple[ActionKind, ...]  # the action spaces it can act in
    make_learner: Callable[[Any, EnvShape, int], Learner]  # (config, shape, seed)
    make_policy: Callable[[Any, EnvShape, int], Policy]  # version 0 from the run seed
    make_collector: Callable[[Any, Any, VectorCollector, int, np.random.Generator], Collector]
    policy_from_meta: Callable[[dict[str, Any], dict[str, torch.Tensor]], Policy]
    policy_prefix: str  # where `policy_state()` sits in the learner's `state()`
    acting_policy: Callable[[Policy], ActingPolicy]  # a loaded policy, for inference
    greedy_module: Callable[[Policy], torch.nn.Module]  # observations -> greedy actions
    segment_type: Any = None  # on-policy: the NamedTuple a segment frame's arrays make

    def config_of(self, spec: RunSpec) -> Any:
        return self.config.from_spec(spec)

    def policy_tensors(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The acting policy's weights out of a learner's full state."""
        prefix = self.policy_prefix
        return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def action_kind(space: gym.Space) -> ActionKind | None:
    """How runt's algorithms see an action space: discrete, a 1-D Box, or neither."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "box"
    return None
