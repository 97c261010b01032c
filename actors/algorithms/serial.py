"""Any algorithm in one process: the distributed path's components wired into one loop.

Driven by the algorithm's record (interfaces.py), as Acme's `run_experiment` or Sample
Factory's serial mode: every worker's collector, the learner and policies, and the buffer
role's pieces (replay.py's buffer and rate limiter, or segments.py's assembly), with direct
calls for the broker. Each iteration every worker collects once (a step, or a segment);
then the learner updates on every batch the buffer has, publishing weights every
`weights_publish_interval` updates and evaluating greedily every `eval_interval_updates`.
A run ends at `stop_reward`, `target_episode` or the optional env-step and time limits; it
runs single-threaded, as actors do (actors/threads.py). See docs/algorithms.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from actors.algorithms.evaluate import evaluate
from actors.algorithms.interfaces import Algorithm, Collector, EnvShape
from actors.algorithms.replay import ReplayBuffer, Transition
from actors.algorithms.segments import SegmentAssembler, unstack
from actors.algorithms.table import algorithm_of
from actors.envs.build import VectorCollector, make_vector_env
from actors.threads import single_threaded_scope
from schemas.messages import RunSpec

EVAL_SEED_OFFSET = 10_000  # evaluation envs never share seeds with training envs

Arrays = dict[str, np.ndarray]


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
    replay_ratio: float = 0.0  # replay path: measured sampled / inserted transitions
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's

    @property
    def solved_env_steps(self) -> int | None:
        return self.solved_at.env_steps if self.solved_at else None


class ReplayFeed:
    """The replay path's buffer in one process: the buffer role's ring buffer and rate
    limiter, inserting what the collectors hand over and sampling minibatches."""

    def __init__(
        self, config: Any, shape: EnvShape, collectors: list[Collector], rng: np.random.Generator
    ):
        self.replay = ReplayBuffer.for_spaces(config.buffer_size, shape.spaces)
        # What one step of every worker inserts at most (`TransitionCollector.per_step`:
        # n-step transitions complete up to n per sub-environment on a step).
        insert_chunk = sum(collector.per_step for collector in collectors)
        self.limiter = config.rate_limiter(insert_chunk=insert_chunk)
        self.batch_size = config.batch_size
        self.rng = rng

    def add(self, arrays: Arrays, version: int) -> None:
        """Insert a frame of transitions (of any policy version: replay keeps none)."""
        batch = Transition(**arrays)
        if not self.limiter.can_insert(batch.batch_size):
            raise RuntimeError("rate limiter refused an insert in serial mode")  # a bug
        self.replay.add(batch)
        self.limiter.inserted(batch.batch_size)

    def batches(self) -> Iterator[Transition]:
        """Minibatches while the samples-per-insert ratio allows, drawn as they are asked for."""
        while self.limiter.can_sample(self.batch_size):
            batch = self.replay.sample(self.batch_size, self.rng)
            self.limiter.sampled(self.batch_size)
            yield batch

    @property
    def replay_ratio(self) -> float:
        return self.limiter.replay_ratio


class SegmentFeed:
    """The on-policy path's buffer in one process: the on-policy buffer role's assembly
    of `num_workers` segments of the current policy version into one batch."""

    replay_ratio = 0.0

    def __init__(self, config: Any, segment_type: Any):
        self.assembler = SegmentAssembler(config.num_workers)
        self.segment_type = segment_type

    def add(self, arrays: Arrays, version: int) -> None:
        """A segment played by policy `version` (in one process always the current one)."""
        self.assembler.add(version, arrays)

    def batches(self) -> Iterator[list[Any]]:
        ready = self.assembler.take()
        if ready is not None:
            _, batch = ready
            yield unstack(self.segment_type, batch)


class SerialRun:
    """One run's components and counters; `run` drives them until a stop condition.
    `algorithm` defaults to the spec's (actors/algorithms/table.py)."""

    def __init__(self, spec: RunSpec, algorithm: Algorithm | None = None):
        self.spec = spec
        self.algorithm = algorithm = algorithm or algorithm_of(spec)
        self.config = algorithm.config_of(spec)
        # Built single-threaded too, as actors build them: an orthogonal initialisation
        # (a QR decomposition) comes out different in the last bits on more threads.
        with single_threaded_scope():
            self.build()
        self.result = SerialResult()
        self.started = time.perf_counter()

    def build(self) -> None:
        """Every worker's environments and collector, the learner, policies and buffer."""
        spec, algorithm, config = self.spec, self.algorithm, self.config
        self.rng = np.random.default_rng(spec.seed)  # acting, and replay sampling
        self.vectors = []
        for worker in range(config.num_workers):
            # sub-environments seeded as those of one vector env of every worker's
            seed = spec.seed + worker * config.envs_per_worker
            envs = make_vector_env(spec.env_id, spec.env_params, config.envs_per_worker, seed)
            self.vectors.append(VectorCollector(envs, seed=seed))
        shape = EnvShape.of(self.vectors[0].envs)
        self.learner = algorithm.make_learner(config, shape, spec.seed)
        # Built from the run seed, both are the learner's version 0.
        self.rollout_policy = algorithm.make_policy(config, shape, spec.seed)  # every worker's
        self.eval_policy = algorithm.make_policy(config, shape, spec.seed)
        self.policy_version = 0
        self.collectors: list[Collector] = [
            algorithm.make_collector(config, self.rollout_policy, vector, worker, self.rng)
            for worker, vector in enumerate(self.vectors)
        ]
        self.feed: ReplayFeed | SegmentFeed
        if algorithm.buffer == "replay":
            self.feed = ReplayFeed(config, shape, self.collectors, self.rng)
        else:
            self.feed = SegmentFeed(config, algorithm.segment_type)

    def run(
        self, max_env_steps: int | None = None, time_limit_s: float | None = None
    ) -> SerialResult:
        try:
            with single_threaded_scope():
                while not self.result.stop_reason:
                    self.collect()
                    self.train()
                    self.result.stop_reason = self.limit_reached(max_env_steps, time_limit_s)
        finally:
            for vector in self.vectors:
                vector.close()
        self.result.wall_time_s = time.perf_counter() - self.started
        self.result.replay_ratio = self.feed.replay_ratio
        return self.result

    def collect(self) -> None:
        """One `collect` of every rollout worker; what it collected goes to the buffer
        at once (no frames to fill: the learner is the next call, not a publish away)."""
        for collector in self.collectors:
            arrays, episodes, env_steps = collector.collect(self.result.env_steps)
            if arrays is None:
                arrays = collector.flush()
            if arrays is not None:
                self.feed.add(arrays, self.policy_version)
            self.result.env_steps += env_steps
            self.result.episodes += len(episodes)

    def train(self) -> None:
        """Update on every batch the buffer has, as the trainer does."""
        config = self.config
        for batch in self.feed.batches():
            self.result.metrics = self.learner.update(batch)
            self.result.updates = updates = self.learner.updates
            if updates % config.weights_publish_interval == 0:
                self.rollout_policy.load(self.learner.policy_state())
                self.policy_version = updates // config.weights_publish_interval
            if updates % config.eval_interval_updates == 0:
                self.evaluate_greedy()
                if self.result.solved_at:
                    break

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
    """Train `spec` (any algorithm of the table) in this process until solved or a limit
    is reached."""
    return SerialRun(spec).run(max_env_steps, time_limit_s)
