"""The registry: every algorithm runt trains, and which actor plays which role for it.

An algorithm is one `Algorithm` record (actors/algorithm.py) in `ALGORITHMS`; its
`buffer` kind picks the actor classes (`ROLES`): the rollout worker and the trainer are
the same for every algorithm, the buffer is the replay buffer or the on-policy one.
`check_spec` is what POST /train/ asks before it stores a run.
"""

from __future__ import annotations

import gymnasium as gym

from actors.algorithm import Algorithm, action_kind
from actors.base import Actor
from actors.buffer import Buffer
from actors.dqn import DQN
from actors.envs import EnvError, make_env
from actors.onpolicy import OnPolicyBuffer
from actors.ppo import PPO
from actors.rollout import RolloutWorker
from actors.sac import SAC
from actors.trainer import Trainer
from schemas.messages import RunSpec

ACTION_KINDS = {"discrete": "Discrete", "box": "1-D Box"}
ALGORITHMS: dict[str, Algorithm] = {"dqn": DQN, "ppo": PPO, "sac": SAC}

ROLES: dict[str, dict[str, type[Actor]]] = {
    "replay": {"trainer": Trainer, "buffer": Buffer, "rollout": RolloutWorker},
    "on_policy": {"trainer": Trainer, "buffer": OnPolicyBuffer, "rollout": RolloutWorker},
}
ACTORS: dict[str, dict[str, type[Actor]]] = {
    name: ROLES[algorithm.buffer] for name, algorithm in ALGORITHMS.items()
}
CONFIGS = {name: algorithm.config for name, algorithm in ALGORITHMS.items()}


def algorithm_of(spec: RunSpec) -> Algorithm:
    """The spec's algorithm; ValueError naming the field if runt has no such algorithm."""
    name = spec.algorithm.lower()
    if name not in ALGORITHMS:
        available = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"algorithm: {name} is not available yet (available: {available})")
    return ALGORITHMS[name]


def check_spec(spec: RunSpec):
    """The algorithm's config for this spec; ValueError("field: message") if the actors
    could not run it: an invalid setting, an environment that cannot be made (with the
    environment's own error), or an action space the algorithm cannot act in."""
    algorithm = algorithm_of(spec)
    config = algorithm.config_of(spec)
    check_environment(spec, algorithm)
    return config


def check_environment(spec: RunSpec, algorithm: Algorithm) -> None:
    """Make the environment once, as the actors will, and look at its action space.

    Only registered ids are made: `module:Env-v0` ids would import a module into the
    web service. A failure is the environment's fault (`env_id`) when it cannot be made
    even without the run's `env_params`, else the parameters' (`env_params`)."""
    if ":" in spec.env_id:
        raise ValueError(f"env_id: {spec.env_id!r} names a module; use a registered id")
    try:
        gym.spec(spec.env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id: {exc}") from None
    try:
        env = make_env(spec.env_id, spec.env_params)
    except EnvError as exc:
        field = "env_params" if spec.env_params and _makes_without_params(spec.env_id) else "env_id"
        raise ValueError(f"{field}: {exc}") from None
    try:
        space = env.action_space
    finally:
        env.close()
    kind = action_kind(space)
    if kind not in algorithm.action_kinds:
        able = sorted(name for name, a in ALGORITHMS.items() if kind in a.action_kinds)
        hint = f"; algorithms that can: {', '.join(able)}" if able else ""
        raise ValueError(
            f"algorithm: {algorithm.name} cannot act in {spec.env_id}'s action space "
            f"{space} (it needs {' or '.join(ACTION_KINDS[k] for k in algorithm.action_kinds)}"
            f" actions){hint}"
        )


def _makes_without_params(env_id: str) -> bool:
    try:
        make_env(env_id).close()
    except EnvError:
        return False
    return True


def make_actor(role: str, spec: RunSpec, bus, topology, **kwargs) -> Actor:
    return ACTORS[algorithm_of(spec).name][role](spec, bus, topology, **kwargs)
