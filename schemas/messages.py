"""Every message that crosses the broker: commands, events and the headers of binary
data frames. One typed record per message, each with a `type` and a `schema_version`,
all encoded by one serializer (`Message.encode` / `decode_message`).

Control messages are small JSON documents. Tensors never travel in them: experience,
sample batches and weights are binary frames (broker/codec.py) whose JSON header is one
of the `*Header` records below. See docs/architecture.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

SCHEMA_VERSION = 1
Status = Literal["queued", "running", "completed", "stopping", "stopped", "failed"]
FinalStatus = Literal["completed", "stopped", "failed"]
Role = Literal["trainer", "buffer", "rollout", "evaluator"]


class BadMessage(ValueError):
    """A body that cannot be decoded: malformed, unknown type or unknown schema_version.
    Consumers dead-letter such messages instead of retrying them."""


class Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )
    schema_version: Literal[1] = SCHEMA_VERSION
    content_type: ClassVar[str] = "application/json"

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


# ---- the run specification ---------------------------------------------------------------


class ResumeFrom(BaseModel):
    """The checkpoint a run continues from; its state arrives on run.<id>.resume."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_id: int
    version: int
    env_steps: int = 0


DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*[.:][A-Za-z_][A-Za-z0-9_]*$"


class PolicyRef(BaseModel):
    """A network class named by dotted path (`package.module:Class` or
    `package.module.Class`) and the keyword arguments it is built with. Only modules under
    the configured `training.allowed_modules` are imported (actors/networks/custom.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(max_length=300, pattern=DOTTED_PATH)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class WandbSink(BaseModel):
    """A Weights & Biases run of the trainer's metrics. `offline` writes the run locally
    (upload it later with `wandb sync`); `online` needs WANDB_API_KEY in the trainer's
    environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project: str = Field("runt", min_length=1, max_length=128, pattern=r"^[\w.\-]+$")
    entity: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\w.\-]+$")
    mode: Literal["offline", "online"] = "offline"


class MetricSinks(BaseModel):
    """Where the trainer also writes its metrics, evaluations and episode rewards, under
    the trainer's `training.metrics_dir` (actors/roles/sinks.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tensorboard: bool = False
    wandb: WandbSink | None = None


class RunSpec(BaseModel):
    """Everything the actors need to run a training run, as stored by the web service."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: int
    algorithm: str
    env_id: str
    env_params: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    learning_rate: float
    batch_size: int
    buffer_size: int
    gamma: float
    seed: int
    num_workers: int
    target_episode: int
    stop_reward: float | None = None
    resume: ResumeFrom | None = None
    policy: PolicyRef | None = None  # a custom network; None: runt's MLPs of `hidden`
    metric_sinks: MetricSinks | None = None


# ---- commands (exchange <prefix>.commands) -----------------------------------------------


class StartRun(Message):
    """routing key run.start: an agent launches the run's trainer and buffer and asks for
    its rollout workers with one SpawnActor each."""

    type: Literal["run.start"] = "run.start"
    spec: RunSpec


class SpawnActor(Message):
    """routing key actor.spawn: any agent may take it, so workers spread over agents."""

    type: Literal["actor.spawn"] = "actor.spawn"
    spec: RunSpec
    role: Role = "rollout"
    worker: int = 0
    incarnation: int = 0


class StopRun(Message):
    """routing key run.<id>.stop: every actor of the run finishes and exits."""

    type: Literal["run.stop"] = "run.stop"
    run_id: int
    status: FinalStatus = "stopped"
    reason: str = ""


# ---- events (exchange <prefix>.events, routing key run.<id>.<kind>) -----------------------


def _new_event_id() -> str:
    return uuid.uuid4().hex


class RunEvent(Message):
    """Base of events. `event_id` is fixed when the event is made, so the event log can
    tell a redelivery from a new event and store each once."""

    event_id: str = Field(default_factory=_new_event_id, min_length=1, max_length=64)
    run_id: int


class EpisodeFinished(RunEvent):
    """One training episode as a rollout worker played it. (worker, incarnation, seq)
    identifies it, so a redelivered event is recognised and stored once."""

    type: Literal["episode"] = "episode"
    worker: int
    incarnation: int = 0
    seq: int = Field(ge=0)
    reward: float
    length: int = Field(ge=0)
    env_steps: int = Field(0, ge=0, description="the worker's env steps so far")
    policy_version: int = 0


NonNegativeInt = Annotated[int, Field(ge=0)]
MAX_EPISODES_PER_EVENT = 10_000


