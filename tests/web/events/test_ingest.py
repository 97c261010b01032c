"""The event log's database side: numbering, smoothing, idempotency, status rules.
Runs on SQLite and on MariaDB."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from schemas.api import TrainRequest
from schemas.messages import (
    CheckpointSaved,
    EpisodeFinished,
    EvaluationFinished,
    MetricsReported,
    StatusChanged,
)
from web.db import store
from web.db.tables import Checkpoint, Evaluation, Metric, Model, StatusChange, TrainingData
from web.events.ingest import SMOOTHING, apply_events, next_status


@pytest.fixture
def run_id(database, make_user) -> int:
    owner = make_user("owner")
    req = TrainRequest(algorithm="dqn", target_episode=10)
    return database.call(lambda s: store.create_model(s, owner, req, seed=1).id)


def episode(run_id: int, worker: int, seq: int, reward: float, incarnation: int = 0):
    return EpisodeFinished(
        run_id=run_id, worker=worker, incarnation=incarnation, seq=seq, reward=reward, length=7
    )


def rows(database, run_id: int) -> list[TrainingData]:
    return database.call(
        lambda s: list(
            s.scalars(
                select(TrainingData)
                .where(TrainingData.model_id == run_id)
                .order_by(TrainingData.episode)
            )
        )
    )


def model(database, run_id: int) -> Model:
    return database.call(lambda s: s.get(Model, run_id))


def test_episodes_are_numbered_in_arrival_order_with_a_smoothed_reward(database, run_id):
    batch = [episode(run_id, 0, 0, 10.0), episode(run_id, 1, 0, 30.0), episode(run_id, 0, 1, 20.0)]
    counts = database.call(apply_events, batch)
    assert counts["episode"] == 3
    stored = rows(database, run_id)
    assert [r.episode for r in stored] == [1, 2, 3]
    assert [(r.worker, r.worker_seq, r.reward) for r in stored] == [
        (0, 0, 10.0),
        (1, 0, 30.0),
        (0, 1, 20.0),
    ]
    expected = 10.0
    assert stored[0].smoothed_reward == expected  # the first episode starts the average
    expected = SMOOTHING * expected + (1 - SMOOTHING) * 30.0
    assert stored[1].smoothed_reward == pytest.approx(expected)
    expected = SMOOTHING * expected + (1 - SMOOTHING) * 20.0
    assert stored[2].smoothed_reward == pytest.approx(expected)
    assert model(database, run_id).current_episode == 3
    # The next batch continues numbering and smoothing from the stored state.
    database.call(apply_events, [episode(run_id, 1, 1, 40.0)])
    last = rows(database, run_id)[-1]
    assert last.episode == 4
    assert last.smoothed_reward == pytest.approx(SMOOTHING * expected + (1 - SMOOTHING) * 40.0)


def test_redelivered_events_are_stored_once(database, run_id):
    batch = [
        episode(run_id, 0, 0, 1.0),
        episode(run_id, 0, 1, 2.0),
        MetricsReported(run_id=run_id, env_steps=10, values={"losses/td_loss": 0.5}),
        EvaluationFinished(
            run_id=run_id, env_steps=10, mean_return=9.0, std_return=1.0, episodes=10
        ),
        StatusChanged(run_id=run_id, status="running", actor="trainer"),
        CheckpointSaved(run_id=run_id, version=1, env_steps=10, episode=2, weights=b"w1"),
    ]
    database.call(apply_events, batch)
    counts = database.call(apply_events, [*batch, episode(run_id, 0, 1, 2.0)])
    assert counts["episode"] == 0 and counts["episode_duplicate"] == 3
    assert counts["checkpoint_duplicate"] == 1 and counts["metrics_duplicate"] == 1
    assert [r.episode for r in rows(database, run_id)] == [1, 2]
    assert model(database, run_id).current_episode == 2

    def count(table):
        return database.call(
            lambda s: len(s.scalars(select(table).where(table.model_id == run_id)).all())
        )

    assert [count(t) for t in (Metric, Evaluation, StatusChange, Checkpoint)] == [1, 1, 1, 1]


def test_a_restarted_worker_starts_a_new_sequence(database, run_id):
    database.call(apply_events, [episode(run_id, 0, 0, 1.0), episode(run_id, 0, 1, 1.0)])
    database.call(apply_events, [episode(run_id, 0, 0, 5.0, incarnation=1)])
    assert [(r.worker_incarnation, r.worker_seq) for r in rows(database, run_id)] == [
        (0, 0),
        (0, 1),
        (1, 0),
    ]


def test_episodes_beyond_the_target_are_not_stored(database, run_id):
    batch = [episode(run_id, 0, seq, float(seq)) for seq in range(13)]
    counts = database.call(apply_events, batch)
    assert (counts["episode"], counts["episode_beyond_target"]) == (10, 3)
    assert model(database, run_id).current_episode == 10


def test_status_reports_move_the_run_and_keep_a_history(database, run_id):
    database.call(apply_events, [StatusChanged(run_id=run_id, status="running", actor="agent")])
    assert model(database, run_id).status == "running"
    database.call(
        apply_events,
        [StatusChanged(run_id=run_id, status="completed", reason="target reached", actor="t")],
    )
    database.call(apply_events, [StatusChanged(run_id=run_id, status="running", actor="late")])
    run = model(database, run_id)
    assert (run.status, run.status_reason) == ("completed", "target reached")
    history = database.call(
        lambda s: [
            h.status
            for h in s.scalars(
                select(StatusChange)
                .where(StatusChange.model_id == run_id)
                .order_by(StatusChange.id)
            )
        ]
    )
    assert history == ["running", "completed", "running"]


@pytest.mark.parametrize(
    ("current", "reported", "after"),
    [
        ("queued", "running", "running"),
        ("running", "failed", "failed"),
        ("stopping", "running", "stopping"),
        ("stopping", "stopped", "stopped"),
        ("stopped", "running", "stopped"),
        ("failed", "completed", "failed"),
    ],
)
def test_status_rules(current, reported, after):
    assert next_status(current, reported) == after


def test_events_of_an_unknown_run_are_counted_not_stored(database):
    counts = database.call(apply_events, [episode(999_999, 0, 0, 1.0)])
    assert counts["unknown_run"] == 1


def test_large_checkpoints_fit(database, run_id):
    weights = os.urandom(3 * 1024 * 1024)  # far beyond a 64 KiB BLOB
    database.call(
        apply_events,
        [CheckpointSaved(run_id=run_id, version=7, env_steps=1, episode=1, weights=weights)],
    )
    stored = database.call(
        lambda s: s.scalar(select(Checkpoint.weights).where(Checkpoint.model_id == run_id))
    )
    assert stored == weights


def test_a_runs_final_checkpoint_is_its_newest_whatever_its_version(database, run_id):
    """A run that reaches stop_reward ends with the state that was evaluated; a periodic
    checkpoint of a later state can be stored while that evaluation is played. Inference,
    export and resume take the final one."""

    def saved(version: int, final: bool = False) -> CheckpointSaved:
        return CheckpointSaved(
            run_id=run_id, version=version, env_steps=version, episode=1, final=final,
            weights=b"w",
        )  # fmt: skip

    owner = model(database, run_id).owner_id
    database.call(apply_events, [saved(100), saved(300)])
    assert database.call(store.newest_checkpoint_version, run_id) == 300
    database.call(apply_events, [saved(200, final=True)])
    assert database.call(store.newest_checkpoint_version, run_id) == 200
    assert database.call(store.find_checkpoint, owner, run_id).version == 200
    assert database.call(store.find_checkpoint, owner, run_id, 300).version == 300
    assert database.call(store.find_checkpoint, owner, run_id, 250).version is None


def test_a_batch_of_episodes_is_stored_as_its_episodes_once(database, run_id):
    from schemas.messages import EpisodesFinished, decode_message

    batch = EpisodesFinished(
        run_id=run_id,
        worker=1,
        first_seq=0,
        rewards=[0.0, 1.0, 2.0],
        lengths=[1, 2, 3],
        env_steps=[10, 20, 30],
        policy_versions=[0, 0, 1],
    )
    assert decode_message(batch.encode()) == batch
    database.call(apply_events, [episode(run_id, 0, 0, 9.0), batch])
    counts = database.call(apply_events, [batch])  # redelivered
    assert counts["episode"] == 0 and counts["episode_duplicate"] == 3
    stored = rows(database, run_id)
    assert [(r.episode, r.worker, r.worker_seq) for r in stored] == [
        (1, 0, 0),
        (2, 1, 0),
        (3, 1, 1),
        (4, 1, 2),
    ]
