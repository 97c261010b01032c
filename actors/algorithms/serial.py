"""DQN in one process: the distributed components wired into a single loop.

This is the reference for the distributed path (Sample Factory's serial mode, Acme's
`run_experiment`): the same vector-env collector, replay buffer, rate limiter, learner,
policy and evaluation, with the broker replaced by direct calls. Each iteration

1. acts in every sub-environment with the (possibly stale) rollout policy and inserts
   the transitions (n-step ones with `n_step` > 1, actors/algorithms/nstep.py), as rollout workers
   do;
2. updates the learner for as long as the rate limiter allows sampling, as the
   buffer and trainer do, publishing weights to the rollout policy every
   `weights_publish_interval` updates and evaluating the greedy policy every
   `eval_interval_updates` updates.

A run ends when an evaluation reaches `stop_reward`, after `target_episode` training
episodes, or at the optional env-step or wall-time limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from actors.algorithms.dqn import DQNConfig, DQNLearner, QPolicy
from actors.algorithms.evaluate import evaluate
from actors.algorithms.nstep import NStepTransitions
from actors.algorithms.replay import ReplayBuffer
from actors.envs.build import EnvSpaces, VectorCollector, make_vector_env
from schemas.messages import RunSpec

EVAL_SEED_OFFSET = 10_000  # evaluation envs never share seeds with training envs


class EvalRecord(NamedTuple):
    env_steps: int
    updates: int
    wall_time_s: float
    mean: float
    std: float


@dataclass
class SerialResult:
    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    wall_time_s: float = 0.0
    evaluations: list[EvalRecord] = field(default_factory=list)
    solved_at: EvalRecord | None = None  # the first evaluation with mean >= stop_reward
    stop_reason: str = ""
    replay_ratio: float = 0.0  # measured sampled / inserted transitions
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's

    @property
    def solved_env_steps(self) -> int | None:
        return self.solved_at.env_steps if self.solved_at else None


class SerialRun:
    """One run's components and counters; `run` drives them until a stop condition."""

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.config = config = DQNConfig.from_spec(spec)
        envs = make_vector_env(spec.env_id, spec.env_params, config.num_actors, spec.seed)
        self.spaces = EnvSpaces.from_env(envs)
        self.collector = VectorCollector(envs, seed=spec.seed)
        self.nstep = NStepTransitions(config.n_step, config.gamma)
        self.replay = ReplayBuffer(config.buffer_size, self.spaces.obs_shape, self.spaces.obs_dtype)
        # a step inserts up to n_step transitions per sub-environment (episodes that end)
        self.limiter = config.rate_limiter(insert_chunk=config.num_actors * config.n_step)
        self.learner = DQNLearner(config, self.spaces, spec.seed)
        self.rollout_policy = QPolicy.from_spaces(
            self.spaces, config.hidden, spec.seed, config.policy
        )
        self.eval_policy = QPolicy.from_spaces(self.spaces, config.hidden, spec.seed, config.policy)
        self.exploration = config.exploration_schedule()
        self.actors = np.arange(config.num_actors)
        self.rng = np.random.default_rng(spec.seed)
        self.result = SerialResult()
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
            self.collector.close()
        self.result.wall_time_s = time.perf_counter() - self.started
        self.result.replay_ratio = self.limiter.replay_ratio
        return self.result

    def collect(self) -> None:
        """One step in every sub-environment, as a rollout worker takes it."""
        epsilons = self.exploration.epsilons(self.actors, self.result.env_steps)
        actions = self.rollout_policy.act(self.collector.obs, epsilons, self.rng)
        step, finished = self.collector.step(actions)
        transitions = self.nstep.add(step, [episode.env_index for episode in finished])
        if not self.limiter.can_insert(transitions.batch_size):
            raise RuntimeError("rate limiter refused an insert in serial mode")  # a bug
        self.replay.add(transitions)
        self.limiter.inserted(transitions.batch_size)
        self.result.env_steps += step.batch_size
        self.result.episodes += len(finished)

    def train(self) -> None:
        """Update while the samples-per-insert ratio allows, as the trainer does."""
        batch_size = self.config.batch_size
        while self.limiter.can_sample(batch_size) and not self.result.solved_at:
            batch = self.replay.sample(batch_size, self.rng)
            self.limiter.sampled(batch_size)
            self.result.metrics = self.learner.update(batch)
            self.result.updates = updates = self.learner.updates
            if updates % self.config.weights_publish_interval == 0:
                self.rollout_policy.load(self.learner.policy_state())
            if updates % self.config.eval_interval_updates == 0:
                self.evaluate_greedy()

    def evaluate_greedy(self) -> None:
        self.eval_policy.load(self.learner.policy_state())
        seed = self.spec.seed + EVAL_SEED_OFFSET * (len(self.result.evaluations) + 1)
        score = evaluate(
            self.eval_policy,
            self.spec.env_id,
            self.spec.env_params,
            self.config.eval_episodes,
            seed,
        )
        record = EvalRecord(
            self.result.env_steps,
            self.learner.updates,
            time.perf_counter() - self.started,
            score.mean,
            score.std,
        )
        self.result.evaluations.append(record)
        stop_reward = self.spec.stop_reward
        if stop_reward is not None and score.mean >= stop_reward:
            self.result.solved_at = record

    def limit_reached(self, max_env_steps: int | None, time_limit_s: float | None) -> str:
        if self.result.solved_at:
            return "solved"
        if self.result.episodes >= self.spec.target_episode:
            return "target_episode"
        if max_env_steps is not None and self.result.env_steps >= max_env_steps:
            return "max_env_steps"
        if time_limit_s is not None and time.perf_counter() - self.started >= time_limit_s:
            return "time_limit"
        return ""


def run_serial(
    spec: RunSpec, max_env_steps: int | None = None, time_limit_s: float | None = None
) -> SerialResult:
    """Train `spec` in this process until solved or a limit is reached.

    Torch runs single-threaded meanwhile: these small networks gain nothing from
    intra-op threads, and on a busy 2-core machine such threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):  # NumPy's too (actors/threads.py)
            return SerialRun(spec).run(max_env_steps, time_limit_s)
    finally:
        torch.set_num_threads(threads)
