"""Database engine and the rule that keeps the event loop free.

SQLAlchemy with pymysql is synchronous, so the web service's transactions go through
`Database.run(fn, *args)`, which runs `fn(session, *args)` on a thread pool sized to the
connection pool. The busiest calls, single-statement reads (`Database.read`), run on the
event loop itself on MySQL: the same Core statements through SQLAlchemy's asyncio
engine and asyncmy, which spares each request two thread hand-overs and pymysql's
pure-Python parsing of the rows (bench/api_load.py measures it). Either way the event loop
never waits on a socket to MySQL. See docs/architecture.md (the web service's side).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Engine, create_engine, event, exc, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from schemas.config import DatabaseConfig

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

# A pooled read connection idle longer than this is pinged before use; one in steady use
# is not (a ping is a round trip, as dear as the query itself on a busy server).
READ_PING_IDLE_SECONDS = 1.0


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


def _read_engine_args(cfg: DatabaseConfig, driver: str | None = None) -> tuple[URL, dict]:
    """URL and options of an engine for single-statement reads: autocommit, so a read is
    one round trip to the server instead of four (pre-ping, query, COMMIT, the pool's
    ROLLBACK). `driver` replaces the URL's (the asyncio engine's asyncmy)."""
    url = make_url(cfg.url)
    if driver is not None:
        url = url.set(drivername=f"{url.get_backend_name()}+{driver}")
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    options = {
        "pool_size": cfg.pool_size,
        "max_overflow": cfg.max_overflow,
        "pool_recycle": cfg.pool_recycle,
        "pool_timeout": cfg.pool_timeout,
        "isolation_level": "AUTOCOMMIT",
        "skip_autocommit_rollback": True,
    }
    return url, options


def make_read_engine(cfg: DatabaseConfig) -> Engine:
    """The read engine for the thread pool (pymysql)."""
    url, options = _read_engine_args(cfg)
    engine = create_engine(url, **options)
    _ping_when_idle(engine, READ_PING_IDLE_SECONDS)
    return engine


def make_async_read_engine(cfg: DatabaseConfig) -> AsyncEngine:
    """The same read engine on asyncmy, for reads on the event loop."""
    from sqlalchemy.ext.asyncio import create_async_engine  # needs greenlet: MySQL only

    url, options = _read_engine_args(cfg, driver="asyncmy")
    engine = create_async_engine(url, **options)
    _ping_when_idle(engine.sync_engine, READ_PING_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool: a failed
    ping makes the pool replace the connection and try again (SQLAlchemy's
    `DisconnectionError` protocol)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            raise exc.DisconnectionError(str(error)) from error


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
        self.cfg = cfg
        self.engine = make_engine(cfg)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite keeps one engine; on MySQL reads get an autocommit engine of their own.
        self.read_engine = (
            self.engine if self.engine.dialect.name == "sqlite" else make_read_engine(cfg)
        )
        self.async_reads = cfg.async_reads and self.engine.dialect.name != "sqlite"
        self._async_read: AsyncEngine | None = None  # made on the first read
        # As many threads as pooled connections: with more, calls beyond the pool open an
        # overflow connection each (TCP, login, TLS setup) and close it again, which
        # under load costs more than the queries (bench/api_load.py). The overflow stays
        # for other users of the engine (migrations, the command line).
        workers = 4 if self.engine.dialect.name == "sqlite" else cfg.pool_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runt-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args, **kwargs)` in a transaction on the DB thread pool."""
        call = functools.partial(self._in_session, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(connection, *args, **kwargs)`, which only reads, on the DB thread pool.

        A Core connection, not an ORM session: the ORM's execution layer costs more than
        a short query. On MySQL each statement sees the data committed when it starts
        (autocommit), so `fn` should ask what must agree in one statement. A connection
        found dead is replaced and the read tried once more.
        """
        if self.async_reads:
            return await self._read_on_loop(fn, *args, **kwargs)
        call = functools.partial(self._read, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            with self.read_engine.connect() as connection:
                return fn(connection, *args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        with self.read_engine.connect() as connection:  # a fresh one from the pool
            return fn(connection, *args, **kwargs)

    async def _read_on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._async_read is None:
            self._async_read = make_async_read_engine(self.cfg)
        try:
            async with self._async_read.connect() as connection:
                return await connection.run_sync(fn, *args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        async with self._async_read.connect() as connection:  # a fresh one from the pool
            return await connection.run_sync(fn, *args, **kwargs)

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

    async def aclose(self) -> None:
        """`close`, and the pool of the reads on the event loop (which closes on it)."""
        if self._async_read is not None:
            await self._async_read.dispose()
            self._async_read = None
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
