"""`runt db upgrade` builds the schema the models describe, on MariaDB and on SQLite."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from schemas.config import DatabaseConfig
from tests.conftest import drop_mysql_database, mysql_database_url
from web.db.migrate import upgrade
from web.db.tables import Base


def schema_drift(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        drift = compare_metadata(context, Base.metadata)
    engine.dispose()
    return drift


def test_upgrade_on_sqlite_matches_the_models_and_is_repeatable(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'runt.sqlite3'}"  # folder does not exist yet
    assert upgrade(DatabaseConfig(url=url)) == "0007"
    assert schema_drift(url) == []
    assert upgrade(DatabaseConfig(url=url)) == "0007"  # a second run changes nothing


@pytest.mark.mysql
def test_upgrade_on_mariadb_creates_a_utf8mb4_database(mysql_server):
    name = f"runt_mig_{uuid.uuid4().hex[:10]}"
    url = mysql_database_url(mysql_server, name)
    try:
        assert upgrade(DatabaseConfig(url=url)) == "0007"  # creates the database itself
        assert schema_drift(url) == []
        engine = create_engine(url)
        with engine.connect() as conn:
            charsets = conn.execute(
                text(
                    "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db"
                ),
                {"db": name},
            ).all()
            blob = conn.execute(
                text(
                    "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db "
                    "AND TABLE_NAME = 'checkpoints' AND COLUMN_NAME = 'weights'"
                ),
                {"db": name},
            ).scalar()
            conn.execute(text("INSERT INTO users (username, password_hash, create_time) "
                              "VALUES ('学习者 🤖', 'x', NOW(6))"))  # fmt: skip
            stored = conn.execute(text("SELECT username FROM users")).scalar()
        engine.dispose()
        assert {t for t, _ in charsets} >= {"users", "models", "training_data", "checkpoints"}
        assert all(c.startswith("utf8mb4") for t, c in charsets if t != "alembic_version")
        assert blob == "longblob"
        assert stored == "学习者 🤖"
        assert upgrade(DatabaseConfig(url=url)) == "0007"
    finally:
        drop_mysql_database(mysql_server, name)


def test_upgrading_from_0001_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(DatabaseConfig(url=url), revision="0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users VALUES (1, 'old', 'x', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO models (id, owner_id, algorithm, env_id, env_params, hyperparameters,"
                " learning_rate, batch_size, buffer_size, gamma, seed, num_workers,"
                " target_episode, current_episode, status, create_time, update_time) VALUES"
                " (1, 1, 'dqn', 'CartPole-v1', '{}', '{}', 0.001, 64, 1000, 0.99, 1, 1, 10, 1,"
                " 'running', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO training_data (model_id, episode, reward, smoothed_reward, length,"
                " worker, worker_seq, create_time) VALUES (1, 1, 9.5, 9.5, 10, 0, 0,"
                " CURRENT_TIMESTAMP)"
            )
        )
        for version, meta in ((5, '{"final": true}'), (9, '{"final": false}'), (7, "{}")):
            conn.execute(
                text(
                    "INSERT INTO checkpoints (model_id, version, env_steps, episode, weights,"
                    " meta, create_time) VALUES (1, :version, 1, 1, x'00', :meta,"
                    " CURRENT_TIMESTAMP)"
                ),
                {"version": version, "meta": meta},
            )
    assert upgrade(DatabaseConfig(url=url)) == "0007"
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT episode, reward, worker_incarnation FROM training_data")
        ).one()
        finals = conn.execute(text("SELECT version, final FROM checkpoints ORDER BY version"))
        finals = [tuple(r) for r in finals]
    engine.dispose()
    assert tuple(row) == (1, 9.5, 0)
    assert finals == [(5, 1), (7, 0), (9, 0)]  # from the metadata the checkpoints carried
    assert schema_drift(url) == []
