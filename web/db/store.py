"""Queries of the web service. Each function takes a SQLAlchemy session first and runs
inside `Database.run` (a thread), so nothing here may touch the event loop."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from schemas.api import ACTIVE_STATUSES, TrainRequest
from schemas.messages import ResumeFrom, RunSpec
from web.db.tables import (
    Checkpoint,
    Evaluation,
    Metric,
    Model,
    Session,
    StatusChange,
    TrainingData,
    User,
    utcnow,
)


class UsernameTaken(Exception):
    pass


# ---- users and sessions -------------------------------------------------------------------


def add_user(db: DbSession, username: str, password_hash: str) -> int:
    user = User(username=username, password_hash=password_hash)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        raise UsernameTaken(username) from None
    return user.id


def set_password(db: DbSession, username: str, password_hash: str) -> bool:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        return False
    user.password_hash = password_hash
    return True


def find_user(db: DbSession, username: str) -> tuple[int, str, str] | None:
    row = db.execute(
        select(User.id, User.username, User.password_hash).where(User.username == username)
    ).first()
    return tuple(row) if row else None  # type: ignore[return-value]


def count_users(db: DbSession) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def open_session(db: DbSession, user_id: int, token_hash: str, ttl: timedelta) -> datetime:
    now = utcnow()
    db.execute(delete(Session).where(Session.user_id == user_id, Session.expires_at < now))
    expires = now + ttl
    db.add(Session(token_hash=token_hash, user_id=user_id, expires_at=expires))
    return expires


# The reads behind every API request are built once, with bound parameters: building a
# statement and its cache key costs more than the query (bench/api_load.py). Table
# columns rather than ORM attributes, so they run on a plain Connection (`Database.read`).
_users, _sessions = User.__table__, Session.__table__
_models, _training_data = Model.__table__, TrainingData.__table__

SESSION_USER = (
    select(_users.c.id, _users.c.username)
    .join(_sessions, _sessions.c.user_id == _users.c.id)
    .where(
        _sessions.c.token_hash == bindparam("token_hash"), _sessions.c.expires_at > bindparam("now")
    )
)


def session_user(db: DbSession | Connection, token_hash: str) -> tuple[int, str] | None:
    row = db.execute(SESSION_USER, {"token_hash": token_hash, "now": utcnow()}).first()
    return (row[0], row[1]) if row else None


def close_session(db: DbSession, token_hash: str) -> None:
    db.execute(delete(Session).where(Session.token_hash == token_hash))


# ---- models ------------------------------------------------------------------------------

MODEL_FIELDS = (
    "id",
    "name",
    "algorithm",
    "env_id",
    "env_params",
    "hyperparameters",
    "learning_rate",
    "batch_size",
    "buffer_size",
    "gamma",
    "seed",
    "num_workers",
    "target_episode",
    "current_episode",
    "stop_reward",
    "resume_from",
    "resume_version",
    "policy",
    "metric_sinks",
    "status",
    "create_time",
    "update_time",
)


TIME_FIELDS = ("create_time", "update_time")


def model_summary(model: Model) -> dict[str, Any]:
    return {name: getattr(model, name) for name in MODEL_FIELDS}


def utc(moment: datetime) -> datetime:
    """The database stores naive UTC; answers carry the zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def create_model(
    db: DbSession, owner_id: int, req: TrainRequest, seed: int, resume: ResumeFrom | None = None
) -> Model:
    model = Model(
        owner_id=owner_id,
        name=req.name,
        seed=seed,
        resume_from=resume.model_id if resume else None,
        resume_version=resume.version if resume else None,
        current_episode=0,
        status="queued",
        **{name: getattr(req, name) for name in SPEC_FIELDS},
        **{name: _json_of(getattr(req, name)) for name in OPTION_FIELDS},
    )
    db.add(model)
    db.flush()
    return model


SPEC_FIELDS = (
    "algorithm",
    "env_id",
    "env_params",
    "hyperparameters",
    "learning_rate",
    "batch_size",
    "buffer_size",
    "gamma",
    "num_workers",
    "target_episode",
    "stop_reward",
)


OPTION_FIELDS = ("policy", "metric_sinks")  # optional records, stored as JSON


def _json_of(value: Any) -> Any:
    return value.model_dump(mode="json") if value is not None else None


def spec_of(source: Model | TrainRequest, run_id: int, seed: int) -> RunSpec:
    """What the actors are told about a run, from a stored model or from a request
    (to check it before storing it)."""
    fields = {name: getattr(source, name) for name in (*SPEC_FIELDS, *OPTION_FIELDS)}
    return RunSpec(run_id=run_id, seed=seed, **fields)


