"""Request and response bodies of the REST API.

Requests are validated here (bad input becomes a 400 naming the field); responses
are serialised through these models so the OpenAPI document and the answers agree.
See docs/api.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.messages import MetricSinks, PolicyRef

ALGORITHMS = ("dqn", "ppo", "sac")
STATUSES = ("queued", "running", "completed", "stopping", "stopped", "failed")
ACTIVE_STATUSES = ("queued", "running", "stopping")
Status = Literal["queued", "running", "completed", "stopping", "stopped", "failed"]

# RUNT's task / compute-resource fields. They arrive as top-level form fields and are
# stored as parameters of the environment (runt/MecOffload-v0 gives them meaning).
RUNT_ENV_FIELDS = (
    "task_size_average",
    "task_comsumption_average",
    "task_time_average",
    "task_arrival_rate",
    "n_UE",
    "UE_computation_capacity",
    "MEC_computation_capacity",
)
MEC_ENV_ID = "runt/MecOffload-v0"
DEFAULT_ENV_ID = "CartPole-v1"

MAX_ID = 2**63 - 1
PositiveId = Annotated[int, Field(ge=1, le=MAX_ID)]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _json_object(value: Any) -> Any:
    """Form bodies carry nested objects as JSON text; JSON bodies carry them as objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


