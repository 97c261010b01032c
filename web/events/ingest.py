"""Writing events into the database: the event-log consumer's one transaction per batch.

Idempotent by construction, so at-least-once delivery has an exactly-once effect:
- an episode is known by (worker, incarnation, seq); one already stored is skipped;
- other events carry an `event_id`, stored with a unique key per run;
- checkpoints are unique per (run, version).
Episodes are numbered 1..N in arrival order under a lock on the model row, and the
model's `current_episode` moves in the same transaction, so episode numbers have no
gaps and `current_episode` always equals the number of stored episodes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session as DbSession

from schemas.messages import (
    CheckpointSaved,
    EpisodeFinished,
    EpisodesFinished,
    EvaluationFinished,
    Heartbeat,
    MetricsReported,
    RunEvent,
    StatusChanged,
    expand_episodes,
)
from web.db.tables import (
    Checkpoint,
    Evaluation,
    Metric,
    Model,
    StatusChange,
    TrainingData,
    utcnow,
)
from web.db.tables import Heartbeat as HeartbeatRow

SMOOTHING = 0.95  # weight of the previous smoothed reward, as RUNT computed it
TERMINAL = frozenset({"completed", "stopped", "failed"})


def next_status(current: str, reported: str) -> str:
    """A run's status after an actor reports `reported`. An ended run stays ended (late or
    redelivered reports change nothing), and a stop in progress is not undone by a late
    `running`."""
    if current in TERMINAL:
        return current
    if current == "stopping" and reported in ("running", "queued"):
        return current
    return reported


def apply_events(db: DbSession, events: Sequence[RunEvent]) -> Counter:
    """Store a batch of events of any runs; returns counts of what was done."""
    counts: Counter = Counter()
    by_run: dict[int, list[RunEvent]] = defaultdict(list)
    for event in events:
        by_run[event.run_id].append(event)
    for run_id in sorted(by_run):  # a fixed lock order keeps concurrent consumers deadlock-free
        model = db.scalar(select(Model).where(Model.id == run_id).with_for_update())
        if model is None:
            counts["unknown_run"] += len(expand_episodes(by_run[run_id]))
            continue
        _apply_run(db, model, by_run[run_id], counts)
    return counts


def _apply_run(db: DbSession, model: Model, events: list[RunEvent], counts: Counter) -> None:
    episodes = [e for e in events if isinstance(e, EpisodeFinished | EpisodesFinished)]
    _store_episodes(db, model, episodes, counts)
    _store_by_event_id(db, model, [e for e in events if isinstance(e, MetricsReported)], counts)
    _store_by_event_id(db, model, [e for e in events if isinstance(e, EvaluationFinished)], counts)
    _store_by_event_id(db, model, [e for e in events if isinstance(e, StatusChanged)], counts)
    _store_checkpoints(db, model, [e for e in events if isinstance(e, CheckpointSaved)], counts)
    _store_heartbeats(db, model, [e for e in events if isinstance(e, Heartbeat)], counts)


def _episode_records(events: list) -> list[tuple[int, int, int, float, int]]:
    """(worker, incarnation, seq, reward, length) of each episode, batches unpacked
    without making an event object per episode."""
    records = []
    for event in events:
        if isinstance(event, EpisodesFinished):
            w, i = event.worker, event.incarnation
            rows = event.records()
            records.extend((w, i, seq, reward, length) for seq, reward, length, _, _ in rows)
        else:
            records.append((event.worker, event.incarnation, event.seq, event.reward, event.length))
    return records


def _stored_origins(db: DbSession, model_id: int, records: list) -> set[tuple[int, int, int]]:
    """Which (worker, incarnation, seq) of `records` are stored already: one index range
    per worker incarnation rather than one key per episode."""
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    for worker, incarnation, seq, _, _ in records:
        low, high = ranges.get((worker, incarnation), (seq, seq))
        ranges[(worker, incarnation)] = (min(low, seq), max(high, seq))
    within = or_(
        *(
            and_(
                TrainingData.worker == worker,
                TrainingData.worker_incarnation == incarnation,
                TrainingData.worker_seq.between(low, high),
            )
            for (worker, incarnation), (low, high) in ranges.items()
        )
    )
    origin = (TrainingData.worker, TrainingData.worker_incarnation, TrainingData.worker_seq)
    found = db.execute(select(*origin).where(TrainingData.model_id == model_id, within))
    return {tuple(row) for row in found}


_EPISODE_COLUMNS = (
    "model_id", "episode", "reward", "smoothed_reward", "length",
    "worker", "worker_incarnation", "worker_seq", "create_time",
)  # fmt: skip


def _insert_episodes(db: DbSession, rows: list[tuple]) -> None:
    """Rows as positional parameters straight to the driver, which sends them as one
    multi-row INSERT: per-row work in the ORM and the SQL compiler costs more than the
    database's own time (bench/ingest_throughput.py)."""
    conn = db.connection()
    dialect = conn.dialect
    if not dialect.positional:  # pymysql takes `%s` markers and tuples too
        dialect = type(dialect)(paramstyle="format")
    compiled = insert(TrainingData.__table__).compile(
        dialect=dialect, column_keys=list(_EPISODE_COLUMNS)
    )
    if tuple(compiled.positiontup or ()) != _EPISODE_COLUMNS:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    conn.exec_driver_sql(str(compiled), rows)


