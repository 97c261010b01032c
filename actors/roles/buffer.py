"""The replay buffer actor (the `replay` path of DQN and SAC): the run's replay memory
between rollout workers and the trainer. (PPO's on-policy buffer is actors/roles/onpolicy.py.)

Experience frames from every worker go into a NumPy ring buffer; minibatches are sampled
uniformly and sent to the trainer. The `RateLimiter` holds sampled/inserted to
`samples_per_insert` (as Reverb's SampleToInsertRatio does), and the trainer's credit
(`run.<id>.credit`) bounds the frames in flight to `IN_FLIGHT`; credit that does not come
for `CREDIT_TIMEOUT_S` (lost with a broker restart or a killed trainer) is given up on, so
the run goes on. See docs/architecture.md (roles).
"""

from __future__ import annotations

import logging
import time
from collections import deque

import numpy as np

from actors.algorithms.collectors import EXPERIENCE_BATCH
from actors.algorithms.interfaces import EnvShape
from actors.algorithms.replay import RateLimiter, ReplayBuffer, Transition
from actors.envs.build import make_env
from actors.roles.base import Actor
from broker.codec import decode_frame, encode_frame
from schemas.messages import (
    BadMessage,
    CreditGranted,
    ExperienceHeader,
    SamplesHeader,
    decode_message,
)

BATCHES_PER_FRAME = 4  # minibatches per samples frame
IN_FLIGHT = 4  # sample frames the trainer may have unconsumed
BACKLOG_FRAMES = 64  # experience pieces held while the rate limiter blocks inserts
# Transitions inserted at a time. The rate limiter's error buffer has to cover one insert,
# so an experience frame (up to FRAME_BYTES, sized for the worker's cost of publishing) is
# inserted in pieces: the learner stays as close to the configured ratio as with small
# frames, instead of running dozens of updates ahead on a big one.
INSERT_CHUNK = 32
CREDIT_TIMEOUT_S = 10.0  # outstanding frames without credit this long are taken as lost

log = logging.getLogger("runt.buffer")


class Buffer(Actor):
    role = "buffer"

    def setup(self) -> None:
        self.config = self.algorithm.config_of(self.spec)
        probe = make_env(self.spec.env_id, self.spec.env_params, seed=self.spec.seed)
        spaces = EnvShape.of(probe).spaces
        probe.close()
        self.replay = ReplayBuffer.for_spaces(self.config.buffer_size, spaces)
        self.limiter = self._rate_limiter()
        self.rng = np.random.default_rng(self.spec.seed + 1)
        self.backlog: deque[tuple[ExperienceHeader, Transition]] = deque()
        self.dropped = 0
        self.published = 0
        self.consumed = 0
        self.waiting_since: float | None = None  # for credit, with IN_FLIGHT frames out
        self.worker_steps: dict[tuple[int, int], int] = {}
        self.experience_version = 0

        experience = self.topology.experience(self.run_id)
        samples = self.topology.samples(self.run_id)
        credit = self.topology.credit(self.run_id)
        self.bus.declare(experience, samples, credit)
        self.bus.consume(experience, self.on_experience, prefetch=8)
        self.bus.consume(credit, self.on_credit, prefetch=4)

    def _rate_limiter(self) -> RateLimiter:
        """The configured ratio, with an error buffer wide enough for this actor's
        chunks: one samples frame and one experience frame (see RateLimiter)."""
        cfg = self.config
        frame = cfg.batch_size * BATCHES_PER_FRAME
        insert_chunk = min(INSERT_CHUNK, EXPERIENCE_BATCH + cfg.envs_per_worker)
        needed = (frame + insert_chunk * cfg.replay_ratio) / 2 + 1
        error_buffer = max(cfg.rate_error_buffer or 0.0, needed, cfg.replay_ratio, 1.0)
        return RateLimiter(cfg.replay_ratio, cfg.learning_starts, error_buffer)

    def on_experience(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if not isinstance(header, ExperienceHeader):
            raise BadMessage(f"{header.type} on the experience queue")
        missing = set(Transition._fields) - set(arrays)
        if missing:  # e.g. a worker of a release before n-step transitions (no horizon)
            raise BadMessage(f"experience frame without {', '.join(sorted(missing))}")
        batch = Transition(**{name: arrays[name] for name in Transition._fields})
        for start in range(0, batch.batch_size, INSERT_CHUNK):
            if len(self.backlog) >= BACKLOG_FRAMES:
                _, oldest = self.backlog.popleft()
                self.dropped += oldest.batch_size
            piece = Transition(*(field[start : start + INSERT_CHUNK] for field in batch))
            self.backlog.append((header, piece))

    def on_credit(self, delivery) -> None:
        credit = decode_message(delivery.body)
        if not isinstance(credit, CreditGranted):
            raise BadMessage(f"{credit.type} on the credit queue")
        self.consumed = max(self.consumed, credit.consumed)

    def step(self) -> None:
        worked = self.insert_backlog() + self.send_samples()
        self.bus.poll(0 if worked else 0.002)
        self.check_credit()

    def check_credit(self) -> None:
        if self.published - self.consumed < IN_FLIGHT:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = time.monotonic()
        elif time.monotonic() - self.waiting_since > CREDIT_TIMEOUT_S:
            log.warning(
                "%s: no credit for %d frames in %.0f s; taking them as lost",
                self.name, self.published - self.consumed, CREDIT_TIMEOUT_S,
            )  # fmt: skip
            self.consumed, self.waiting_since = self.published, None

    def insert_backlog(self) -> int:
        inserted = 0
        while self.backlog and self.limiter.can_insert(self.backlog[0][1].batch_size):
            header, batch = self.backlog.popleft()
            self.replay.add(batch)
            self.limiter.inserted(batch.batch_size)
            self.worker_steps[(header.worker, header.incarnation)] = header.env_steps
            self.experience_version = max(self.experience_version, header.policy_version)
            inserted += batch.batch_size
        return inserted

    def send_samples(self) -> int:
        frame_size = self.config.batch_size * BATCHES_PER_FRAME
        sent = 0
        while self.published - self.consumed < IN_FLIGHT and self.limiter.can_sample(frame_size):
            batch = self.replay.sample(frame_size, self.rng)
            self.limiter.sampled(frame_size)
            header = SamplesHeader(
                run_id=self.run_id,
                seq=self.published,
                batches=BATCHES_PER_FRAME,
                buffer_size=len(self.replay),
                inserted=self.limiter.inserts,
                sampled=self.limiter.samples,
                dropped=self.dropped,
                env_steps=sum(self.worker_steps.values()),
                experience_version=self.experience_version,
            )
            self.bus.publish(
                self.topology.data,
                self.topology.data_key(self.run_id, "samples"),
                encode_frame(header, batch._asdict()),
            )
            self.published += 1
            sent += frame_size
        return sent
