"""The algorithm interface: what the rollout, buffer and trainer actors need to know about
an algorithm, as one record per algorithm (`Algorithm`), plus the pieces they share.

The actors are generic; an algorithm says
* what a rollout worker sends (`make_collector`): transitions in frames for the replay
  path (`TransitionCollector`, DQN and SAC, each with its own way of picking actions;
  DQN's may be n-step transitions), or fixed-length segments of its current policy for
  the on-policy path (PPO's `SegmentCollector`);
* which buffer it uses (`buffer`): `replay` — the ring buffer with its samples-per-insert
  rate limiter (actors/buffer.py) — or `on_policy` — segments of the current policy
  version only, one training batch per version (actors/onpolicy.py);
* how its learner updates (`make_learner`): `update(batch)` on a sampled `Transition`
  minibatch (replay) or on the list of `Segment`s of one version (on-policy);
* how its policy acts (`make_policy`, `policy_from_meta`) and where the acting weights
  sit in a checkpoint (`policy_prefix`), so inference, export and evaluation work for
  every algorithm alike.

Adding an algorithm: one module with its config, learner, policy and its `Algorithm`
record, and one entry in `actors/registry.py`'s `ALGORITHMS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch

from actors.envs import EnvSpaces, Episode, VectorCollector
from actors.nstep import NStepTransitions
from actors.policies import ActionBounds
from actors.replay import Transition
from schemas.messages import RunSpec

BufferKind = Literal["replay", "on_policy"]
ActionKind = Literal["discrete", "box"]
# Experience frames (replay path) are sized in bytes: a frame costs a worker a publish
# of a few hundred microseconds (py-amqp's framing and a socket write, code that runs cold
# between steps) whatever its size, so a frame holds as many transitions as fit in
# FRAME_BYTES (1,337 of CartPole's 49-byte rows; fewer of a bigger observation, which
# also keeps a frame well inside RabbitMQ's message size limit), at most
# EXPERIENCE_BATCH. A frame also goes out once its first transition is FRAME_MAX_AGE_S
# old: the size bounds what frames cost, the age how long the learner waits for what is
# in them (20 ms is 160 transitions at a training run's ~8,000 env steps/s).
FRAME_BYTES = 64 * 1024
EXPERIENCE_BATCH = 4096
FRAME_MAX_AGE_S = 0.02


# ---- roles --------------------------------------------------------------------------------


class Config(Protocol):
    """An algorithm's frozen settings, from a RunSpec (DQNConfig, PPOConfig, SACConfig).
    The actors read these: `num_workers`, `envs_per_worker`, `hidden`,
    `weights_publish_interval` (updates per policy version), `eval_interval_updates`,
    `eval_episodes`; the replay path also `batch_size`, `buffer_size`, `learning_starts`,
    `replay_ratio` and `rate_error_buffer`."""

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
    steps so far, approximately (exploration schedules and warm-ups depend on it)."""

    def collect(self, run_steps: int) -> Collected: ...


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


# ---- shared pieces ----------------------------------------------------------------------------


def action_kind(space: gym.Space) -> ActionKind | None:
    """How runt's algorithms see an action space: discrete, a 1-D Box, or neither."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "box"
    return None


class TransitionCollector:
    """The replay path's collector: one step of every sub-environment per call with the
    actions `choose(obs, run_steps)` picks; a frame of `Transition` arrays once at least
    `batch` transitions are pending (default: what fits in `FRAME_BYTES`, see above) or
    the frame's first step is `max_age_s` old (by `clock`). With `nstep`
    (actors/nstep.py) the transitions are its n-step ones, which a step completes a
    varying number of.

    Each step's transitions are written straight into the rows of the frame being filled,
    so a frame costs one allocation per field instead of a `Transition` per step and a
    concatenate.
    """

    def __init__(
        self,
        vector: VectorCollector,
        choose: Callable[[np.ndarray, int], np.ndarray],
        batch: int | None = None,
        nstep: NStepTransitions | None = None,
        max_age_s: float = FRAME_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.vector = vector
        self.choose = choose
        self.batch = batch  # None: sized by the first transition's bytes
        self.nstep = nstep
        self.max_age_s = max_age_s
        self.clock = clock
        self.opened_at = 0.0  # when the frame being filled got its first step
        # a step completes at most one transition per sub-environment and window step
        self.per_step = vector.num_envs * (nstep.n if nstep else 1)
        self.frame: dict[str, np.ndarray] | None = None
        self.columns: list[np.ndarray] = []  # the frame's arrays in Transition's field order
        # The vector collector's shared horizon array (all ones), not copied row by row
        self.ones = getattr(vector, "horizon", None)
        self.filled = 0  # rows written into `frame`

    def collect(self, run_steps: int) -> Collected:
        actions = self.choose(self.vector.obs, run_steps)
        transition, episodes = self.vector.step(actions)
        if self.nstep is not None:
            transition = self.nstep.add(transition, [e.env_index for e in episodes])
        if self.frame is None:  # shapes and dtypes as the environment returns them
            if self.batch is None:
                self.batch = frame_rows(transition)
            capacity = self.batch + self.per_step
            self.columns = [
                np.empty((capacity, *value.shape[1:]), value.dtype) for value in transition
            ]
            self.frame = dict(zip(Transition._fields, self.columns, strict=True))
            self.columns[-1].fill(1)  # horizons: one-step transitions leave them at 1
        if not self.filled:
            self.opened_at = self.clock()
        obs, action, reward, next_obs, terminated, horizon = transition
        start = self.filled
        self.filled = stop = start + len(reward)
        rows = slice(start, stop)
        columns = self.columns  # unrolled: a loop over the fields cost a microsecond a step
        columns[0][rows] = obs
        columns[1][rows] = action
        columns[2][rows] = reward
        columns[3][rows] = next_obs
        columns[4][rows] = terminated
        if horizon is not self.ones:  # else the horizons the column was filled with
            columns[5][rows] = horizon
        arrays = None
        if stop >= self.batch or self.clock() - self.opened_at >= self.max_age_s:
            arrays = self.flush()  # a fresh frame next: this one is shipped
        return Collected(arrays, episodes, self.vector.num_envs)

    def flush(self) -> dict[str, np.ndarray] | None:
        """The transitions of the frame being filled (None if there are none): a full
        frame, or a shorter one that a worker about to wait for the learner ships first."""
        if not self.filled:
            return None
        arrays = {name: column[: self.filled] for name, column in self.frame.items()}
        self.frame, self.filled = None, 0
        return arrays


def frame_rows(transition: Transition) -> int:
    """Transitions per experience frame: as many rows like `transition`'s as fit in
    `FRAME_BYTES`, between one and `EXPERIENCE_BATCH`."""
    row_bytes = sum(value[:1].nbytes for value in transition)
    return max(1, min(EXPERIENCE_BATCH, FRAME_BYTES // max(row_bytes, 1)))


class SampledActions:
    """An `ActingPolicy` over a stochastic policy (PPO, SAC): `act` samples from the
    policy with `sample(obs, rng)`, whatever epsilon inference asks for."""

    def __init__(self, policy: Policy, sample: Callable[[np.ndarray, np.random.Generator], Any]):
        self.policy = policy
        self.sample = sample

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.greedy(obs)

    def act(self, obs: np.ndarray, epsilons, rng: np.random.Generator) -> np.ndarray:
        return self.sample(obs, rng)