class EpisodesFinished(RunEvent):
    """The episodes one worker finished in the last moments, in order, as columns:
    episode i has sequence number `first_seq + i`, return `rewards[i]` and length
    `lengths[i]`, and ended when the worker had taken `env_steps[i]` env steps, acting
    with policy `policy_versions[i]`. The event log stores each as if it had come alone.

    Episodes are gathered (actors/roles/rollout.py, `EPISODES_EVERY_S`) because a confirmed
    event per episode would take most of a worker's time, and sent as columns because a
    worker on a short environment finishes thousands a second: lists of numbers are
    validated in one go, where a record per episode would cost a share of every step."""

    type: Literal["episodes"] = "episodes"
    worker: int
    incarnation: int = 0
    first_seq: int = Field(ge=0)
    rewards: list[float] = Field(min_length=1, max_length=MAX_EPISODES_PER_EVENT)
    lengths: list[NonNegativeInt]
    env_steps: list[NonNegativeInt]
    policy_versions: list[int]

    @model_validator(mode="before")
    @classmethod
    def _from_records(cls, data: Any) -> Any:
        """Events of earlier releases carry `episodes`, a list of {seq, reward, length,
        env_steps, policy_version} records with consecutive seqs: still read, so an
        upgrade does not dead-letter what waits in the event log."""
        if not isinstance(data, dict) or "episodes" not in data:
            return data
        data = dict(data)
        records = data.pop("episodes")
        if not isinstance(records, list) or not records:
            raise ValueError("episodes: a non-empty list of records is needed")
        try:
            first = records[0]["seq"]
            seqs = [r["seq"] for r in records]
            columns = {
                "rewards": [r["reward"] for r in records],
                "lengths": [r["length"] for r in records],
                "env_steps": [r.get("env_steps", 0) for r in records],
                "policy_versions": [r.get("policy_version", 0) for r in records],
            }
        except (TypeError, KeyError) as exc:
            raise ValueError(f"episodes: a record lacks {exc}") from None
        if not isinstance(first, int) or seqs != list(range(first, first + len(seqs))):
            raise ValueError("episodes: sequence numbers must be consecutive integers")
        return {**data, "first_seq": first, **columns}

    @model_validator(mode="after")
    def _columns_match(self) -> EpisodesFinished:
        count = len(self.rewards)
        for name in ("lengths", "env_steps", "policy_versions"):
            if len(getattr(self, name)) != count:
                raise ValueError(f"{name}: {len(getattr(self, name))} values for {count} rewards")
        return self

    def records(self) -> Iterator[tuple[int, float, int, int, int]]:
        """(seq, reward, length, env_steps, policy_version) of each episode, in order."""
        seqs = range(self.first_seq, self.first_seq + len(self.rewards))
        columns = (self.rewards, self.lengths, self.env_steps, self.policy_versions)
        return zip(seqs, *columns, strict=True)

    def expand(self) -> list[EpisodeFinished]:
        common = {"run_id": self.run_id, "worker": self.worker, "incarnation": self.incarnation}
        return [
            EpisodeFinished(
                event_id=f"{self.event_id}:{seq}",
                seq=seq,
                reward=reward,
                length=length,
                env_steps=env_steps,
                policy_version=version,
                **common,
            )
            for seq, reward, length, env_steps, version in self.records()
        ]


def expand_episodes(events: list) -> list:
    """Batches of episodes as single-episode events; other events as they are."""
    flat: list = []
    for event in events:
        flat.extend(event.expand() if isinstance(event, EpisodesFinished) else (event,))
    return flat


class StatusChanged(RunEvent):
    type: Literal["status"] = "status"
    status: Status
    reason: str | None = None
    actor: str | None = None


class MetricsReported(RunEvent):
    """Namespaced training metrics, e.g. losses/td_loss, charts/env_steps_per_s."""

    type: Literal["metrics"] = "metrics"
    env_steps: int = 0
    values: dict[str, float]


class EvaluationFinished(RunEvent):
    """The greedy policy's score over `episodes` episodes without exploration."""

    type: Literal["evaluation"] = "evaluation"
    env_steps: int
    mean_return: float
    std_return: float
    episodes: int
    updates: int | None = Field(
        None, ge=0, description="the learner's update count of the policy evaluated"
    )


class CheckpointSaved(RunEvent):
    """Network, optimiser and counters (safetensors bytes) with what rebuilds the policy."""

    type: Literal["checkpoint"] = "checkpoint"
    version: int
    env_steps: int
    episode: int
    final: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)
    weights: bytes


class Heartbeat(RunEvent):
    """An agent still hosts actors of the run (sent every `supervision.heartbeat_seconds`).
    The event log fails a running run whose heartbeats stop."""

    type: Literal["heartbeat"] = "heartbeat"
    actor: str
    host: str
    pid: int


# ---- binary frame headers (exchange <prefix>.data) -----------------------------------------


