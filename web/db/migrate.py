"""`runt db upgrade`: create or migrate the schema with Alembic, on MySQL/MariaDB or SQLite."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect

from schemas.config import DatabaseConfig
from web.db.engine import ensure_database_exists, make_engine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: DatabaseConfig, revision: str = "head") -> str:
    """Bring the database to `revision`; return the revision it is at afterwards."""
    ensure_database_exists(db)
    engine = make_engine(db)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(db.url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            from alembic.migration import MigrationContext

            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    log.info("database at revision %s (%d tables)", current, len(tables))
    return current or ""
