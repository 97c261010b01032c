"""SAC in one process: the components of the distributed path wired into a single loop.

The same loop as DQN's (actors/algorithms/serial.py): step every sub-environment, insert into the
replay buffer, update while the samples-per-insert rate limiter allows, publish weights
every `weights_publish_interval` updates, evaluate every `eval_interval_updates`. Only
acting differs: uniform random actions until `learning_starts` transitions have been
collected (stable-baselines3's warm-up), then samples of the squashed Gaussian actor.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from actors.algorithms.replay import ReplayBuffer
from actors.algorithms.sac import SACConfig, SACLearner, SACPolicy
from actors.algorithms.serial import SerialResult, SerialRun
from actors.envs.build import EnvSpaces, VectorCollector, make_vector_env
from actors.networks.policies import ActionBounds
from schemas.messages import RunSpec


class SACSerialRun(SerialRun):
    """One SAC run's components; `run`, `train`, evaluation and the stop conditions are
    the DQN loop's."""

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.config = config = SACConfig.from_spec(spec)
        envs = make_vector_env(spec.env_id, spec.env_params, config.num_actors, spec.seed)
        self.spaces = spaces = EnvSpaces.from_env(envs)
        bounds = ActionBounds.from_env(envs)
        self.collector = VectorCollector(envs, seed=spec.seed)
        self.replay = ReplayBuffer(
            config.buffer_size,
            spaces.obs_shape,
            spaces.obs_dtype,
            action_shape=spaces.action_shape,
            action_dtype=np.float32,
        )
        self.limiter = config.rate_limiter(insert_chunk=config.num_actors)
        self.learner = SACLearner(config, spaces, spec.seed, bounds)
        hidden, policy = config.hidden, config.policy
        self.rollout_policy = SACPolicy.from_spaces(spaces, hidden, spec.seed, bounds, policy)
        self.eval_policy = SACPolicy.from_spaces(spaces, hidden, spec.seed, bounds, policy)
        self.rng = np.random.default_rng(spec.seed)
        self.result = SerialResult()
        self.started = time.perf_counter()

    def collect(self) -> None:
        """One step in every sub-environment, as a rollout worker takes it."""
        obs = self.collector.obs
        if self.limiter.inserts < self.config.learning_starts:
            actions = self.rollout_policy.random(len(obs), self.rng)
        else:
            actions = self.rollout_policy.act(obs, self.rng)
        transitions, finished = self.collector.step(actions)
        if not self.limiter.can_insert(transitions.batch_size):
            raise RuntimeError("rate limiter refused an insert in serial mode")  # a bug
        self.replay.add(transitions)
        self.limiter.inserted(transitions.batch_size)
        self.result.env_steps += transitions.batch_size
        self.result.episodes += len(finished)


def run_serial_sac(
    spec: RunSpec, max_env_steps: int | None = None, time_limit_s: float | None = None
) -> SerialResult:
    """Train a SAC `spec` in this process until solved or a limit is reached, with torch
    single-threaded meanwhile (as `run_serial`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return SACSerialRun(spec).run(max_env_steps, time_limit_s)
    finally:
        torch.set_num_threads(threads)
