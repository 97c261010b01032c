"""The web service's watch over runs (web/events/supervise.py) and the heartbeats it reads.
Runs on SQLite and on MariaDB; the end-to-end faults are in tests/e2e/test_faults.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from schemas.api import TrainRequest
from schemas.messages import Heartbeat, StatusChanged
from web.db import store
from web.db.tables import Heartbeat as HeartbeatRow
from web.db.tables import Model, StatusChange, utcnow
from web.events.ingest import apply_events
from web.events.supervise import fail_silent_runs, stale_queued_runs


@pytest.fixture
def owner(make_user) -> int:
    return make_user("owner")


def new_run(database, owner: int) -> int:
    req = TrainRequest(algorithm="dqn", target_episode=10)
    return database.call(lambda s: store.create_model(s, owner, req, seed=1).id)


def beat(run_id: int, agent: str) -> Heartbeat:
    return Heartbeat(run_id=run_id, actor=agent, host="box", pid=42)


def running(database, run_id: int) -> None:
    status = StatusChanged(run_id=run_id, status="running", reason="started", actor="a")
    database.call(apply_events, [status])


def age(database, run_id: int, seconds: float) -> None:
    """Make every heartbeat and status change of the run `seconds` old."""
    then = utcnow() - timedelta(seconds=seconds)

    def _age(s) -> None:
        s.execute(
            update(HeartbeatRow).where(HeartbeatRow.model_id == run_id).values(last_seen=then)
        )
        s.execute(
            update(StatusChange).where(StatusChange.model_id == run_id).values(create_time=then)
        )

    database.call(_age)


def test_heartbeats_keep_the_newest_per_run_and_agent(database, owner):
    run_id = new_run(database, owner)
    counts = database.call(apply_events, [beat(run_id, "a"), beat(run_id, "b"), beat(run_id, "a")])
    assert counts["heartbeat"] == 3
    age(database, run_id, 30)
    database.call(apply_events, [beat(run_id, "a")])
    seen = database.call(
        lambda s: {
            r.agent: r.last_seen
            for r in s.scalars(select(HeartbeatRow).where(HeartbeatRow.model_id == run_id))
        }
    )
    assert set(seen) == {"a", "b"}
    assert seen["a"] > seen["b"] + timedelta(seconds=20)


def test_a_run_whose_agent_went_silent_is_failed_with_its_name(database, owner):
    silent, alive, idle = (new_run(database, owner) for _ in range(3))
    for run_id in (silent, alive, idle):
        running(database, run_id)
        database.call(apply_events, [beat(run_id, "left"), beat(run_id, "right")])
        age(database, run_id, 30)
    database.call(apply_events, [beat(silent, "right"), beat(alive, "left"), beat(alive, "right")])
    database.call(lambda s: store.set_status(s, s.get(Model, idle), "stopped", "by the user"))

    failed = database.call(fail_silent_runs, 15)
    assert [run_id for run_id, _ in failed] == [silent]
    detail = database.call(store.model_detail, owner, silent)
    assert detail["status"] == "failed"
    assert detail["status_reason"] == "agent left stopped sending heartbeats for 30 s"
    assert detail["status_history"][-1]["actor"] == "web"
    assert database.call(store.model_detail, owner, alive)["status"] == "running"
    assert database.call(store.model_detail, owner, idle)["status"] == "stopped"
    assert database.call(fail_silent_runs, 15) == []  # judged once


def test_a_running_run_no_agent_ever_vouched_for_is_failed_too(database, owner):
    run_id = new_run(database, owner)
    running(database, run_id)
    assert database.call(fail_silent_runs, 15) == []
    age(database, run_id, 20)
    ((failed, reason),) = database.call(fail_silent_runs, 15)
    assert failed == run_id and "no agent has sent heartbeats" in reason


def test_only_runs_queued_for_long_are_started_again(database, owner):
    old, _fresh, started = (new_run(database, owner) for _ in range(3))
    then = utcnow() - timedelta(seconds=120)
    database.call(
        lambda s: s.execute(
            update(Model).where(Model.id.in_([old, started])).values(create_time=then)
        )
    )
    running(database, started)
    specs = database.call(stale_queued_runs, 60)
    assert [spec.run_id for spec in specs] == [old]
    assert specs[0].target_episode == 10 and specs[0].seed == 1


def test_the_web_services_own_status_changes_are_in_the_history(database, owner):
    run_id = new_run(database, owner)
    running(database, run_id)
    assert database.call(store.request_stop, owner, run_id) == ("stopping", True)
    history = database.call(store.model_detail, owner, run_id)["status_history"]
    assert [(h["status"], h["actor"]) for h in history] == [("running", "a"), ("stopping", "web")]
    assert history[0]["create_time"] <= history[1]["create_time"]
