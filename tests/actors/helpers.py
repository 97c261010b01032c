"""What the actors' tests build again and again: run specs, the training presets and the
settings that learn MecOffload, environment shapes, learners and their checkpoints, random
transitions, segments, and a whole run's actors as threads over the in-process broker
(memory://)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import numpy as np
import torch
import yaml

from actors.algorithms.interfaces import EnvShape, Learner
from actors.algorithms.replay import Transition
from actors.algorithms.table import ALGORITHMS
from actors.envs.build import EnvSpaces, make_env
from actors.networks.policies import ActionBounds
from actors.roles.factory import make_actor
from broker.codec import encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from configs import CONFIG_DIR
from schemas.messages import ResumeHeader, RunSpec, decode_message, expand_episodes

# CartPole's spaces, and a Box of two actions on three observations (Pendulum-like).
DISCRETE = EnvSpaces(obs_shape=(4,), obs_dtype=np.dtype(np.float32), n_actions=2)
BOX = EnvSpaces(obs_shape=(3,), obs_dtype=np.dtype(np.float32), action_shape=(2,))

# PPO small enough for a run over the broker to finish in seconds.
PPO_SMALL = {"hidden": [16], "n_steps": 16, "envs_per_worker": 2, "n_epochs": 2}

# DQN and PPO settings for runt/MecOffload-v0, trained serially (tests/actors/envs/test_mec_env.py)
# and over the broker (tests/e2e/test_e2e_mec.py).
MEC_DQN_SETTINGS = {
    "learning_rate": 1e-3,
    "batch_size": 64,
    "buffer_size": 50_000,
    "gamma": 0.99,
    "num_workers": 1,
    "hyperparameters": {
        "hidden": [64, 64],
        "envs_per_worker": 8,
        "learning_starts": 1000,
        "samples_per_insert": 16,
        "target_update_interval": 1,
        "tau": 0.01,
        "exploration_final_eps": 0.02,
        "exploration_fraction": 0.3,
        "exploration_budget_steps": 20_000,
        "eval_interval_updates": 10**6,  # evaluated once, at the end, by the test
    },
}
MEC_PPO_SETTINGS = {
    "learning_rate": 1e-3,
    "batch_size": 128,
    "buffer_size": 512,  # unused by PPO
    "gamma": 0.99,
    "num_workers": 1,
    "hyperparameters": {
        "envs_per_worker": 8,
        "n_steps": 64,
        "n_epochs": 10,
        "hidden": [64, 64],
        "eval_interval_updates": 10**6,
    },
}


def preset(name: str) -> dict[str, Any]:
    """A training preset of configs/, e.g. `preset("dqn_cartpole")`."""
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())


def spec_for(algorithm: str, env_id: str, **fields) -> RunSpec:
    """A small run of `algorithm` on `env_id`; `fields` replace the defaults."""
    base = {
        "run_id": 1,
        "algorithm": algorithm,
        "env_id": env_id,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "buffer_size": 10_000,
        "gamma": 0.99,
        "seed": 3,
        "num_workers": 1,
        "target_episode": 10,
    }
    return RunSpec(**(base | fields))


def env_shape(env_id: str) -> EnvShape:
    env = make_env(env_id)
    shape = EnvShape.of(env)
    env.close()
    return shape


def learner_for(algorithm: str, env_id: str, seed: int = 5, **fields) -> Learner:
    """The algorithm's learner for the environment, one hidden layer of 16 unless
    `fields` (of the run spec) say otherwise."""
    record = ALGORITHMS[algorithm]
    spec = spec_for(algorithm, env_id, **({"hyperparameters": {"hidden": [16]}} | fields))
    return record.make_learner(record.config.from_spec(spec), env_shape(env_id), seed)


def checkpoint_of(algorithm: str, env_id: str, learner: Learner) -> tuple[dict, bytes]:
    """(meta, weights) as the trainer stores them in a checkpoint."""
    meta = {"algorithm": algorithm, "env_id": env_id, "network": learner.network_meta()}
    return meta, state_to_bytes(learner.state())


def random_transitions(
    rng: np.random.Generator,
    spaces: EnvSpaces,
    size: int = 32,
    bounds: ActionBounds | None = None,
) -> Transition:
    """One-step transitions of random observations and actions (within `bounds` for a
    Box), a fifth of them terminal."""
    if spaces.discrete:
        action = rng.integers(0, spaces.n_actions, size=size)
    else:
        shape = (size, *spaces.action_shape)
        action = rng.uniform(bounds.low, bounds.high, size=shape).astype(np.float32)
    return Transition(
        obs=rng.normal(size=(size, *spaces.obs_shape)).astype(np.float32),
        action=action,
        reward=rng.normal(size=size).astype(np.float32),
        next_obs=rng.normal(size=(size, *spaces.obs_shape)).astype(np.float32),
        terminated=rng.random(size) < 0.2,
        horizon=np.ones(size, dtype=np.int32),
    )


def segment(value: float, steps: int = 4, envs: int = 2) -> dict[str, np.ndarray]:
    """The arrays of a rollout segment (two of them), every entry `value`."""
    return {
        "reward": np.full((steps, envs), value, np.float32),
        "last_value": np.full(envs, value, np.float32),
    }


def run_in_process(spec: RunSpec, timeout: float = 60.0, resume_state: bytes = b"") -> list:
    """Trainer, buffer and workers as threads on memory://; the run's events. With
    `resume_state` (a checkpoint's weights), it is waiting on the run's resume queue."""
    topology = Topology(f"alg{uuid.uuid4().hex[:8]}")
    tap_bus = make_bus("memory://", topology, "tap").connect()
    if resume_state:
        tap_bus.declare(topology.resume(spec.run_id))
        header = ResumeHeader(run_id=spec.run_id, version=spec.resume.version)
        blob = np.frombuffer(resume_state, dtype=np.uint8)
        tap_bus.publish(
            topology.data, f"run.{spec.run_id}.resume", encode_frame(header, {"safetensors": blob})
        )
    tap = topology.event_tap("test", f"run.{spec.run_id}.*")
    tap_bus.declare(tap)
    events: list = []
    # Episode batches are read as the episodes they hold, as the event log stores them.
    tap_bus.consume(
        tap, lambda d: events.extend(expand_episodes([decode_message(d.body)])), prefetch=1000
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def play(role: str, worker: int) -> None:
        torch.set_num_threads(1)
        bus = make_bus("memory://", topology, f"{role}-{worker}")
        try:
            make_actor(role, spec, bus, topology, worker=worker, stop_event=stop).run()
        except BaseException as exc:
            failures.append(exc)

    roles = [("trainer", 0), ("buffer", 0), ("evaluator", 0)]
    roles += [("rollout", w) for w in range(spec.num_workers)]
    threads = [threading.Thread(target=play, args=r, daemon=True) for r in roles]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not failures:
            tap_bus.poll(0.2)
            if any(e.type == "status" and e.status == "completed" for e in events):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        tap_bus.poll(0.2)
        tap_bus.close()
    assert not failures, failures
    return events
