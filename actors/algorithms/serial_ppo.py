"""PPO in one process: the components of the distributed path wired into a single loop.

The reference for distributed PPO, as actors/algorithms/serial.py is for DQN. Each iteration

1. every rollout worker (here: one `VectorCollector` of `envs_per_worker` environments
   per worker) collects `n_steps` steps with the current policy into a `Segment`;
2. the learner updates once on all the workers' segments (one policy version), the
   rollout policy loads the new weights, and every `eval_interval_updates` updates the
   greedy policy is evaluated.

Stop conditions, evaluation and the result record are those of the DQN loop.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from actors.algorithms.ppo import PPOConfig, PPOLearner, PPOPolicy, collect_segment
from actors.algorithms.serial import SerialResult, SerialRun
from actors.envs.build import EnvSpaces, VectorCollector, make_vector_env
from actors.networks.policies import ActionBounds
from schemas.messages import RunSpec


class PPOSerialRun(SerialRun):
    """One PPO run's components and counters (reuses the DQN loop's evaluation and
    stop conditions)."""

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.config = config = PPOConfig.from_spec(spec)
        self.collectors = []
        for worker in range(config.num_workers):
            seed = spec.seed + worker * config.envs_per_worker  # as distinct workers would
            envs = make_vector_env(spec.env_id, spec.env_params, config.envs_per_worker, seed)
            self.collectors.append(VectorCollector(envs, seed=seed))
        envs = self.collectors[0].envs
        self.spaces = EnvSpaces.from_env(envs)
        bounds = None if self.spaces.discrete else ActionBounds.from_env(envs)
        self.learner = PPOLearner(config, self.spaces, spec.seed, bounds)
        hidden, policy = config.hidden, config.policy
        self.rollout_policy = PPOPolicy.from_spaces(self.spaces, hidden, spec.seed, bounds, policy)
        self.eval_policy = PPOPolicy.from_spaces(self.spaces, hidden, spec.seed, bounds, policy)
        self.rng = np.random.default_rng(spec.seed)
        self.result = SerialResult()
        self.episode_returns: list[float] = []  # every training episode, in order
        self.started = time.perf_counter()

    def run(
        self, max_env_steps: int | None = None, time_limit_s: float | None = None
    ) -> SerialResult:
        try:
            while not self.result.stop_reason:
                self.collect()
                self.train()
                self.result.stop_reason = self.limit_reached(max_env_steps, time_limit_s)
        finally:
            for collector in self.collectors:
                collector.close()
        self.result.wall_time_s = time.perf_counter() - self.started
        return self.result

    def collect(self) -> None:
        """One segment from every worker, as rollout workers send them."""
        self.segments = []
        for collector in self.collectors:
            segment, finished = collect_segment(
                collector, self.rollout_policy, self.config.n_steps, self.rng
            )
            self.segments.append(segment)
            self.result.env_steps += segment.env_steps
            self.result.episodes += len(finished)
            self.episode_returns += [episode.reward for episode in finished]

    def train(self) -> None:
        """One update on this iteration's segments; the workers get the new weights."""
        self.result.metrics = self.learner.update(self.segments)
        self.result.updates = self.learner.updates
        self.rollout_policy.load(self.learner.policy_state())
        if self.learner.updates % self.config.eval_interval_updates == 0:
            self.evaluate_greedy()


def run_serial_ppo(
    spec: RunSpec, max_env_steps: int | None = None, time_limit_s: float | None = None
) -> SerialResult:
    """Train a PPO `spec` in this process until solved or a limit is reached, with torch
    single-threaded meanwhile (as `run_serial`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return PPOSerialRun(spec).run(max_env_steps, time_limit_s)
    finally:
        torch.set_num_threads(threads)
