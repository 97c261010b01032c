"""Running a trained policy: POST /testmodel/.

Policies are loaded from the database's checkpoints and kept in a small LRU cache keyed
by (model, checkpoint version), so a newer checkpoint is simply a new key. Episodes run
on a thread pool: the event loop only waits for the result.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from actors.envs.build import make_env
from actors.export.checkpoints import ActingPolicy, policy_from_checkpoint

EXPLORATION_EPSILON = 0.05  # DQN's non-deterministic acting: a little epsilon-greedy


class CannotSetState(Exception):
    """The environment has no way to start from a given observation."""


@dataclass(frozen=True)
class LoadedPolicy:
    model_id: int
    version: int
    algorithm: str
    env_id: str
    env_params: dict[str, Any]
    obs_dim: int
    policy: ActingPolicy


class PolicyCache:
    """At most `size` loaded policies, least recently used out first. Thread-safe."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[tuple[int, int], LoadedPolicy] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, model_id: int, version: int) -> LoadedPolicy | None:
        with self._lock:
            item = self._items.get((model_id, version))
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end((model_id, version))
            self.hits += 1
            return item

    def put(self, item: LoadedPolicy) -> None:
        with self._lock:
            self._items[(item.model_id, item.version)] = item
            self._items.move_to_end((item.model_id, item.version))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def load(model_id: int, version: int, meta: dict[str, Any], weights: bytes) -> LoadedPolicy:
    return LoadedPolicy(
        model_id=model_id,
        version=version,
        algorithm=meta["algorithm"],
        env_id=meta["env_id"],
        env_params=meta.get("env_params", {}),
        obs_dim=int(meta["network"]["obs_dim"]),
        policy=policy_from_checkpoint(meta, weights),
    )


# ---- starting from a given state -------------------------------------------------------------


def _angles(obs: np.ndarray, pairs: list[tuple[int, int]], rest: list[int]) -> np.ndarray:
    """Angles from (cos, sin) pairs, then the remaining entries as they are."""
    angles = [math.atan2(obs[s], obs[c]) for c, s in pairs]
    return np.array(angles + [obs[i] for i in rest], dtype=np.float64)


def _state_from_observation(env_id: str, obs: np.ndarray) -> np.ndarray | None:
    """The internal state of a classic-control environment that shows `obs`."""
    name = env_id.split("/")[-1].split("-v")[0]
    if name in ("CartPole", "MountainCar", "MountainCarContinuous"):
        return obs.astype(np.float64)
    if name == "Pendulum":
        return _angles(obs, [(0, 1)], [2])
    if name == "Acrobot":
        return _angles(obs, [(0, 1), (2, 3)], [4, 5])
    return None


def start_from(env: gym.Env, env_id: str, observation: np.ndarray) -> np.ndarray:
    """Put a freshly reset `env` into the state that `observation` shows.

    runt's own environments implement `set_state(observation)` (the documented hook);
    classic-control ones get their internal `state` set. Anything else cannot."""
    inner = env.unwrapped
    if hasattr(inner, "set_state"):
        inner.set_state(observation)
    else:
        state = _state_from_observation(env_id, observation)
        if state is None or not hasattr(inner, "state"):
            raise CannotSetState(f"{env_id} cannot be started from a given observation")
        inner.state = state
    return np.asarray(observation, dtype=np.float32)


# ---- one episode ------------------------------------------------------------------------------


def run_episode(
    loaded: LoadedPolicy,
    observation: list[float] | None,
    steps: int,
    deterministic: bool,
    seed: int,
) -> dict[str, Any]:
    """Play up to `steps` steps; RUNT's answer shape plus totals."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # per thread: this runs on a pool thread, not in main
    env = make_env(loaded.env_id, loaded.env_params, seed=seed)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        if observation is not None:
            obs = start_from(env, loaded.env_id, np.asarray(observation, dtype=np.float64))
        seen, actions, rewards = [], [], []
        terminated = truncated = False
        for _ in range(steps):
            batch = np.asarray(obs, dtype=np.float32)[None]
            if deterministic:
                action = loaded.policy.greedy(batch)[0]
            else:
                action = loaded.policy.act(batch, EXPLORATION_EPSILON, rng)[0]
            seen.append(np.asarray(obs, dtype=np.float64).ravel().tolist())
            actions.append(np.atleast_1d(action).tolist())
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
    finally:
        env.close()
    return {
        "observation": seen,
        "action": actions,
        "rewards": rewards,
        "total_reward": float(sum(rewards)),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "steps": len(rewards),
        "checkpoint_version": loaded.version,
    }
