"""Environments: building them from a run's `env_id` and `env_params`, describing their
spaces, and turning vector-env steps into replay transitions.

Vector envs use Gymnasium 1.x SAME_STEP autoreset: when a sub-environment finishes, the
same `step` call resets it, returns the first observation of the next episode and puts
the last observation of the finished one in `infos["final_obs"]` (masked by
`infos["_final_obs"]`). Every step therefore yields one real transition per
sub-environment, and `VectorCollector` swaps in the final observation as `next_obs`.
(The default NEXT_STEP mode would instead spend one extra `step` call on the reset,
whose output is not a transition and must not be stored.)
See https://farama.org/Vector-Autoreset-Mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

import actors.envs.mec  # noqa: F401  (registers runt/MecOffload-v0)
from actors.algorithms.replay import Transition
from actors.settings import module_allowed


class EnvError(ValueError):
    """An environment that cannot be built; the message carries the environment's own."""


def make_env(env_id: str, env_params: dict[str, Any] | None = None, seed: int | None = None):
    """One environment, `gym.make(env_id, **env_params)`.

    With a seed, the environment is reset once with it (Gymnasium seeds on reset) and its
    action space is seeded, so later `reset()` calls without a seed are reproducible.
    """
    module = env_id.rpartition(":")[0]
    if module and not module_allowed(module):  # gym.make would import it
        raise EnvError(f"env_id {env_id!r}: module {module!r} is not under allowed_modules")
    try:
        env = gym.make(env_id, **(env_params or {}))
    except Exception as exc:
        raise EnvError(f"cannot make environment {env_id!r}: {exc}") from exc
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str, env_params: dict[str, Any] | None, num_envs: int, seed: int | None = None
) -> gym.vector.VectorEnv:
    """`num_envs` copies of an environment stepped in this process (SyncVectorEnv, SAME_STEP
    autoreset). Sub-environment i is seeded with `seed + i` by `VectorCollector`'s reset."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    make_env(env_id, env_params).close()  # fail here, with the environment's message
    params = dict(env_params or {})
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **params) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    if seed is not None:
        envs.action_space.seed(seed)
    return envs


@dataclass(frozen=True)
class EnvSpaces:
    """What networks and buffers need to know about an environment's spaces."""

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    n_actions: int | None = None  # discrete action spaces
    action_shape: tuple[int, ...] = ()  # box action spaces

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def discrete(self) -> bool:
        return self.n_actions is not None

    @classmethod
    def from_env(cls, env: gym.Env | gym.vector.VectorEnv) -> EnvSpaces:
        """Spaces of one environment, or of one sub-environment of a vector env."""
        obs_space = getattr(env, "single_observation_space", env.observation_space)
        action_space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(obs_space, gym.spaces.Box):
            raise EnvError(f"observation space {obs_space} is not supported (need a Box)")
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(obs_space.shape, obs_space.dtype, n_actions=int(action_space.n))
        if isinstance(action_space, gym.spaces.Box):
            return cls(obs_space.shape, obs_space.dtype, action_shape=action_space.shape)
        raise EnvError(f"action space {action_space} is not supported (need Discrete or Box)")


class Episode(NamedTuple):
    """A training episode that ended in sub-environment `env_index`."""

    env_index: int
    reward: float
    length: int


class VectorCollector:
    """Steps a SAME_STEP vector env and returns what a rollout worker ships: one
    `Transition` per sub-environment and step, and the episodes that ended on it.

    `terminated` is stored for the bootstrap mask; a truncation (time limit) is not
    terminal, so its transition still bootstraps from `next_obs` (Pardo et al. 2018,
    "Time Limits in Reinforcement Learning").
    """

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | None = None):
        self.envs = envs
        self.num_envs = envs.num_envs
        self.obs, _ = envs.reset(seed=seed)
        self.episode_reward = np.zeros(self.num_envs, dtype=np.float64)
        self.steps = 0  # steps of the vector env; lengths are counted from where episodes began
        # a list: read and reset one sub-environment at a time, when its episode ends
        self.episode_start = [0] * self.num_envs
        # One-step transitions all have horizon 1: one read-only array serves every step
        # (consumers copy rows out of a transition, never write into it).
        self.horizon = np.ones(self.num_envs, dtype=np.int32)
        self.horizon.flags.writeable = False

    def step(self, actions: np.ndarray) -> tuple[Transition, list[Episode]]:
        # A truncation ends an episode too: it shows in the final observations' mask.
        next_obs, rewards, terminated, _truncated, infos = self.envs.step(actions)
        self.episode_reward += rewards
        self.steps += 1
        # SAME_STEP: the final observations (and their mask) are there only on steps where
        # an episode ended, so most steps need nothing more.
        ended = infos.get("_final_obs")
        finished: list[Episode] = []
        real_next_obs = next_obs  # a fresh array every step (the vector env copies)
        if ended is not None:
            which = np.asarray(ended).nonzero()[0].tolist()
            if which:
                real_next_obs = next_obs.copy()
                finished = self._finish(real_next_obs, which, infos["final_obs"])
        transition = Transition(
            obs=self.obs,
            action=np.asarray(actions),
            reward=np.asarray(rewards, dtype=np.float32),
            next_obs=real_next_obs,
            terminated=np.asarray(terminated, dtype=bool),
            horizon=self.horizon,
        )
        self.obs = next_obs
        return transition, finished

    def _finish(self, next_obs: np.ndarray, which: list[int], final_obs) -> list[Episode]:
        """The episodes that ended in sub-environments `which`: their final observations
        go into `next_obs`, their returns and lengths are reported and counted from zero
        again. One sub-environment at a time: a step ends one or two episodes, for which
        NumPy's fancy indexing costs more than it saves."""
        returns, starts, steps = self.episode_reward, self.episode_start, self.steps
        finished = []
        for i in which:
            next_obs[i] = final_obs[i]
            finished.append(Episode(i, returns.item(i), steps - starts[i]))
            returns[i] = 0.0
            starts[i] = steps
        return finished

    def close(self) -> None:
        self.envs.close()