class LoginRequest(Request):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class TrainRequest(Request):
    name: str | None = Field(None, max_length=200)
    algorithm: str = Field(description=f"one of {', '.join(ALGORITHMS)} (case-insensitive)")
    target_episode: int = Field(ge=1, le=10_000_000, description="training episodes to run")
    env_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description=f"Gymnasium id; default {MEC_ENV_ID} when RUNT's task fields are given, "
        f"else {DEFAULT_ENV_ID}",
    )
    env_params: dict[str, Any] = Field(default_factory=dict)
    learning_rate: float = Field(1e-3, gt=0, le=1, allow_inf_nan=False)
    batch_size: int = Field(64, ge=1, le=65_536)
    buffer_size: int = Field(100_000, ge=1, le=100_000_000)
    gamma: float = Field(0.99, ge=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="random when omitted")
    num_workers: int = Field(1, ge=1, le=64, description="rollout workers")
    stop_reward: float | None = Field(
        None, allow_inf_nan=False, description="complete early when an evaluation mean reaches it"
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    resume_from: PositiveId | None = Field(
        None,
        description="continue from this model's newest checkpoint (weights, optimiser, counters)",
    )
    policy: PolicyRef | None = Field(
        None,
        description="a custom network: {path: 'package.module:Class', kwargs: {...}}; "
        "the module must be under the service's training.allowed_modules",
    )
    metric_sinks: MetricSinks | None = Field(
        None, description="also write the trainer's metrics to TensorBoard and/or W&B"
    )
    task_size_average: PositiveNumber | None = None
    task_comsumption_average: PositiveNumber | None = None
    task_time_average: PositiveNumber | None = None
    task_arrival_rate: PositiveNumber | None = None
    n_UE: int | None = Field(None, ge=1, le=1000)
    UE_computation_capacity: PositiveNumber | None = None
    MEC_computation_capacity: PositiveNumber | None = None

    @field_validator("env_params", "hyperparameters", mode="before")
    @classmethod
    def _objects(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_object(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("{"):
            return {"path": value.strip()}  # a bare path: no kwargs
        return None if value is None else _json_object(value)

    @field_validator("metric_sinks", mode="before")
    @classmethod
    def _sinks_object(cls, value: Any) -> Any:
        return None if value is None else _json_object(value)

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm; choose one of {', '.join(ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _runt_fields_into_env_params(self) -> TrainRequest:
        runt_values = {f: getattr(self, f) for f in RUNT_ENV_FIELDS if getattr(self, f) is not None}
        self.env_params = {**self.env_params, **runt_values}
        if self.env_id is None:
            self.env_id = MEC_ENV_ID if runt_values else DEFAULT_ENV_ID
        return self


class StopRequest(Request):
    model_id: PositiveId


MAX_TEST_STEPS = 10_000


class TestModelRequest(Request):
    model_id: PositiveId
    observation: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        None, max_length=100_000, description="start state; default: reset with the run's seed"
    )
    steps: int = Field(100, ge=1, le=MAX_TEST_STEPS)
    deterministic: bool = Field(True, description="greedy actions; false adds a little noise")
    checkpoint: int | None = Field(None, ge=0, description="checkpoint version; default latest")

    @field_validator("observation", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # form bodies carry the list as JSON text
            try:
                return json.loads(value) if value.strip() else None
            except ValueError:
                raise ValueError("must be a JSON list of numbers") from None
        return value


class CheckpointQuery(Request):
    version: int | None = Field(None, ge=0, description="checkpoint version; default newest")


class ReplayQuery(CheckpointQuery):
    episodes: int = Field(1, ge=1, le=5)


class PageQuery(Request):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int | None = Field(None, ge=1)


class ModelsQuery(PageQuery):
    status: Status | None = Field(None, description="only runs in this status")
    algorithm: Literal["dqn", "ppo", "sac"] | None = Field(
        None, description="only runs of this algorithm"
    )


FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class AssistantRequest(Request):
    """Either a stored run (`model_id`) or a free description of one (RUNT's fields:
    `algorithm`, `env_id`, `hyperparameters`, `rewards`); not both."""

    model_id: PositiveId | None = Field(None, description="a run of yours to analyse")
    algorithm: str | None = Field(None, description=f"one of {', '.join(ALGORITHMS)}")
    env_id: str | None = Field(None, min_length=1, max_length=200, description="Gymnasium id")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    rewards: list[FiniteNumber] = Field(
        default_factory=list, max_length=100_000, description="episode rewards, oldest first"
    )
    lang: Literal["en", "zh"] | None = Field(None, description="default: from Accept-Language")

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("rewards", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        """Form bodies carry the list as JSON text."""
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else []
            except ValueError:
                raise ValueError("must be a JSON list of numbers") from None
        return value

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str | None) -> str | None:
        return None if value is None else TrainRequest._known_algorithm(value)

    @model_validator(mode="after")
    def _one_source(self) -> AssistantRequest:
        free = self.rewards or self.hyperparameters or self.algorithm or self.env_id
        if self.model_id is not None and free:
            raise _error_at(
                "model_id", "give either model_id or algorithm/env_id/hyperparameters/rewards"
            )
        if self.model_id is None and not (self.rewards or self.hyperparameters):
            raise _error_at("model_id", "give model_id, or hyperparameters and/or rewards")
        return self


def _error_at(field: str, message: str) -> ValidationError:
    """A model-level rule's error, reported at the field a client should change."""
    error = InitErrorDetails(type=PydanticCustomError("one_source", message), loc=(field,))
    return ValidationError.from_exception_data("AssistantRequest", [error])


# ---- responses -------------------------------------------------------------------------

# The database stores naive UTC; answers always carry the zone.
UtcDatetime = Annotated[
    datetime, AfterValidator(lambda t: t if t.tzinfo else t.replace(tzinfo=UTC))
]

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    status: Literal["success", "error"]
    message: str
    data: T | None = None


class UserOut(BaseModel):
    id: int
    username: str


class LoginOut(BaseModel):
    token: str
    user: UserOut
    expires_at: UtcDatetime


class TrainOut(BaseModel):
    id: int
    status: Status


class ModelSummary(BaseModel):
    id: int
    name: str | None
    algorithm: str
    env_id: str
    env_params: dict[str, Any]
    hyperparameters: dict[str, Any]
    learning_rate: float
    batch_size: int
    buffer_size: int
    gamma: float
    seed: int
    num_workers: int
    target_episode: int
    current_episode: int
    stop_reward: float | None
    resume_from: int | None = None
    resume_version: int | None = None
    policy: dict[str, Any] | None = None
    metric_sinks: dict[str, Any] | None = None
    status: Status
    create_time: UtcDatetime
    update_time: UtcDatetime


class EvaluationOut(BaseModel):
    env_steps: int
    mean_return: float
    std_return: float
    episodes: int
    create_time: UtcDatetime


class StatusChangeOut(BaseModel):
    status: Status
    reason: str | None
    actor: str | None = Field(description="who changed it: an actor, an agent or `web`")
    create_time: UtcDatetime


class ModelDetail(ModelSummary):
    status_reason: str | None
    metrics: dict[str, Any] | None = Field(description="latest metrics event of the run")
    evaluations: list[EvaluationOut]
    best_eval_return: float | None
    last_eval_return: float | None
    status_history: list[StatusChangeOut] = Field(
        default_factory=list,
        description="every status reported for the run, oldest first (restarts included)",
    )


class ModelPage(BaseModel):
    total: int
    page: int
    page_size: int
    total_pages: int
    models: list[ModelSummary]


class TrainDataRow(BaseModel):
    episode: int
    reward: float
    smoothed_reward: float
    length: int
    create_time: UtcDatetime


class TrainDataPage(BaseModel):
    model_id: int
    model_algorithm: str
    total: int
    page: int
    page_size: int
    total_pages: int
    train_data: list[TrainDataRow]


class TestModelOut(BaseModel):
    observation: list[list[float]] = Field(description="the observation at each step taken")
    action: list[list[float]]
    rewards: list[float]
    total_reward: float
    terminated: bool
    truncated: bool
    steps: int
    checkpoint_version: int


class HealthOut(BaseModel):
    database: bool
    broker: bool


class PresetOut(BaseModel):
    name: str = Field(description="the file name without .yaml")
    file: str
    description: str = Field(description="the first sentence of the file's comment")
    values: dict[str, Any] = Field(description="POST /train/ fields, as the file gives them")


class PresetList(BaseModel):
    presets: list[PresetOut]


class MetricsOut(BaseModel):
    worker: int = Field(
        description="the web worker process that answered (web.workers); counters are "
        "its own, and the event log's are kept by worker 0"
    )
    event_log: dict[str, int] = Field(
        description="what the event log stored, by kind (episode, metrics, status, "
        "checkpoint, ...; *_duplicate: redeliveries recognised), and dead_lettered"
    )
    consumers: dict[str, int] = Field(
        description="deliveries the web service's consumers rejected: dead_lettered "
        "(dead_lettered.malformed, .oversized, .failing), discarded, retried"
    )
    live: dict[str, int] = Field(
        description="the live streams' feed of stored events: notices received, "
        "notices_dropped (not sent while the broker was away)"
    )
    reads: dict[str, int] = Field(
        description="this worker's cache of runs lists and train-data pages "
        "(api.read_cache_seconds): entries, hits, joined (answered by a read another "
        "request had begun), misses (database reads)"
    )
    dead_letter_queue: int | None = Field(
        description="messages waiting in the dead-letter queue, from any consumer; "
        "null when the broker cannot say"
    )
