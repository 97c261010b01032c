"""Run-spec validation: whether the actors could run a spec, asked before a run is stored.

`check_spec` builds what the actors would build (the environment, a custom network) once,
so a bad setting is a 400 naming its field instead of a run that fails on its agent.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from actors.algorithms.interfaces import Algorithm, EnvShape, action_kind
from actors.algorithms.table import ALGORITHMS, algorithm_of
from actors.envs.build import EnvError, make_env
from actors.networks.custom import PolicyError
from actors.settings import allowing, module_allowed
from schemas.messages import RunSpec

ACTION_KINDS = {"discrete": "Discrete", "box": "1-D Box"}
PROBE_OBSERVATIONS = 4  # sampled observations a custom network is tried on


def check_spec(spec: RunSpec, allowed_modules: Sequence[str] | None = None):
    """The algorithm's config for this spec; ValueError("field: message") if the actors
    could not run it: an invalid setting, an environment that cannot be made (with the
    environment's own error), an action space the algorithm cannot act in, or a custom
    network (`policy`) that cannot be imported, built or used for this environment.
    `allowed_modules` is the import allow-list to judge by (default: the process's)."""
    algorithm = algorithm_of(spec)
    config = algorithm.config_of(spec)
    check_sinks(spec)
    with allowing(allowed_modules):
        shape, observations = check_environment(spec, algorithm)
        if spec.policy is not None:
            check_policy(spec, algorithm, config, shape, observations)
    return config


def check_sinks(spec: RunSpec) -> None:
    """The packages of the metric sinks a run asks for (the optional `runt[metrics]`)."""
    sinks = spec.metric_sinks
    wanted = {"tensorboard": sinks.tensorboard, "wandb": sinks.wandb} if sinks else {}
    for package, on in wanted.items():
        if on and importlib.util.find_spec(package) is None:
            raise ValueError(
                f"metric_sinks.{package}: the {package} package is not installed "
                "(pip install 'runt[metrics]')"
            )


def check_environment(spec: RunSpec, algorithm: Algorithm) -> tuple[EnvShape | None, np.ndarray]:
    """Make the environment once, as the actors will, and look at its action space;
    with a custom `policy`, also its spaces and a few sampled observations.

    A `module:Env-v0` id imports that module (which registers the environment), so it
    is made only if the module is under `training.allowed_modules`. A failure is the
    environment's fault (`env_id`) when it cannot be made even without the run's
    `env_params`, else the parameters' (`env_params`)."""
    module, _, name = spec.env_id.rpartition(":")
    if module and not module_allowed(module):
        raise ValueError(
            f"env_id: {spec.env_id!r} names the module {module!r}, which is not under "
            "training.allowed_modules; use a registered id, or ask an administrator to "
            "allow the module"
        )
    try:
        if module:
            importlib.import_module(module)
        gym.spec(name)
    except gym.error.Error as exc:
        raise ValueError(f"env_id: {exc}") from None
    except Exception as exc:
        raise ValueError(f"env_id: cannot import {module!r}: {exc}") from None
    try:
        env = make_env(spec.env_id, spec.env_params)
    except EnvError as exc:
        field = "env_params" if spec.env_params and _makes_without_params(spec.env_id) else "env_id"
        raise ValueError(f"{field}: {exc}") from None
    try:
        space = env.action_space
        shape, samples = None, []
        if spec.policy is not None:  # the spaces and observations to try the network on
            shape = _shape_of(env)
            env.observation_space.seed(spec.seed)
            samples = [env.observation_space.sample() for _ in range(PROBE_OBSERVATIONS)]
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
    return shape, np.array([np.ravel(s) for s in samples], dtype=np.float32)


def check_policy(
    spec: RunSpec, algorithm: Algorithm, config, shape: EnvShape, observations: np.ndarray
) -> None:
    """Build the run's custom network as the learner and a rollout worker will, and act
    on sampled observations: a ValueError naming `policy.path` or `policy.kwargs`."""
    field = "policy.kwargs" if spec.policy.kwargs else "policy.path"
    try:
        algorithm.make_learner(config, shape, spec.seed)
        actions = algorithm.make_policy(config, shape, spec.seed).greedy(observations)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        raise ValueError(f"{field}: {type(exc).__name__}: {exc}") from None
    if len(actions) != len(observations) or not np.all(np.isfinite(actions)):
        raise ValueError(f"{field}: the network gives no finite action per observation")


def _shape_of(env) -> EnvShape:
    try:
        return EnvShape.of(env)
    except ValueError as exc:
        raise ValueError(f"env_id: {exc}") from None


def _makes_without_params(env_id: str) -> bool:
    try:
        make_env(env_id).close()
    except EnvError:
        return False
    return True
