"""The rollout worker: plays the run's environments with the newest policy it has and
ships what happened.

Each step it acts on all of its sub-environments at once (one batched forward pass),
with its own exploration (Ape-X fixed epsilons per actor, or an annealed schedule).
Transitions go to the buffer in frames of `experience_batch`, tagged with the policy
version that produced them; each finished episode is an `episode` event with this
worker's id, incarnation and sequence number. New weights are picked up between steps,
never waited for — except that a worker which has run `max_steps_per_version` steps
ahead of the learner pauses briefly, so collection cannot starve the learner of CPU.
"""

from __future__ import annotations

import numpy as np

from actors.base import Actor
from actors.dqn import DQNConfig, QPolicy
from actors.envs import EnvSpaces, VectorCollector, make_vector_env
from actors.explore import actor_ids
from actors.replay import Transition
from broker.codec import bytes_to_state, decode_frame, encode_frame
from schemas.messages import BadMessage, EpisodeFinished, ExperienceHeader, WeightsHeader

EXPERIENCE_BATCH = 32  # transitions per experience frame
STEPS_AHEAD_SLACK = 4.0  # how far ahead of the learner's consumption a worker may run


def worker_seed(run_seed: int, worker: int, incarnation: int) -> int:
    """Distinct, reproducible streams per worker and per restart."""
    return (run_seed + 10_007 * (worker + 1) + 1_000_003 * incarnation) % 2**31


class RolloutWorker(Actor):
    role = "rollout"

    def setup(self) -> None:
        self.config = DQNConfig.from_spec(self.spec)
        seed = worker_seed(self.spec.seed, self.worker, self.incarnation)
        self.envs = make_vector_env(
            self.spec.env_id, self.spec.env_params, self.config.envs_per_worker, seed
        )
        self.collector = VectorCollector(self.envs, seed)
        spaces = EnvSpaces.from_env(self.envs)
        # Built from the run seed, this is the learner's version 0: no waiting for weights.
        self.policy = QPolicy.from_spaces(spaces, self.config.hidden, seed=self.spec.seed)
        self.policy_version = 0
        self.schedule = self.config.exploration_schedule()
        self.actors = actor_ids(self.worker, self.config.envs_per_worker)
        self.rng = np.random.default_rng(seed)
        self.pending: list[Transition] = []
        self.env_steps = 0
        self.steps_on_version = 0
        self.seq = 0
        self.max_steps_per_version = self._steps_per_version()
        self.resumed_steps = self.spec.resume.env_steps if self.spec.resume else 0
        # The version this worker starts acting with: 0 (built from the seed), or for a
        # resumed run the first weights the trainer sends.
        self.first_version: int | None = None if self.spec.resume else 0

        experience = self.topology.experience(self.run_id)
        weights = self.topology.weights(self.run_id, self.worker)
        self.bus.declare(experience, weights)
        self.bus.consume(weights, self.on_weights, prefetch=1)
        self.publish_status("running", f"{self.name} collecting")

    def _steps_per_version(self) -> float:
        """Env steps one worker may take per weights version: what the learner consumes
        between two publications at the configured replay ratio, with some slack."""
        cfg = self.config
        per_version = cfg.weights_publish_interval * cfg.batch_size / cfg.samples_per_insert
        return STEPS_AHEAD_SLACK * per_version / cfg.num_workers

    @property
    def waiting_for_learner(self) -> bool:
        if self.first_version is None:
            return True  # a resumed run acts with the restored policy, never from scratch
        if self.policy_version == self.first_version:  # learning has not started: warm up
            warmup = STEPS_AHEAD_SLACK * self.config.learning_starts / self.config.num_workers
            return self.env_steps > warmup
        return self.steps_on_version > self.max_steps_per_version

    def step(self) -> None:
        if self.waiting_for_learner:
            self.bus.poll(0.005)
            return
        self.bus.poll(0)
        # The run's steps, approximately (a resumed run continues its exploration schedule).
        total_steps = self.env_steps * self.config.num_workers + self.resumed_steps
        epsilons = self.schedule.epsilons(self.actors, total_steps)
        actions = self.policy.act(self.collector.obs, epsilons, self.rng)
        transition, episodes = self.collector.step(actions)
        self.env_steps += self.collector.num_envs
        self.steps_on_version += self.collector.num_envs
        self.pending.append(transition)
        for episode in episodes:
            self.publish_event(
                EpisodeFinished(
                    run_id=self.run_id,
                    worker=self.worker,
                    incarnation=self.incarnation,
                    seq=self.seq,
                    reward=episode.reward,
                    length=episode.length,
                    env_steps=self.env_steps,
                    policy_version=self.policy_version,
                )
            )
            self.seq += 1
        if len(self.pending) * self.collector.num_envs >= EXPERIENCE_BATCH:
            self.ship_experience()

    def ship_experience(self) -> None:
        batch = Transition.concatenate(self.pending)
        self.pending = []
        header = ExperienceHeader(
            run_id=self.run_id,
            worker=self.worker,
            incarnation=self.incarnation,
            policy_version=self.policy_version,
            env_steps=self.env_steps,
        )
        self.bus.publish(
            self.topology.data,
            self.topology.data_key(self.run_id, "experience"),
            encode_frame(header, batch._asdict()),
        )

    def on_weights(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if not isinstance(header, WeightsHeader):
            raise BadMessage(f"{header.type} on a weights queue")
        if header.version > self.policy_version:
            self.policy.load(bytes_to_state(arrays["safetensors"].tobytes()))
            self.policy_version = header.version
            self.steps_on_version = 0
            if self.first_version is None:
                self.first_version = header.version

    def finish(self) -> None:
        self.envs.close()
