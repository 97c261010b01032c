"""Database engine and the rule that keeps the event loop free.

SQLAlchemy with pymysql is synchronous, so every database call of the web service
goes through `Database.run(fn, *args)`, which runs `fn(session, *args)` on a thread
pool sized to the connection pool. The event loop never waits on a socket to MySQL.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from schemas.config import DatabaseConfig

T = TypeVar("T")


def make_engine(cfg: DatabaseConfig) -> Engine:
    url = make_url(cfg.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=cfg.pool_size,
        max_overflow=cfg.max_overflow,
        pool_recycle=cfg.pool_recycle,
        pool_timeout=cfg.pool_timeout,
        isolation_level="READ COMMITTED",
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def ensure_database_exists(cfg: DatabaseConfig) -> None:
    """Create the MySQL database named in the URL if it is missing (utf8mb4)."""
    url = make_url(cfg.url)
    if url.get_backend_name() == "sqlite" or not url.database:
        return
    server = create_engine(url.set(database=""), pool_pre_ping=True)
    name = url.database.replace("`", "``")
    try:
        with server.connect() as conn:
            conn.execute(
                text(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        server.dispose()


class Database:
    """Engine + session factory + the thread pool that runs blocking calls."""

    def __init__(self, cfg: DatabaseConfig):
        self.engine = make_engine(cfg)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # As many threads as pooled connections: with more, calls beyond the pool open an
        # overflow connection each (TCP, login, TLS setup) and close it again, which
        # under load cost more than the queries (bench/api_load.py). The overflow stays
        # for other users of the engine (migrations, the command line).
        workers = 4 if self.engine.dialect.name == "sqlite" else cfg.pool_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runt-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args, **kwargs)` in a transaction on the DB thread pool."""
        call = functools.partial(self._in_session, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _in_session(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.sessions.begin() as session:
            return fn(session, *args, **kwargs)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same transaction wrapper for synchronous callers (CLI, consumer threads)."""
        return self._in_session(fn, *args, **kwargs)

    async def ping(self) -> bool:
        def _ping(session: Session) -> bool:
            session.execute(text("SELECT 1"))
            return True

        try:
            return await self.run(_ping)
        except Exception:
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
