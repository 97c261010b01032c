"""The rollout worker: plays the run's environments with the newest policy it has and
ships what happened.

What it collects is the algorithm's (`Algorithm.make_collector`). Replay path (DQN, SAC):
transitions in frames tagged with the policy version that played them; new weights are
looked for between steps, never waited for, unless the worker has run
`max_steps_per_version` steps ahead (collection must not starve the learner of CPU).
On-policy path (PPO): one segment of the current version, then a wait for the next.
Finished episodes are reported together in one `episodes` event every `EPISODES_EVERY_S`,
published and confirmed by a thread of the worker (broker/background.py); frames stay on the
loop, unconfirmed, since handing them over would cost about what the socket write does.
See docs/architecture.md (roles).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from actors.algorithms.collectors import EXPERIENCE_BATCH
from actors.algorithms.interfaces import EnvShape
from actors.envs.build import Episode, VectorCollector, make_vector_env
from actors.roles.base import Actor
from broker.background import BackgroundPublisher
from broker.codec import bytes_to_state, decode_frame, encode_frame
from broker.sync import Bus
from schemas.messages import (
    BadMessage,
    EpisodesFinished,
    ExperienceHeader,
    SegmentHeader,
    WeightsHeader,
)

__all__ = ["EXPERIENCE_BATCH", "RolloutWorker", "worker_seed"]

log = logging.getLogger("runt.rollout")

STEPS_AHEAD_SLACK = 4.0  # how far ahead of the learner's consumption a worker may run
EPISODES_EVERY_S = 0.25  # finished episodes are reported together this often
# ... or as soon as this many are waiting. Short episodes (an untrained policy's) come by
# thousands a second, and each event costs a validation, a confirmed publish and two
# thread hand-overs, so a bound much lower would send many events a second.
EPISODES_PER_EVENT = 1024
# Weights and stop commands are looked for this often while collecting, not every step:
# a poll of an idle AMQP connection (two socket timeouts and a read) costs more than a step.
POLL_EVERY_S = 0.01
# A replay-path worker paused for the learner this long takes another allotment of steps:
# experience lost with a broker restart must not leave worker and learner each waiting
# for the other (the learner for inserts, the worker for a newer policy).
MAX_PAUSE_S = 5.0


def worker_seed(run_seed: int, worker: int, incarnation: int) -> int:
    """Distinct, reproducible streams per worker and per restart."""
    return (run_seed + 10_007 * (worker + 1) + 1_000_003 * incarnation) % 2**31


class RolloutWorker(Actor):
    role = "rollout"

    def setup(self) -> None:
        algorithm = self.algorithm
        self.config = algorithm.config_of(self.spec)
        self.on_policy = algorithm.buffer == "on_policy"
        seed = worker_seed(self.spec.seed, self.worker, self.incarnation)
        self.envs = make_vector_env(
            self.spec.env_id, self.spec.env_params, self.config.envs_per_worker, seed
        )
        vector = VectorCollector(self.envs, seed)
        # Built from the run seed, this is the learner's version 0: no waiting for weights.
        self.policy = algorithm.make_policy(self.config, EnvShape.of(self.envs), self.spec.seed)
        self.policy_version = 0
        self.weights_epoch = 0  # the trainer incarnation of those weights
        self.rng = np.random.default_rng(seed)
        self.collector = algorithm.make_collector(
            self.config, self.policy, vector, self.worker, self.rng
        )
        self.env_steps = 0
        self.num_workers = self.config.num_workers
        self.steps_on_version = 0
        self.shipped_version = -1  # on-policy: the version of the last segment sent
        self.shipped_epoch = 0  # ... and the trainer incarnation of that version
        self.pending_version = 0  # the version of the last step collected
        self.seq = 0
        # Finished episodes not yet reported, as the columns of an `EpisodesFinished`:
        # returns, lengths, the worker's env steps and the policy version at their end.
        self.finished: tuple[list[float], list[int], list[int], list[int]] = ([], [], [], [])
        # When the next report and the next broker poll are due (time.monotonic()): one
        # clock read a step serves both.
        self.report_at = time.monotonic() + EPISODES_EVERY_S
        self.poll_at = time.monotonic() + POLL_EVERY_S
        self.paused_at: float | None = None
        self.extra_warmup = 0.0
        self.warmup_steps = (
            STEPS_AHEAD_SLACK * self.config.learning_starts / self.config.num_workers
            if not self.on_policy
            else 0.0
        )
        self.max_steps_per_version = self._steps_per_version()
        self.resumed_steps = self.spec.resume.env_steps if self.spec.resume else 0
        # The version this worker starts acting with: 0 (built from the seed), or the
        # first weights the trainer sends: for a resumed run, and for a restarted
        # on-policy worker (a segment of version 0 would only be dropped as stale).
        restarted_on_policy = self.on_policy and self.incarnation > 0
        self.first_version: int | None = None if self.spec.resume or restarted_on_policy else 0

        experience = self.topology.experience(self.run_id)
        weights = self.topology.weights(self.run_id, self.worker)
        self.bus.declare(experience, weights)
        self.bus.consume(weights, self.on_weights, prefetch=1)
        # Episode events go out from a thread (see the module docstring).
        self.publisher = BackgroundPublisher(
            Bus(
                self.bus.url,
                self.topology,
                f"{self.name}-publisher",
                connect_timeout=self.bus.connect_timeout,
                publish_timeout=self.bus.publish_timeout,
            )
        )
        self.publish_status("running", f"{self.name} collecting")

    def _steps_per_version(self) -> float:
        """Replay path: env steps one worker may take per weights version, what the
        learner consumes between two publications at the configured replay ratio, with
        some slack."""
        if self.on_policy:
            return float("inf")
        cfg = self.config
        per_version = cfg.weights_publish_interval * cfg.batch_size / cfg.replay_ratio
        return STEPS_AHEAD_SLACK * per_version / cfg.num_workers

    @property
    def waiting_for_learner(self) -> bool:
        if self.first_version is None:
            return True  # a resumed run acts with the restored policy, never from scratch
        if self.on_policy:  # one segment per version
            held = (self.weights_epoch, self.policy_version)
            return held <= (self.shipped_epoch, self.shipped_version)
        if self.policy_version == self.first_version:  # learning has not started: warm up
            return self.env_steps > self.warmup_steps + self.extra_warmup
        return self.steps_on_version > self.max_steps_per_version

    def step(self) -> None:
        if self.waiting_for_learner:
            self.ship_pending()
            self.bus.poll(0.005)
            self.end_long_pause()
            return
        self.paused_at = None
        now = time.monotonic()
        if now >= self.poll_at:
            self.poll_at = now + POLL_EVERY_S
            self.bus.poll(0)
        # The run's steps, approximately (a resumed run continues its exploration schedule).
        run_steps = self.env_steps * self.num_workers + self.resumed_steps
        version = self.policy_version  # what acted, even if new weights arrive meanwhile
        self.pending_version = version
        arrays, episodes, env_steps = self.collector.collect(run_steps)
        self.env_steps += env_steps
        self.steps_on_version += env_steps
        if episodes:
            self.record(episodes, version)
        if now >= self.report_at:
            self.report_at = now + EPISODES_EVERY_S
            self.report_episodes()
        elif len(self.finished[0]) >= EPISODES_PER_EVENT:
            self.report_episodes()
        if arrays is not None:
            self.ship(arrays, version)

    def end_long_pause(self) -> None:
        """Replay path: after `MAX_PAUSE_S` without a newer policy, step on as if one had
        come (a warm-up's worth more, before learning starts)."""
        if self.on_policy or self.first_version is None:
            return
        now = time.monotonic()
        if self.paused_at is None:
            self.paused_at = now
        elif now - self.paused_at > MAX_PAUSE_S:
            log.info("%s: no newer policy for %g s; stepping on", self.name, MAX_PAUSE_S)
            self.steps_on_version = 0
            self.extra_warmup += (
                STEPS_AHEAD_SLACK * self.config.learning_starts / self.config.num_workers
            )
            self.paused_at = None

    def record(self, episodes: list[Episode], version: int) -> None:
        """Number the finished episodes: they take the next sequence numbers."""
        rewards, lengths, env_steps, versions = self.finished
        steps = self.env_steps
        for _, reward, length in episodes:
            rewards.append(reward)
            lengths.append(length)
            env_steps.append(steps)
            versions.append(version)
        self.seq += len(episodes)

    def ship_pending(self) -> None:
        """Replay path: the transitions of a frame not yet full, before the worker
        pauses (the learner may be waiting for them to sample again)."""
        flush = getattr(self.collector, "flush", None)
        arrays = flush() if flush is not None else None
        if arrays is not None:
            self.ship(arrays, self.pending_version)

    def report_episodes(self) -> None:
        """The episodes finished since the last report, as one confirmed event (confirmed
        in the publisher's thread; `finish` waits for it)."""
        rewards, lengths, env_steps, versions = self.finished
        if rewards:
            event = EpisodesFinished(
                run_id=self.run_id,
                worker=self.worker,
                incarnation=self.incarnation,
                first_seq=self.seq - len(rewards),
                rewards=rewards,
                lengths=lengths,
                env_steps=env_steps,
                policy_versions=versions,
            )
            self.finished = ([], [], [], [])
            key = self.topology.event_key(self.run_id, event.type)
            self.publisher.publish_message(self.topology.events, key, event)

    def ship(self, arrays: dict[str, np.ndarray], version: int) -> None:
        """A frame of transitions (replay) or one segment (on-policy) to the buffer."""
        fields = {
            "run_id": self.run_id,
            "worker": self.worker,
            "incarnation": self.incarnation,
            "policy_version": version,
            "env_steps": self.env_steps,
        }
        if self.on_policy:
            header = SegmentHeader(**fields, epoch=self.weights_epoch)
            self.shipped_epoch = self.weights_epoch
        else:  # the worker's own counters: nothing to validate, hundreds of times a second
            header = ExperienceHeader.model_construct(**fields)
        self.shipped_version = version
        key = self.topology.data_key(self.run_id, "experience")
        self.bus.publish(self.topology.data, key, encode_frame(header, arrays))

    def on_weights(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if not isinstance(header, WeightsHeader):
            raise BadMessage(f"{header.type} on a weights queue")
        newer = (header.epoch, header.version) > (self.weights_epoch, self.policy_version)
        if newer or self.first_version is None:
            self.policy.load(bytes_to_state(arrays["safetensors"].tobytes()))
            self.policy_version, self.weights_epoch = header.version, header.epoch
            self.steps_on_version = 0
            if self.first_version is None:
                self.first_version = header.version

    def finish(self) -> None:
        """Report the last episodes and wait until every event is confirmed: a worker
        that has finished has lost none of its episodes."""
        self.report_episodes()
        self.publisher.close()
        self.envs.close()

    def close(self) -> None:
        publisher = getattr(self, "publisher", None)
        if publisher is not None:
            publisher.abandon()  # after a crash; a no-op once `finish` has closed it
        super().close()
