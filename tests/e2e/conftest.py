"""Fixtures of the end-to-end runs over RabbitMQ and MariaDB: a broker prefix and a
migrated database of the test's own, agent processes on them, and the web service in
this process, logged in as a user of that database."""

from __future__ import annotations

import uuid

import pytest

from broker.topology import Topology
from schemas.config import DatabaseConfig
from tests.conftest import Api, drop_mysql_database, login, make_config, mysql_database_url
from tests.services import Agents, add_user, delete_topology
from web.app import init_app
from web.db.migrate import upgrade


@pytest.fixture
def prefix(amqp_url) -> str:
    name = f"e2e{uuid.uuid4().hex[:8]}"
    yield name
    delete_topology(amqp_url, Topology(name))


@pytest.fixture
def mysql_url(mysql_server) -> str:
    """A migrated MariaDB database of this test's own."""
    name = f"runt_e2e_{uuid.uuid4().hex[:10]}"
    url = mysql_database_url(mysql_server, name)
    upgrade(DatabaseConfig(url=url))
    yield url
    drop_mysql_database(mysql_server, name)


@pytest.fixture
def agents(amqp_url, prefix, mysql_url):
    group = Agents(amqp_url, prefix, mysql_url)
    yield group
    group.stop_all()


@pytest.fixture
async def api(mysql_url, amqp_url, prefix, aiohttp_client) -> Api:
    # aiohttp_client comes last so it is torn down first: the app (and its event log,
    # which may still be writing a batch) closes before the database and queues go.
    cfg = make_config(mysql_url, broker={"url": amqp_url, "prefix": prefix})
    add_user(mysql_url, "trainer")
    client = await aiohttp_client(init_app(cfg))
    return Api(client, await login(client, "trainer"))
