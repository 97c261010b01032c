"""The web service's protections, each proved on SQLite and MariaDB: ownership of every
model id an endpoint takes, CSRF for cookie sessions, security headers, body limits,
login answers; and, without a database, that no secret reaches a log line and that no
code path unpickles.

(Login throttling itself, the session rules and identical login failures are in
tests/web/test_api_auth.py; this file adds what they do not cover.)
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path

import pytest

from cli.client import Client
from tests.conftest import PASSWORD, Api, login, make_config
from tests.web.helpers import learner_for, store_checkpoint
from web.app import init_app
from web.routes import ROUTES, Route, path_variants

RUN = {"algorithm": "dqn", "target_episode": 50, "env_id": "CartPole-v1", "seed": 3}
MODEL_ID_FIELDS = ("model_id", "resume_from")
MISSING_ID = 987_654
# What else a body needs beside the model id for the request to get past validation.
# (The checkpoint below has one hidden layer of 16, which a resumed run must match.)
BODY_EXTRAS = {"/train/": {**RUN, "hyperparameters": {"hidden": [16]}}, "/testmodel/": {"steps": 1}}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def model_id_inputs(route: Route) -> list[str]:
    """Where a route takes a model id: `path` and/or the names of body fields."""
    found = ["path"] if "{model_id}" in route.path else []
    if route.body is not None:
        found += [name for name in MODEL_ID_FIELDS if name in route.body.model_fields]
    return found


# Every (route, where it takes a model id), from the route table: a new endpoint that
# takes one is covered without anyone remembering to add it here.
ID_TAKING = [
    pytest.param(route, where, id=f"{route.method} {route.path} {where}")
    for route in ROUTES
    for where in model_id_inputs(route)
]


def test_the_id_taking_endpoints_are_found():
    found = {(p.values[0].path, p.values[1]) for p in ID_TAKING}
    assert {
        ("/models/{model_id}/", "path"),
        ("/models/{model_id}/train-data/", "path"),
        ("/models/{model_id}/events", "path"),
        ("/models/{model_id}/checkpoint", "path"),
        ("/models/{model_id}/replay.gif", "path"),
        ("/stop-train/", "model_id"),
        ("/testmodel/", "model_id"),
        ("/trainingassistent/", "model_id"),
        ("/train/", "resume_from"),
    } <= found


async def request_for(api: Api, route: Route, where: str, model_id: int) -> tuple[int, bytes]:
    """(status, body) of `route` asked about `model_id`; streams are cut after the head."""
    path, kwargs = route.path.replace("{model_id}", str(model_id)), {}
    if route.body is not None:
        body = dict(BODY_EXTRAS.get(route.path, {}))
        if where != "path":
            body[where] = model_id
        kwargs["json"] = body
    async with api.client.request(route.method, path, headers=api.headers, **kwargs) as resp:
        streaming = resp.status == 200 and resp.content_type == "text/event-stream"
        return resp.status, b"" if streaming else await resp.read()


@pytest.mark.parametrize(("route", "where"), ID_TAKING)
async def test_another_users_model_is_indistinguishable_from_a_missing_one(
    alice: Api, bob: Api, database, route: Route, where: str
):
    status, body = await bob.post("/train/", json=RUN)
    assert status == 201, body
    bobs = body["id"]
    store_checkpoint(database, bobs, learner_for(), version=1, env_id="CartPole-v1")
    foreign = await request_for(alice, route, where, bobs)
    missing = await request_for(alice, route, where, MISSING_ID)
    assert foreign[0] == 404, foreign
    assert foreign == missing
    # The owner gets through, so the 404 above is the ownership rule and nothing else.
    owner_status, owner_body = await request_for(bob, route, where, bobs)
    assert owner_status < 400, owner_body


# ---- CSRF: cookie sessions need X-Requested-With on unsafe methods --------------------------

COOKIE_UNSAFE = [
    pytest.param(route.method, path, id=f"{route.method} {path}")
    for route in ROUTES
    if route.method in UNSAFE and not route.public
    for path in path_variants(route.path)
]


@pytest.mark.parametrize(("method", "path"), COOKIE_UNSAFE)
async def test_unsafe_requests_on_the_session_cookie_need_the_header(
    client, make_user, method, path
):
    make_user("alice")
    await login(client, "alice")  # the client's cookie jar holds the session now
    resp = await client.request(method, path, json={})
    body = await resp.json()
    assert resp.status == 403, body
    assert body["status"] == "error"
    assert body["message"].startswith("X-Requested-With:")
    assert "Bearer" in body["message"]


async def test_the_cookie_with_the_header_works_and_reads_need_none(client, make_user):
    make_user("alice")
    await login(client, "alice")
    resp = await client.post("/train/", json=RUN, headers={"X-Requested-With": "runt"})
    assert resp.status == 201, await resp.text()
    assert (await client.get("/models/")).status == 200
    resp = await client.post("/logout/", headers={"X-Requested-With": "runt"})
    assert resp.status == 200


async def test_bearer_tokens_need_no_header(client, make_user):
    make_user("alice")
    token = await login(client, "alice")
    client.session.cookie_jar.clear()
    resp = await client.post("/train/", json=RUN, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201


async def test_login_works_from_a_plain_form_even_with_a_cookie(client, make_user):
    make_user("alice")
    await login(client, "alice")  # a session cookie is present
    resp = await client.post("/login/", data={"username": "alice", "password": PASSWORD})
    assert resp.status == 200


async def test_the_command_line_client_works(client, make_user):
    """`runt train` talks to the API with a bearer token and no extra header."""
    make_user("alice")
    api = Client(str(client.make_url("/")))

    def submit() -> dict:
        api.login("alice", PASSWORD)
        return api.call("POST", "/train/", RUN)

    created = await asyncio.to_thread(submit)
    assert created["status"] == "queued"


# ---- headers on every response ------------------------------------------------------------


def assert_security_headers(resp) -> None:
    headers = resp.headers
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


async def test_security_headers_on_answers_and_errors(client, alice: Api):
    client.session.cookie_jar.clear()  # alice's requests carry her bearer token
    cases = [
        ("GET", "/models/", {"headers": alice.headers}, 200),
        ("GET", "/healthz", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/models/", {}, 401),
        ("GET", "/models/12345/", {"headers": alice.headers}, 404),
        ("GET", "/no/such/path", {}, 404),
        ("DELETE", "/models/", {"headers": alice.headers}, 405),
        ("POST", "/login/", {"json": {"username": "x"}}, 400),
    ]
    for method, path, kwargs, status in cases:
        async with client.request(method, path, **kwargs) as resp:
            assert resp.status == status, (method, path)
            assert_security_headers(resp)


async def test_security_headers_on_the_dashboard_and_its_files(client):
    for path in ("/", "/static/favicon.svg", "/static/no-such-file.js"):
        async with client.get(path) as resp:
            assert resp.status in (200, 404), path
            headers = resp.headers
            assert headers["Content-Security-Policy"] == CSP, path
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["Referrer-Policy"] == "no-referrer", path
            assert headers["X-Frame-Options"] == "DENY", path
            assert "Cache-Control" in headers, path  # the files say how (revalidate)


async def test_security_headers_on_streams(client, alice: Api):
    async with client.post(
        "/trainingassistent/",
        json={"algorithm": "dqn", "rewards": [1.0, 2.0]},
        headers=alice.headers,
    ) as resp:
        assert resp.status == 200
        assert_security_headers(resp)
    _, created = await alice.post("/train/", json=RUN)
    async with client.get(f"/models/{created['id']}/events", headers=alice.headers) as resp:
        assert resp.status == 200
        assert_security_headers(resp)


# ---- body size ----------------------------------------------------------------------------


@pytest.fixture
async def small_client(db_url, aiohttp_client):
    config = make_config(db_url, web={"max_body_bytes": 2048})
    return await aiohttp_client(init_app(config))


@pytest.mark.parametrize("as_form", [False, True])
async def test_bodies_over_the_configured_limit_are_413s(small_client, make_user, as_form):
    make_user("alice")
    token = await login(small_client, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    small, big = {**RUN, "name": "x" * 1000}, {**RUN, "name": "x" * 3000}
    send = (
        (lambda b: {"data": {k: str(v) for k, v in b.items()}})
        if as_form
        else (lambda b: {"json": b})
    )
    resp = await small_client.post("/train/", headers=headers, **send(small))
    assert resp.status == 400, await resp.text()  # read and judged: the name is too long
    resp = await small_client.post("/train/", headers=headers, **send(big))
    body = await resp.json()
    assert resp.status == 413
    assert body["status"] == "error" and body["message"].startswith("body: too large")
    assert_security_headers(resp)


async def test_an_unannounced_oversized_body_is_a_413(small_client, make_user):
    """Chunked, without Content-Length: the limit holds while reading."""
    make_user("alice")
    token = await login(small_client, "alice")

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    resp = await small_client.post(
        "/train/",
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["status"] == "error"


# ---- login answers ------------------------------------------------------------------------


async def test_throttled_known_and_unknown_users_get_identical_answers(client, make_user):
    make_user("alice")
    answers = []
    for username in ("alice", "nobody"):
        for _ in range(3):  # the test config allows 3 failures per window
            await client.post("/login/", json={"username": username, "password": "wrong-one"})
        resp = await client.post("/login/", json={"username": username, "password": "wrong-one"})
        answers.append((resp.status, await resp.json()))
    assert answers[0][0] == 429
    assert answers[0] == answers[1]


async def test_the_throttle_ignores_case_and_spaces_in_the_username(client, make_user):
    make_user("alice")
    for name in ("alice", "ALICE", " Alice "):
        await client.post("/login/", json={"username": name, "password": "wrong-one"})
    resp = await client.post("/login/", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 429


async def test_a_logout_elsewhere_takes_effect_within_the_session_cache_time(
    aiohttp_client, config, make_user
):
    """Two web processes on one database: each caches confirmed sessions briefly."""
    from web.typedefs import SESSIONS

    first, second = init_app(config), init_app(config)
    one, two = await aiohttp_client(first), await aiohttp_client(second)
    second[SESSIONS].ttl = 0.3
    make_user("alice")
    headers = {"Authorization": f"Bearer {await login(one, 'alice')}"}
    assert (await two.get("/models/", headers=headers)).status == 200  # cached by `two`
    assert (await one.post("/logout/", headers=headers)).status == 200
    assert (await one.get("/models/", headers=headers)).status == 401  # at once here
    await asyncio.sleep(0.4)
    assert (await two.get("/models/", headers=headers)).status == 401  # soon there


def test_the_session_cache_forgets():
    from web.sessions import SessionCache

    cache = SessionCache(ttl=2.0, max_entries=2)
    cache.put("a", (1, "alice"), now=0.0)
    assert cache.get("a", now=1.9) == (1, "alice")
    assert cache.get("a", now=2.0) is None
    cache.put("a", (1, "alice"), now=3.0)
    cache.forget("a")
    assert cache.get("a", now=3.1) is None
    for key in "bcd":
        cache.put(key, (2, key), now=4.0)
    assert cache.get("b", now=4.1) is None and cache.get("d", now=4.1) == (2, "d")


# ---- secrets never reach the logs ---------------------------------------------------------

DB_PASSWORD = "db-Pa55word-q7"
AMQP_PASSWORD = "amqp-Pa55word-z9"
LLM_KEY = "sk-llm-key-0123456789abcdef"


@pytest.fixture
def log_output():
    """Everything logged, at every level, formatted by runt's JSON and text formatters."""
    from schemas.logs import JsonFormatter, TextFormatter, _RunIdFilter

    streams, handlers, root = [], [], logging.getLogger()
    for formatter in (JsonFormatter(), TextFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(_RunIdFilter())
        root.addHandler(handler)
        streams.append(stream)
        handlers.append(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    yield lambda: "".join(s.getvalue() for s in streams)
    root.setLevel(level)
    for handler in handlers:
        root.removeHandler(handler)


async def test_logins_log_no_password_or_token(client, make_user, log_output):
    make_user("alice")
    token = await login(client, "alice")
    await client.post("/login/", json={"username": "alice", "password": "wrong-Secret-1"})
    await client.post("/login/", json={"username": "nobody", "password": "wrong-Secret-2"})
    await client.get("/models/", headers={"Authorization": f"Bearer {token}"})
    text = log_output()
    for secret in (PASSWORD, "wrong-Secret-1", "wrong-Secret-2", token):
        assert secret not in text


def test_urls_with_passwords_are_masked_in_logs(log_output):
    from broker.abc import BrokerUnavailable
    from broker.sync import make_bus
    from broker.topology import Topology
    from schemas.config import load_config
    from web.db.engine import Database

    db_url = f"mysql+pymysql://runt:{DB_PASSWORD}@127.0.0.1:1/runt"
    amqp_url = f"amqp://runt:{AMQP_PASSWORD}@127.0.0.1:1/"
    environ = {"RUNT_DATABASE_URL": db_url, "RUNT_BROKER_URL": amqp_url}
    config = load_config(environ={**environ, "RUNT_SECRET_KEY": "k" * 20})
    assert config.database.url == db_url
    bus = make_bus(config.broker.url, Topology("secrets"), name="probe")
    bus.connect_timeout = 0.3
    with pytest.raises(BrokerUnavailable) as raised:
        bus.connect()
    assert AMQP_PASSWORD not in str(raised.value)
    database = Database(config.database.model_copy(update={"pool_timeout": 1}))
    try:
        assert asyncio.run(database.ping()) is False
    finally:
        database.close()
    logging.getLogger("runt.test").warning("connecting to %s and %s", db_url, amqp_url)
    text = log_output()
    assert "runt:***@127.0.0.1" in text  # the line is there, masked
    assert DB_PASSWORD not in text and AMQP_PASSWORD not in text


async def test_the_language_model_key_is_never_logged(
    aiohttp_client, db_url, make_user, monkeypatch, log_output
):
    monkeypatch.setenv("RUNT_LLM_API_KEY", LLM_KEY)
    config = make_config(
        db_url,
        assistant={"llm_base_url": "http://127.0.0.1:1/v1", "llm_model": "m",
                   "llm_timeout_seconds": 1},
    )  # fmt: skip
    client = await aiohttp_client(init_app(config))
    make_user("alice")
    token = await login(client, "alice")
    resp = await client.post(
        "/trainingassistent/",
        json={"algorithm": "dqn", "rewards": [1.0] * 30},
        headers={"Authorization": f"Bearer {token}"},
    )
    text = await resp.text()
    assert resp.status == 200 and LLM_KEY not in text
    assert "language model" in log_output()  # the failure was logged…
    assert LLM_KEY not in log_output()  # …without the key


# ---- no pickle ----------------------------------------------------------------------------

SOURCE_DIRS = ("schemas", "broker", "actors", "web", "configs", "bench")
UNSAFE_LOADS = {
    "pickle": re.compile(r"\b(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b"),
    "torch.load": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"),
    "np.load with pickles": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load": re.compile(r"yaml\.(unsafe_)?load\((?![^)]*Loader\s*=\s*yaml\.SafeLoader)"),
}


def code_lines(path: Path):
    """(line number, code) of a Python file, comments and docstring prose left out."""
    in_string = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_string or stripped.startswith(('"""', "'''")):
            if quotes % 2 == 1:
                in_string = not in_string
            continue
        yield number, line.split("#", 1)[0]


def test_no_code_path_unpickles(repo_root):
    found = []
    for folder in SOURCE_DIRS:
        for path in sorted((repo_root / folder).rglob("*.py")):
            for number, code in code_lines(path):
                found += [
                    f"{path.relative_to(repo_root)}:{number}: {name}: {code.strip()}"
                    for name, pattern in UNSAFE_LOADS.items()
                    if pattern.search(code)
                ]
    assert not found, "\n".join(found)


def test_the_pickle_check_can_fail(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text(
        "import pickle\nstate = torch.load(f)\nok = torch.load(f, weights_only=True)\n"
        "a = np.load(f, allow_pickle=True)\n"
    )
    hits = [
        (n, name)
        for n, code in code_lines(sample)
        for name, pattern in UNSAFE_LOADS.items()
        if pattern.search(code)
    ]
    assert hits == [(1, "pickle"), (2, "torch.load"), (4, "np.load with pickles")]
