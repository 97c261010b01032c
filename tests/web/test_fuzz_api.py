"""API fuzzing: schemathesis generates requests for every operation of /openapi.json
(valid and invalid bodies, queries and path ids), sends them, authenticated, to the real
app, and checks each answer against the document: never a 5xx, and status code,
content type and body schema as documented.

The app runs on a real port in a thread of its own, with the in-process broker, once on
SQLite and once on MariaDB. RUNT_FUZZ_EXAMPLES sets the examples per operation (25 by
default, for CI; e.g. 500 for a longer run on a workstation).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Iterator

import argon2
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD, make_config
from web import auth
from web.app import init_app
from web.db import store
from web.db.engine import Database
from web.openapi import document

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
EXAMPLES = int(os.environ.get("RUNT_FUZZ_EXAMPLES", "25"))
# The live event stream answers until the client leaves, so a generated request for an
# existing run would never end; its errors are fuzzed by hand below instead.
STREAM = "/models/{model_id}/events"
# What is checked: no 5xx; status code, content type, headers and body as documented;
# and a request that breaks the schema is refused with a 4xx. (Not that every
# schema-valid request succeeds: an env id or an algorithm's setting is judged by making
# the environment, which no schema can express.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document())))
schema = schema.exclude(path=STREAM)


class Served:
    """The app on a free port, on an event loop in a thread of its own."""

    def __init__(self, app: web.Application):
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result(30)
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result(30)
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def login(base_url: str) -> str:
    body = json.dumps({"username": "fuzzer", "password": PASSWORD}).encode()
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        f"{base_url}/login/", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())["data"]["token"]


@pytest.fixture(scope="module")
def served(fuzz_db_url: str) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token) of a served app on a fresh database of its own.

    Passwords are hashed with argon2id at its cheapest here: every generated login runs
    a verification, and the production cost would spend the time budget on hashing."""
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", cheap)
        patch.setattr(auth, "_DUMMY_HASH", cheap.hash("not a password"))
        yield from _serve(fuzz_db_url, cheap.hash(PASSWORD))


def _serve(fuzz_db_url: str, password_hash: str) -> Iterator[tuple[str, str]]:
    config = make_config(
        fuzz_db_url,
        # No login throttling in the way of the fuzzer's own session.
        auth={"login_max_failures": 1_000_000, "login_window_seconds": 1},
    )
    database = Database(config.database)
    database.call(store.add_user, "fuzzer", password_hash)
    database.close()
    server = Served(init_app(config))
    try:
        yield server.url, login(server.url)
    finally:
        server.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def fuzz_db_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    from schemas.config import DatabaseConfig
    from tests.conftest import drop_mysql_database, mysql_database_url
    from web.db.migrate import upgrade

    if request.param == "mysql":
        server = request.getfixturevalue("mysql_server")
        name = f"runt_test_fuzz_{os.getpid()}"
        url = mysql_database_url(server, name)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'runt.sqlite3'}"
    upgrade(DatabaseConfig(url=url))
    yield url
    if request.param == "mysql":
        drop_mysql_database(server, name)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(case, served):
    base_url, token = served
    if case.operation.path == "/logout/":
        token = login(base_url)  # a session of its own to end
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=30,
    )


@pytest.mark.parametrize("raw_id", ["0", "-1", "abc", "99999999999999999999", "424242"])
def test_the_event_stream_refuses_bad_and_unknown_ids(served, raw_id):
    base_url, token = served
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        f"{base_url}/models/{raw_id}/events", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert refused.value.code in (400, 404)
    assert json.loads(refused.value.read())["status"] == "error"
