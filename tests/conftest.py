"""Shared fixtures.

Tests that need the real MariaDB or RabbitMQ skip with a reason when those are not
reachable; with RUNT_REQUIRE_SERVICES=1 (set by .ci/run) such a skip is a failure.
The API suite runs once on SQLite and once on MariaDB: each backend gets a database
of its own, migrated once per session and emptied after every test.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, delete, make_url, text

from schemas.config import Config, DatabaseConfig, load_config
from web.app import init_app
from web.auth import hash_password
from web.db import store
from web.db.engine import Database
from web.db.migrate import upgrade
from web.db.tables import Base

# The server to test against; its database part names an existing database, and tests
# create databases of their own beside it.
MYSQL_URL = os.environ.get("RUNT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
AMQP_URL = os.environ.get("RUNT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REQUIRE_SERVICES = os.environ.get("RUNT_REQUIRE_SERVICES") == "1"
SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "correct horse battery"


def service_missing(reason: str) -> None:
    """Skip, or fail where the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def reachable(url: str) -> bool:
    parts = urlsplit(url.replace("mysql+pymysql", "mysql"))
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mysql_server() -> str:
    if not reachable(MYSQL_URL):
        service_missing(f"MariaDB/MySQL not reachable at {MYSQL_URL}")
    return MYSQL_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not reachable(AMQP_URL):
        service_missing(f"RabbitMQ not reachable at {AMQP_URL}")
    return AMQP_URL


def mysql_database_url(server: str, name: str) -> str:
    return str(make_url(server).set(database=name, query={"charset": "utf8mb4"}))


def drop_mysql_database(server: str, name: str) -> None:
    engine = create_engine(server)
    with engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()


@pytest.fixture(scope="session")
def _migrated(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Backend name -> URL of a migrated database, created lazily per backend."""
    urls: dict[str, str] = {}
    yield urls
    for backend, url in urls.items():
        if backend == "mysql":
            drop_mysql_database(MYSQL_URL, make_url(url).database)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request: pytest.FixtureRequest, _migrated, tmp_path_factory) -> Iterator[str]:
    backend = request.param
    if backend not in _migrated:
        if backend == "mysql":
            server = request.getfixturevalue("mysql_server")
            url = mysql_database_url(server, f"runt_test_{uuid.uuid4().hex[:12]}")
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runt.sqlite3'}"
        upgrade(DatabaseConfig(url=url))
        _migrated[backend] = url
    url = _migrated[backend]
    yield url
    _empty_tables(url)


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    engine.dispose()


def make_config(db_url: str, **overrides) -> Config:
    base = {
        "secret_key": SECRET,
        "database": {"url": db_url},
        "broker": {"url": "memory://"},
        "log_format": "text",
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return load_config(environ={}, overrides=base)


@pytest.fixture
def config(db_url: str) -> Config:
    return make_config(db_url, auth={"login_max_failures": 3, "login_window_seconds": 60})


@pytest.fixture
def database(config: Config) -> Iterator[Database]:
    db = Database(config.database)
    yield db
    db.close()


@functools.cache
def cached_hash(password: str) -> str:
    """argon2id is slow by design; hash each test password once per session."""
    return hash_password(password)


@pytest.fixture
def make_user(database: Database):
    def _make(username: str, password: str = PASSWORD) -> int:
        return database.call(store.add_user, username, cached_hash(password))

    return _make


@pytest.fixture
async def client(config: Config, aiohttp_client):
    return await aiohttp_client(init_app(config))


class Api:
    """A logged-in test client: `await api.get(path)` returns (status, body)."""

    def __init__(self, client, token: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str, **kwargs) -> tuple[int, dict]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs) -> tuple[int, dict]:
        return await self.call("POST", path, **kwargs)


async def login(client, username: str, password: str = PASSWORD) -> str:
    async with client.post("/login/", json={"username": username, "password": password}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body["data"]["token"]


@pytest.fixture
async def alice(client, make_user) -> Api:
    make_user("alice")
    return Api(client, await login(client, "alice"))


@pytest.fixture
async def bob(client, make_user) -> Api:
    make_user("bob")
    return Api(client, await login(client, "bob"))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