def _store_episodes(db: DbSession, model: Model, events: list, counts: Counter) -> None:
    records = _episode_records(events)
    if not records:
        return
    stored = _stored_origins(db, model.id, records)
    smoothed = db.scalar(
        select(TrainingData.smoothed_reward).where(
            TrainingData.model_id == model.id, TrainingData.episode == model.current_episode
        )
    )
    # The batch's one time, as the literal the driver sends (quoting a datetime per row
    # costs the driver more than the rest of the row).
    as_bound = TrainingData.__table__.c.create_time.type.bind_processor(db.bind.dialect)
    now = as_bound(utcnow()) if as_bound else utcnow().isoformat(" ", "microseconds")
    rows, episode, target = [], model.current_episode, model.target_episode
    for worker, incarnation, seq, reward, length in records:
        key = (worker, incarnation, seq)
        if key in stored:
            counts["episode_duplicate"] += 1
            continue
        if episode >= target:
            counts["episode_beyond_target"] += 1
            continue
        stored.add(key)
        episode += 1
        smoothed = reward if smoothed is None else SMOOTHING * smoothed + (1 - SMOOTHING) * reward
        rows.append((model.id, episode, reward, smoothed, length, worker, incarnation, seq, now))
    if rows:
        _insert_episodes(db, rows)
        model.current_episode = episode
        counts["episode"] += len(rows)


_TABLE_OF = {
    MetricsReported: Metric,
    EvaluationFinished: Evaluation,
    StatusChanged: StatusChange,
}


def _new_events(db: DbSession, table, model_id: int, events: Iterable[RunEvent]) -> list:
    events = list(events)
    ids = {e.event_id for e in events}
    seen = set(
        db.scalars(
            select(table.event_id).where(table.model_id == model_id, table.event_id.in_(ids))
        )
    )
    fresh = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    return fresh


def _store_by_event_id(db: DbSession, model: Model, events: list, counts: Counter) -> None:
    if not events:
        return
    table = _TABLE_OF[type(events[0])]
    fresh = _new_events(db, table, model.id, events)
    counts[f"{events[0].type}_duplicate"] += len(events) - len(fresh)
    for event in fresh:
        counts[event.type] += 1
        if isinstance(event, MetricsReported):
            db.add(
                Metric(
                    model_id=model.id,
                    event_id=event.event_id,
                    env_steps=event.env_steps,
                    values=dict(event.values),
                )
            )
        elif isinstance(event, EvaluationFinished):
            db.add(
                Evaluation(
                    model_id=model.id,
                    event_id=event.event_id,
                    env_steps=event.env_steps,
                    mean_return=event.mean_return,
                    std_return=event.std_return,
                    episodes=event.episodes,
                )
            )
        else:
            _record_status(db, model, event)


def _record_status(db: DbSession, model: Model, event: StatusChanged) -> None:
    db.add(
        StatusChange(
            model_id=model.id,
            event_id=event.event_id,
            status=event.status,
            reason=event.reason,
            actor=event.actor,
        )
    )
    status = next_status(model.status, event.status)
    if status != model.status:
        model.status = status
        model.status_reason = event.reason


def _store_checkpoints(
    db: DbSession, model: Model, checkpoints: list[CheckpointSaved], counts: Counter
) -> None:
    if not checkpoints:
        return
    versions = {c.version for c in checkpoints}
    stored = set(
        db.scalars(
            select(Checkpoint.version).where(
                Checkpoint.model_id == model.id, Checkpoint.version.in_(versions)
            )
        )
    )
    for event in checkpoints:
        if event.version in stored:
            counts["checkpoint_duplicate"] += 1
            continue
        stored.add(event.version)
        db.add(
            Checkpoint(
                model_id=model.id,
                version=event.version,
                env_steps=event.env_steps,
                episode=event.episode,
                weights=event.weights,
                meta={**event.meta, "final": event.final},
                final=event.final,
            )
        )
        counts["checkpoint"] += 1


def _store_heartbeats(db: DbSession, model: Model, beats: list[Heartbeat], counts: Counter) -> None:
    """Remember when each agent last vouched for the run (web/events/supervise.py reads it).
    The model row is locked, so the read-then-write cannot race another consumer."""
    if not beats:
        return
    rows = {
        row.agent: row
        for row in db.scalars(
            select(HeartbeatRow).where(
                HeartbeatRow.model_id == model.id,
                HeartbeatRow.agent.in_({beat.actor for beat in beats}),
            )
        )
    }
    now = utcnow()
    for beat in beats:
        row = rows.get(beat.actor)
        if row is None:
            row = rows[beat.actor] = HeartbeatRow(model_id=model.id, agent=beat.actor)
            db.add(row)
        row.host, row.pid, row.last_seen = beat.host[:255], beat.pid, now
    counts["heartbeat"] += len(beats)