def run_spec(model: Model, resume: ResumeFrom | None = None) -> RunSpec:
    return spec_of(model, model.id, model.seed).model_copy(update={"resume": resume})


def mark_failed(db: DbSession, model_id: int, reason: str) -> None:
    model = db.get(Model, model_id)
    if model is not None:
        set_status(db, model, "failed", reason)


def set_status(db: DbSession, model: Model, status: str, reason: str | None) -> None:
    """A status change the web service makes itself, recorded in the run's history like
    the ones its actors report."""
    model.status, model.status_reason = status, reason
    db.add(StatusChange(model_id=model.id, status=status, reason=reason, actor="web"))


def model_status(db: DbSession, owner_id: int, model_id: int) -> str | None:
    return db.scalar(select(Model.status).where(Model.id == model_id, Model.owner_id == owner_id))


def owned_model(db: DbSession, owner_id: int, model_id: int) -> Model | None:
    """The model if it exists and belongs to `owner_id`; another user's model is None."""
    return db.scalar(select(Model).where(Model.id == model_id, Model.owner_id == owner_id))


def request_stop(db: DbSession, owner_id: int, model_id: int) -> tuple[str, bool] | None:
    """Move an active run towards `stopped`: (new status, whether it changed); None if not
    owned. A queued run has no actors yet and stops at once; a running one is `stopping`
    until its actors report that they exited."""
    model = db.scalar(
        select(Model).where(Model.id == model_id, Model.owner_id == owner_id).with_for_update()
    )
    if model is None:
        return None
    if model.status not in ACTIVE_STATUSES:
        return model.status, False
    if model.status == "queued":
        set_status(db, model, "stopped", "stopped by the user before it started")
    elif model.status == "running":
        set_status(db, model, "stopping", "stop requested by the user")
    return model.status, True


