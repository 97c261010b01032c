"""The trainer: learns from what the buffer sends and is the run's clock.

The algorithm's learner updates on each `samples` frame (replay path, granting the buffer
credit) or training batch (on-policy path). The trainer publishes versioned weights, metrics,
`evaluate` requests for the evaluator and checkpoints (at the start, every
`CHECKPOINT_EVERY_S` and at the end), and keeps a local checkpoint in the agent's work
directory that a restarted trainer continues from (docs/reliability.md). It counts the run's
episodes and hears the evaluations; at `target_episode` or `stop_reward` it ends the run
with a final checkpoint (on `stop_reward`, the state that was evaluated), status
`completed` and a stop command for every actor. See docs/architecture.md (roles).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from actors.algorithms.interfaces import EnvShape
from actors.algorithms.replay import Transition
from actors.algorithms.segments import unstack
from actors.envs.build import make_env
from actors.roles.base import Actor, Every
from actors.roles.sinks import MetricWriter
from broker.codec import bytes_to_state, decode_frame, encode_frame, state_to_bytes
from schemas.messages import (
    BadMessage,
    CheckpointSaved,
    CreditGranted,
    EpisodeFinished,
    EvaluateHeader,
    EvaluationFinished,
    MetricsReported,
    ResumeHeader,
    SamplesHeader,
    TrainingBatchHeader,
    WeightsHeader,
    decode_message,
    expand_episodes,
)

log = logging.getLogger("runt.trainer")
METRICS_EVERY_S = 2.0
CHECKPOINT_EVERY_S = 30.0
WEIGHTS_REPEAT_S = 1.0  # weights are sent again this often when no new version is due
RESUME_TIMEOUT_S = 60.0
LOCAL_CHECKPOINT_EVERY_S = 3.0  # the state a restarted trainer continues from
# Learner states kept for the evaluations asked for and not yet heard back (`KeptStates`).
PENDING_EVALUATIONS = 8
EVALUATION_STALL_S = 30.0  # ... after which the oldest may go, to ask again


class KeptStates:
    """The learner states of the evaluation requests not yet answered, so that a run
    that reaches `stop_reward` ends with the state that was evaluated.

    The evaluate queue keeps only the newest request, and the evaluator plays one at a
    time: when an answer for `updates` U comes, every request before U was dropped or
    answered, so those states go. The request being played may be any of the ones
    kept, so none is dropped to make room: while `limit` are kept, `offer` says no and
    the trainer sends nothing (the queue holds a request already) — unless the oldest
    is `stall_s` old (an evaluator that died while playing it, with nothing queued),
    which then goes. States are known by `updates` alone: an answer to a request of an
    earlier incarnation of the trainer finds nothing (or drops states of this one that
    it outnumbers), and the run then keeps its current state, as it would without them.
    """

    def __init__(
        self,
        limit: int = PENDING_EVALUATIONS,
        stall_s: float = EVALUATION_STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit, self.stall_s, self.clock = limit, stall_s, clock
        self.states: OrderedDict[int, tuple[float, int, dict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.states)

    def offer(self, updates: int, env_steps: int, state: Callable[[], dict]) -> bool:
        """Keep `state()` for a request at `updates`; False: do not send it now."""
        if len(self.states) >= self.limit:
            asked_at = next(iter(self.states.values()))[0]
            if self.clock() - asked_at < self.stall_s:
                return False
            self.states.popitem(last=False)
        self.states[updates] = (self.clock(), env_steps, state())
        return True

    def answered(self, updates: int) -> tuple[int, dict] | None:
        """(env steps, state) of the request at `updates` if kept; drops it and every
        earlier one. None for a request not kept (one of an earlier trainer)."""
        kept = self.states.get(updates)
        for asked in [u for u in self.states if u <= updates]:
            del self.states[asked]
        return None if kept is None else kept[1:]


class Trainer(Actor):
    role = "trainer"
    sinks = MetricWriter()  # TensorBoard / W&B when the run asks (actors/roles/sinks.py)

    def setup(self) -> None:
        self.config = self.algorithm.config_of(self.spec)
        self.sinks = MetricWriter.for_run(self.spec)
        exploration = getattr(self.config, "exploration_schedule", None)
        self.epsilon_schedule = exploration() if exploration else None
        probe = make_env(self.spec.env_id, self.spec.env_params, seed=self.spec.seed)
        self.shape = EnvShape.of(probe)
        probe.close()
        self.learner = self.algorithm.make_learner(self.config, self.shape, self.spec.seed)
        self.version = 0
        self.frames = 0
        self.episodes: set[tuple[int, int, int]] = set()
        self.env_steps = 0
        self.last_samples: SamplesHeader | TrainingBatchHeader | None = None
        self.losses: dict[str, list[float]] = defaultdict(list)
        self.next_eval = self.config.eval_interval_updates
        self.pending_evaluations = KeptStates()  # only with a stop_reward
        self.solved_state: tuple[int, int, dict] | None = None  # updates, env steps, state
        self.env_steps_offset = 0
        self.outcome: tuple[str, str] | None = None  # set when the trainer ends the run
        self.checkpoints = 0
        self.metrics_due = Every(METRICS_EVERY_S)
        self.checkpoint_due = Every(CHECKPOINT_EVERY_S)
        self.local_checkpoint_due = Every(LOCAL_CHECKPOINT_EVERY_S)
        self.saved_updates = -1
        self.rate_mark = (time.monotonic(), 0, 0)  # time, env steps, updates

        self.weights_sent_at = 0.0
        started = f"{self.name} learning"
        if self.incarnation > 0 and self.restore_local():
            started = (
                f"{self.name} restarted from its checkpoint: {self.learner.updates} updates, "
                f"{self.env_steps} env steps, {len(self.episodes)} episodes, "
                f"policy version {self.learner.updates // self.config.weights_publish_interval}"
            )
        elif self.spec.resume is not None:
            self.restore()
        self.publish_weights()  # a resumed policy, or version 0 for late joiners
        self.publish_checkpoint(final=False)  # the starting point, to compare against

        samples = self.topology.samples(self.run_id)
        # The evaluate queue is declared here too: a request sent before the evaluator
        # has started waits for it.
        self.bus.declare(samples, self.topology.credit(self.run_id))
        self.bus.declare(self.topology.evaluate(self.run_id))
        # No ack per frame (a tenth of the trainer's time went to them): the buffer's
        # credit bounds the frames in flight, and a frame that fails is dropped either way.
        self.bus.consume(samples, self.on_samples, auto_ack=True)
        tap = self.topology.event_tap(
            f"trainer-{self.run_id}-{uuid.uuid4().hex[:8]}",
            self.topology.event_key(self.run_id, "episodes"),
            self.topology.event_key(self.run_id, "evaluation"),
        )
        self.bus.declare(tap)
        self.bus.consume(tap, self.on_event, prefetch=500)
        self.publish_status("running", started)

    @property
    def local_checkpoint(self) -> Path | None:
        if not self.work_dir:
            return None  # embedded: a thread is never restarted
        return Path(self.work_dir) / f"run-{self.run_id}" / "trainer.safetensors"

    def save_local(self) -> None:
        """The learner state and the trainer's counters, atomically replaced."""
        path = self.local_checkpoint
        if path is None:
            return
        from safetensors.numpy import save

        episodes = np.array(sorted(self.episodes), dtype=np.int64).reshape(-1, 3)
        learner = np.frombuffer(state_to_bytes(self.learner.state()), dtype=np.uint8)
        counters = {"env_steps": self.env_steps, "env_steps_offset": self.env_steps_offset}
        data = save(
            {"learner": learner, "episodes": episodes},
            metadata={"counters": json.dumps(counters)},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        self.saved_updates = self.learner.updates

    def restore_local(self) -> bool:
        """Continue from the local checkpoint of an earlier incarnation, if there is one."""
        path = self.local_checkpoint
        if path is None or not path.exists():
            log.warning("%s: no local checkpoint to continue from", self.name)
            return False
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as stored:
            counters = json.loads(stored.metadata()["counters"])
            learner = stored.get_tensor("learner")
            episodes = stored.get_tensor("episodes")
        self.learner.load_state(bytes_to_state(learner.tobytes()))
        self.episodes = {tuple(int(x) for x in row) for row in episodes}
        self.env_steps = counters["env_steps"]
        self.env_steps_offset = counters["env_steps_offset"]
        self.next_eval = self.learner.updates + self.config.eval_interval_updates
        log.info("%s continues from %s (%d updates)", self.name, path, self.learner.updates)
        return True

    def restore(self, timeout: float = RESUME_TIMEOUT_S) -> None:
        """Continue from the checkpoint on the run's resume queue: networks, optimiser,
        update count and env steps, so training goes on instead of starting over."""
        received: list[tuple[ResumeHeader, dict]] = []

        def on_resume(delivery) -> None:
            header, arrays = decode_frame(delivery.body)
            if not isinstance(header, ResumeHeader):
                raise BadMessage(f"{header.type} on the resume queue")
            received.append((header, arrays))

        queue = self.topology.resume(self.run_id)
        self.bus.declare(queue)
        self.bus.consume(queue, on_resume, prefetch=1)
        deadline = time.monotonic() + timeout
        while not received:
            if time.monotonic() > deadline or self.stopping:
                raise RuntimeError(f"no resume state arrived within {timeout:.0f} s")
            self.bus.poll(0.2)
        header, arrays = received[0]
        self.learner.load_state(bytes_to_state(arrays["safetensors"].tobytes()))
        self.env_steps_offset = header.env_steps
        self.env_steps = header.env_steps
        self.next_eval = self.learner.updates + self.config.eval_interval_updates
        log.info(
            "%s resumed from version %d (%d updates, %d env steps)",
            self.name, header.version, self.learner.updates, header.env_steps,
        )  # fmt: skip

    @property
    def stopping(self) -> bool:
        return self.outcome is not None or super().stopping

    # ---- messages ----------------------------------------------------------------------------

    def on_samples(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if isinstance(header, SamplesHeader):
            self.learn_from_samples(header, arrays)
        elif isinstance(header, TrainingBatchHeader):
            self.learn_from_batch(header, arrays)
        else:
            raise BadMessage(f"{header.type} on the samples queue")
        self.last_samples = header
        self.env_steps = max(self.env_steps, self.env_steps_offset + header.env_steps)

    def learn_from_samples(self, header: SamplesHeader, arrays: dict) -> None:
        """Replay path: one update per minibatch of the frame, then credit for it."""
        frame = Transition(**{name: arrays[name] for name in Transition._fields})
        for minibatch in np.array_split(np.arange(frame.batch_size), header.batches):
            self.record(self.learner.update(Transition(*(field[minibatch] for field in frame))))
        self.frames += 1
        # Credit in the buffer's own numbering: frames lost on the way (a broker restart)
        # or consumed by an earlier incarnation of this trainer count as consumed.
        self.bus.publish(
            self.topology.data,
            self.topology.data_key(self.run_id, "credit"),
            CreditGranted(run_id=self.run_id, consumed=header.seq + 1).encode(),
        )

    def learn_from_batch(self, header: TrainingBatchHeader, arrays: dict) -> None:
        """On-policy path: one update on the batch's segments, if they were played by
        the policy the learner has now (anything else would be off-policy data)."""
        if header.policy_version != self.learner.updates:
            log.warning(
                "dropping a batch of version %d: the learner is at %d",
                header.policy_version, self.learner.updates,
            )  # fmt: skip
            return
        self.record(self.learner.update(unstack(self.algorithm.segment_type, arrays)))
        self.frames += 1

    def record(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.losses[name].append(value)

    def on_event(self, delivery) -> None:
        message = decode_message(delivery.body)
        if isinstance(message, EvaluationFinished):
            self.on_evaluation(message)
            return
        for event in expand_episodes([message]):
            if isinstance(event, EpisodeFinished):
                key = (event.worker, event.incarnation, event.seq)
                if key not in self.episodes:
                    self.sinks.episode(event.reward, event.length, self.env_steps)
                self.episodes.add(key)

    def on_evaluation(self, event: EvaluationFinished) -> None:
        """The evaluator's score of a policy this trainer asked about."""
        self.sinks.evaluation(event.mean_return, event.std_return, event.env_steps)
        kept = self.pending_evaluations.answered(event.updates)
        stop_reward = self.spec.stop_reward
        if stop_reward is None or event.mean_return < stop_reward or self.outcome is not None:
            return
        self.outcome = (
            "completed",
            f"evaluation mean {event.mean_return:.1f} reached stop_reward {stop_reward:g}",
        )
        if kept is not None:  # else a request of an earlier incarnation: keep the latest
            env_steps, state = kept
            self.solved_state = (event.updates, env_steps, state)

    # ---- the loop ----------------------------------------------------------------------------

    def step(self) -> None:
        updates_before = self.learner.updates
        self.bus.poll(0.01)
        due = self.learner.updates - self.version * self.config.weights_publish_interval
        if due >= self.config.weights_publish_interval:
            self.publish_weights()
        elif time.monotonic() - self.weights_sent_at > WEIGHTS_REPEAT_S:
            self.publish_weights()  # again, for workers that joined (or restarted) since
        if self.learner.updates >= self.next_eval:
            self.next_eval += self.config.eval_interval_updates
            self.request_evaluation()
        if len(self.episodes) >= self.spec.target_episode and self.outcome is None:
            self.outcome = ("completed", f"{self.spec.target_episode} training episodes done")
        if self.metrics_due():
            self.publish_metrics()
        if self.checkpoint_due() and self.learner.updates > updates_before:
            self.publish_checkpoint(final=False)
        elif self.learner.updates > self.saved_updates and self.local_checkpoint_due():
            self.save_local()

    def publish_weights(self) -> None:
        self.version = self.learner.updates // self.config.weights_publish_interval
        self.weights_sent_at = time.monotonic()
        # The epoch is the incarnation: workers take a restarted trainer's weights even where
        # the lost one had published higher versions.
        header = WeightsHeader(run_id=self.run_id, version=self.version, epoch=self.incarnation)
        self.publish_policy("weights", header)

    def publish_policy(self, kind: str, header: WeightsHeader | EvaluateHeader) -> None:
        """The learner's acting weights as safetensors behind `header`, on run.<id>.<kind>."""
        blob = np.frombuffer(state_to_bytes(self.learner.policy_state()), dtype=np.uint8)
        self.bus.publish(
            self.topology.data,
            self.topology.data_key(self.run_id, kind),
            encode_frame(header, {"safetensors": blob}),
        )

    def request_evaluation(self) -> None:
        """Ask the evaluator to score the policy as it is now, and keep the learner's
        state until the answer comes: the final checkpoint of a run that reaches
        `stop_reward` is the state that reached it, not the one training went on to."""
        updates = self.learner.updates
        # Kept only with a stop_reward: else no evaluation ends the run.
        if self.spec.stop_reward is not None and not self.pending_evaluations.offer(
            updates, self.env_steps, self.learner.state
        ):
            return  # the evaluator is behind, and its next request is queued already
        header = EvaluateHeader(
            run_id=self.run_id,
            updates=updates,
            env_steps=self.env_steps,
            seed=self.spec.seed + 7 + updates,
            network=self.learner.network_meta(),
        )
        self.publish_policy("evaluate", header)

    def publish_metrics(self) -> None:
        now, steps, updates = time.monotonic(), self.env_steps, self.learner.updates
        then, steps_then, updates_then = self.rate_mark
        elapsed = max(now - then, 1e-9)
        self.rate_mark = (now, steps, updates)
        values = {name: float(np.mean(v)) for name, v in self.losses.items() if v}
        self.losses.clear()
        values |= {
            "charts/env_steps": float(steps),
            "charts/episodes": float(len(self.episodes)),
            "charts/updates": float(updates),
            "charts/env_steps_per_s": (steps - steps_then) / elapsed,
            "charts/updates_per_s": (updates - updates_then) / elapsed,
            "charts/policy_version": float(self.version),
        }
        values |= self.buffer_metrics()
        if hasattr(self.epsilon_schedule, "value"):  # DQN's annealed epsilon
            values["charts/epsilon"] = float(self.epsilon_schedule.value(steps))
        self.publish_event(MetricsReported(run_id=self.run_id, env_steps=steps, values=values))
        self.sinks.scalars(values, steps)

    def buffer_metrics(self) -> dict[str, float]:
        """The buffer's counters, as the last frame from it carried them."""
        header = self.last_samples
        if isinstance(header, SamplesHeader):
            return {
                "charts/policy_lag": float(self.version - header.experience_version),
                "charts/replay_ratio": header.sampled / max(header.inserted, 1),
                "buffer/size": float(header.buffer_size),
                "buffer/dropped": float(header.dropped),
            }
        if isinstance(header, TrainingBatchHeader):
            return {  # lag: versions between the batch's policy and the one it updated
                "charts/policy_lag": float(self.version - 1 - header.policy_version),
                "buffer/stale_segments": float(header.stale),
            }
        return {}

    def publish_checkpoint(self, final: bool, kept: tuple[int, int, dict] | None = None) -> None:
        """The learner's state now, or `kept` (updates, env steps, state) from earlier."""
        if kept is None:
            updates, env_steps, state = self.learner.updates, self.env_steps, self.learner.state()
            policy_version = self.version  # the newest weights the workers were sent
        else:
            updates, env_steps, state = kept
            policy_version = updates // self.config.weights_publish_interval
        self.checkpoints += 1
        self.publish_event(
            CheckpointSaved(
                run_id=self.run_id,
                version=updates,
                env_steps=env_steps,
                episode=len(self.episodes),
                final=final,
                meta={
                    "algorithm": self.algorithm.name,
                    "env_id": self.spec.env_id,
                    "env_params": self.spec.env_params,
                    "network": self.learner.network_meta(),
                    "policy_version": policy_version,
                    "updates": updates,
                    "format": f"safetensors; policy weights under {self.algorithm.policy_prefix}*",
                },
                weights=state_to_bytes(state),
            )
        )
        self.save_local()

    def finish(self) -> None:
        """Final checkpoint, then the run's end: completed here, or as the stop said."""
        self.publish_metrics()
        self.publish_checkpoint(final=True, kept=self.solved_state)
        if self.outcome is not None:
            status, reason = self.outcome
            self.publish_status(status, reason)
            self.publish_stop(status, reason)
        elif self.stop_request is not None:
            request = self.stop_request
            reason = request.reason or f"{request.status} by request"
            self.publish_status(request.status, reason)
        else:
            self.publish_status("stopped", f"{self.name} was asked to stop by its agent")

    def close(self) -> None:
        self.sinks.close()
        super().close()