class ExperienceHeader(Message):
    """routing key run.<id>.experience; arrays obs, action, reward, next_obs, terminated,
    horizon (the fields of `actors.algorithms.replay.Transition`: n-step ones carry
    horizons > 1)."""

    type: Literal["experience"] = "experience"
    run_id: int
    worker: int
    incarnation: int = 0
    policy_version: int
    env_steps: int = 0


class SegmentHeader(Message):
    """routing key run.<id>.experience, on-policy algorithms (PPO): one fixed-length
    segment of a rollout worker, arrays as the fields of `actors.algorithms.ppo.Segment`
    (time-major, (T, N, ...)), all played by `policy_version`."""

    type: Literal["segment"] = "segment"
    run_id: int
    worker: int
    incarnation: int = 0
    policy_version: int
    epoch: int = Field(
        0, ge=0, description="the incarnation of the trainer whose weights played it"
    )
    env_steps: int = Field(0, description="the worker's env steps so far")


class SamplesHeader(Message):
    """routing key run.<id>.samples; arrays as in experience, `batches` minibatches stacked.
    Also carries the buffer's counters, so the trainer reports one set of metrics."""

    type: Literal["samples"] = "samples"
    run_id: int
    seq: int
    batches: int = 1
    buffer_size: int = 0
    inserted: int = 0
    sampled: int = 0
    dropped: int = 0
    env_steps: int = Field(0, description="env steps of all workers, as the buffer has seen")
    experience_version: int = Field(0, description="policy version of the newest experience")


class TrainingBatchHeader(Message):
    """routing key run.<id>.samples, on-policy algorithms: the `segments` segments of one
    policy version the learner updates on, each `Segment` array stacked on a new first
    axis. Carries the buffer's counters too (`stale`: segments dropped for coming from
    an older version than the current one)."""

    type: Literal["batch"] = "batch"
    run_id: int
    seq: int
    policy_version: int
    segments: int
    stale: int = 0
    env_steps: int = Field(0, description="env steps of all workers, as the buffer has seen")


class WeightsHeader(Message):
    """routing key run.<id>.weights; one array `safetensors` holding the policy's state."""

    type: Literal["weights"] = "weights"
    run_id: int
    version: int
    epoch: int = Field(
        0, ge=0, description="the trainer's incarnation: a restarted trainer's weights win"
    )


class EvaluateHeader(Message):
    """routing key run.<id>.evaluate: the trainer asks the run's evaluator to score the
    policy after `updates` updates; one array `safetensors` holding the policy's state,
    `network` what rebuilds the policy (a checkpoint's `meta["network"]`). The queue
    keeps only the newest request."""

    type: Literal["evaluate"] = "evaluate"
    run_id: int
    updates: int = Field(ge=0)
    env_steps: int = Field(0, ge=0)
    seed: int
    network: dict[str, Any]


class ResumeHeader(Message):
    """routing key run.<id>.resume; one array `safetensors`: the learner state to continue
    from (networks, optimiser, counters). Durable until the run's trainer takes it."""

    type: Literal["resume"] = "resume"
    run_id: int
    version: int
    env_steps: int = 0


class CreditGranted(Message):
    """routing key run.<id>.credit: the trainer has consumed `consumed` sample messages,
    so the buffer may have that many plus its window in flight (explicit backpressure)."""

    type: Literal["credit"] = "credit"
    run_id: int
    consumed: int


COMMANDS: tuple[type[Message], ...] = (StartRun, SpawnActor, StopRun)
EVENTS: tuple[type[RunEvent], ...] = (
    EpisodeFinished,
    EpisodesFinished,
    StatusChanged,
    MetricsReported,
    EvaluationFinished,
    CheckpointSaved,
    Heartbeat,
)
FRAME_HEADERS: tuple[type[Message], ...] = (
    ExperienceHeader,
    SegmentHeader,
    SamplesHeader,
    TrainingBatchHeader,
    WeightsHeader,
    EvaluateHeader,
    ResumeHeader,
    CreditGranted,
)
# Every record, told apart by its `type`: what the single decoder accepts.
AnyMessage = Annotated[Union[COMMANDS + EVENTS + FRAME_HEADERS], Field(discriminator="type")]  # noqa: UP007 - built from a tuple

_ANY = TypeAdapter(AnyMessage)
EVENT_KINDS = tuple(event.model_fields["type"].default for event in EVENTS)


def decode_message(body: bytes | str | dict) -> Message:
    """Decode any runt message; BadMessage names what is wrong."""
    try:
        if isinstance(body, dict):
            return _ANY.validate_python(body)
        return _ANY.validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadMessage(f"{where}: {first['msg']}") from None