@dataclass
class Page:
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.page_size) if self.total else 0

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@functools.cache
def _models_page(by_status: bool, by_algorithm: bool) -> tuple[Select, Select]:
    """(count, page) statements of an owner's runs, newest first, with the filters asked."""
    where = [_models.c.owner_id == bindparam("owner_id")]
    if by_status:
        where.append(_models.c.status == bindparam("status"))
    if by_algorithm:
        where.append(_models.c.algorithm == bindparam("algorithm"))
    count = select(func.count()).select_from(_models).where(*where)
    page = (
        select(count.scalar_subquery().label("total"), *(_models.c[n] for n in MODEL_FIELDS))
        .where(*where)
        .order_by(_models.c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, page


def list_models(
    db: DbSession | Connection,
    owner_id: int,
    page: int,
    page_size: int,
    status: str | None = None,
    algorithm: str | None = None,
) -> tuple[Page, list[dict[str, Any]]]:
    """The owner's runs, newest first, optionally only those of a status / algorithm.

    One statement carries the page and the total (a subquery), so they agree and cost
    one round trip; only a page past the end asks for the total on its own.
    """
    count, page_of = _models_page(status is not None, algorithm is not None)
    params = {"owner_id": owner_id, "status": status, "algorithm": algorithm}
    rows = db.execute(page_of, {**params, "limit": page_size, "offset": (page - 1) * page_size})
    rows = rows.all()
    total = rows[0][0] if rows else db.scalar(count, params)
    models = []
    for row in rows:
        model = dict(zip(MODEL_FIELDS, row[1:], strict=True))
        for name in TIME_FIELDS:
            model[name] = utc(model[name])
        models.append(model)
    return Page(total or 0, page, page_size), models


def model_detail(db: DbSession, owner_id: int, model_id: int, recent: int = 20) -> dict | None:
    model = owned_model(db, owner_id, model_id)
    if model is None:
        return None
    out = model_summary(model)
    out["status_reason"] = model.status_reason
    latest = db.scalar(
        select(Metric).where(Metric.model_id == model_id).order_by(Metric.id.desc()).limit(1)
    )
    out["metrics"] = dict(latest.values, env_steps=latest.env_steps) if latest else None
    evals = db.scalars(
        select(Evaluation)
        .where(Evaluation.model_id == model_id)
        .order_by(Evaluation.id.desc())
        .limit(recent)
    ).all()
    out["evaluations"] = [
        {
            "env_steps": e.env_steps,
            "mean_return": e.mean_return,
            "std_return": e.std_return,
            "episodes": e.episodes,
            "create_time": e.create_time,
        }
        for e in reversed(evals)
    ]
    out["best_eval_return"] = db.scalar(
        select(func.max(Evaluation.mean_return)).where(Evaluation.model_id == model_id)
    )
    out["last_eval_return"] = evals[0].mean_return if evals else None
    out["status_history"] = status_history(db, model_id)
    return out


def status_history(db: DbSession, model_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The run's status changes, oldest first (the newest `limit` of them)."""
    rows = db.execute(
        select(
            StatusChange.status, StatusChange.reason, StatusChange.actor, StatusChange.create_time
        )
        .where(StatusChange.model_id == model_id)
        .order_by(StatusChange.id.desc())
        .limit(limit)
    ).all()
    return [row._asdict() for row in reversed(rows)]


_episodes = and_(
    _training_data.c.model_id == _models.c.id,
    _training_data.c.episode > bindparam("first"),
    _training_data.c.episode <= bindparam("last"),
)
TRAIN_DATA_PAGE = (
    select(
        _models.c.algorithm,
        _models.c.current_episode,
        _training_data.c.episode,
        _training_data.c.reward,
        _training_data.c.smoothed_reward,
        _training_data.c.length,
        _training_data.c.create_time,
    )
    .select_from(_models.outerjoin(_training_data, _episodes))
    .where(_models.c.id == bindparam("model_id"), _models.c.owner_id == bindparam("owner_id"))
    .order_by(_training_data.c.episode)
)


def train_data_page(
    db: DbSession | Connection, owner_id: int, model_id: int, page: int, page_size: int
) -> tuple[str, Page, list[dict[str, Any]]] | None:
    """(algorithm, page, rows) of a run's episodes in episode order; None if not owned.

    A run's episodes are exactly 1..current_episode: the event-log consumer numbers
    them under a lock on the model row and moves current_episode in the same
    transaction. So the total is read off the model (no COUNT over 100k index entries)
    and a page is an index range seek, as cheap at page 900 as at page 1. The model and
    its page come in one statement (an outer join: a model with no episodes on the page
    gives one row without any), so they agree and cost one round trip.
    """
    offset = (page - 1) * page_size
    params = {"model_id": model_id, "owner_id": owner_id, "first": offset}
    found = db.execute(TRAIN_DATA_PAGE, {**params, "last": offset + page_size}).all()
    if not found:
        return None
    algorithm, total = found[0][0], found[0][1]
    rows = [
        {
            "episode": episode,
            "reward": reward,
            "smoothed_reward": smoothed,
            "length": length,
            "create_time": utc(created),
        }
        for _, _, episode, reward, smoothed, length, created in found
        if episode is not None and episode <= total
    ]
    return algorithm, Page(total, page, page_size), rows


# ---- checkpoints -----------------------------------------------------------------------------


@dataclass
class CheckpointRef:
    model_seed: int
    version: int | None  # None: the run has no checkpoint (of that version)
    env_id: str


def find_checkpoint(
    db: DbSession, owner_id: int, model_id: int, version: int | None = None
) -> CheckpointRef | None:
    """The newest (or the named) checkpoint version of an owned model; None if not owned."""
    model = db.execute(
        select(Model.seed, Model.env_id).where(Model.id == model_id, Model.owner_id == owner_id)
    ).first()
    if model is None:
        return None
    if version is None:
        found = newest_checkpoint_version(db, model_id)
    else:
        found = db.scalar(
            select(Checkpoint.version).where(
                Checkpoint.model_id == model_id, Checkpoint.version == version
            )
        )
    return CheckpointRef(model.seed, found, model.env_id)


def newest_checkpoint_version(db: DbSession, model_id: int) -> int | None:
    """A run's final checkpoint if it has one, else its highest version. The final one is
    the run's result: a run that reached stop_reward ends with the state that was
    evaluated, which can be older than periodic checkpoints stored while that evaluation
    was played. No owner check: callers have checked, or have the database's own rights."""
    return db.scalar(
        select(Checkpoint.version)
        .where(Checkpoint.model_id == model_id)
        .order_by(Checkpoint.final.desc(), Checkpoint.version.desc())
        .limit(1)
    )


def checkpoint_blob(db: DbSession, model_id: int, version: int) -> tuple[dict, bytes, int]:
    row = db.execute(
        select(Checkpoint.meta, Checkpoint.weights, Checkpoint.env_steps).where(
            Checkpoint.model_id == model_id, Checkpoint.version == version
        )
    ).one()
    return row.meta, row.weights, row.env_steps
