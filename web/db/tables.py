"""SQLAlchemy models: the tables of runt's database (MySQL/MariaDB or SQLite).

Times are stored as naive UTC. Binary weights use LONGBLOB on MySQL (a plain BLOB
stops at 64 KiB). Every table is utf8mb4 on MySQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# Microsecond timestamps on MySQL (its DATETIME defaults to whole seconds).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
# SQLite only auto-increments INTEGER PRIMARY KEY, so BIGINT ids are INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: Timestamp}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class Session(Base):
    """A login. Only a hash of the token is stored, so a leaked table grants nothing."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id"), MYSQL_TABLE_ARGS)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    create_time: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Model(Base):
    """A training run: its configuration, owner and lifecycle."""

    __tablename__ = "models"
    __table_args__ = (Index("ix_models_owner_id", "owner_id", "id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    algorithm: Mapped[str] = mapped_column(String(16))
    env_id: Mapped[str] = mapped_column(String(200))
    env_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    learning_rate: Mapped[float] = mapped_column(Double)
    batch_size: Mapped[int]
    buffer_size: Mapped[int]
    gamma: Mapped[float] = mapped_column(Double)
    seed: Mapped[int] = mapped_column(BigInteger)
    num_workers: Mapped[int]
    target_episode: Mapped[int]
    current_episode: Mapped[int] = mapped_column(default=0)
    stop_reward: Mapped[float | None] = mapped_column(Double)
    resume_from: Mapped[int | None] = mapped_column(BigInteger)  # a model id
    resume_version: Mapped[int | None]  # that model's checkpoint version
    policy: Mapped[dict[str, Any] | None]  # a custom network {path, kwargs}; None: runt's
    metric_sinks: Mapped[dict[str, Any] | None]  # {tensorboard, wandb} of the trainer
    status: Mapped[str] = mapped_column(String(16), default="queued")
    status_reason: Mapped[str | None] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(default=utcnow)
    update_time: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingData(Base):
    """One training episode as a rollout worker played it (exploration included)."""

    __tablename__ = "training_data"
    __table_args__ = (
        UniqueConstraint("model_id", "episode", name="uq_training_data_episode"),
        # A redelivered episode event is recognised by who sent it and its number.
        UniqueConstraint(
            "model_id", "worker", "worker_incarnation", "worker_seq", name="uq_training_data_origin"
        ),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("models.id", ondelete="CASCADE"))
    episode: Mapped[int]
    reward: Mapped[float] = mapped_column(Double)
    smoothed_reward: Mapped[float] = mapped_column(Double)
    length: Mapped[int]
    worker: Mapped[int] = mapped_column(default=0)
    worker_incarnation: Mapped[int] = mapped_column(default=0)
    worker_seq: Mapped[int | None]
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    """Policy weights (safetensors bytes) with the metadata needed to rebuild the policy."""

    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_checkpoints_version"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int]
    env_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    episode: Mapped[int] = mapped_column(default=0)
    weights: Mapped[bytes] = mapped_column(Blob)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The run's result: the state that reached stop_reward, or the last one. It is a run's
    # newest checkpoint even where periodic ones of a higher version were stored after it.
    final: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class Metric(Base):
    """A `metrics` event of a run: namespaced values such as losses/td_loss."""

    __tablename__ = "metrics"
    __table_args__ = (
        Index("ix_metrics_model", "model_id", "id"),
        UniqueConstraint("model_id", "event_id", name="uq_metrics_event"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("models.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(String(64))
    env_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(Base):
    """The greedy policy's score over several episodes at one point of training."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_model", "model_id", "id"),
        UniqueConstraint("model_id", "event_id", name="uq_evaluations_event"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("models.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(String(64))
    env_steps: Mapped[int] = mapped_column(BigInteger)
    mean_return: Mapped[float] = mapped_column(Double)
    std_return: Mapped[float] = mapped_column(Double)
    episodes: Mapped[int]
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class StatusChange(Base):
    """Every status a run reported, in order: the run's history (restarts included)."""

    __tablename__ = "status_history"
    __table_args__ = (
        Index("ix_status_history_model", "model_id", "id"),
        UniqueConstraint("model_id", "event_id", name="uq_status_history_event"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("models.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class Heartbeat(Base):
    """When an agent last said it hosts actors of a run (one row per run and agent)."""

    __tablename__ = "heartbeats"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    model_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    agent: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """A failed login, counted by the login throttle (web/sessions.py) of every web process."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_key", "username_key", "failed_at"),
        Index("ix_login_failures_time", "failed_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username_key: Mapped[str] = mapped_column(String(150))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
