"""Login, sessions, logout, throttling and the rule that everything else needs a session."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, Api, login
from web.routes import ROUTES, path_variants


async def test_login_with_json_returns_token_and_httponly_cookie(client, make_user):
    user_id = make_user("alice")
    resp = await client.post("/login/", json={"username": "alice", "password": PASSWORD})
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "success"
    assert body["data"]["user"] == {"id": user_id, "username": "alice"}
    assert len(body["data"]["token"]) >= 40
    cookie = resp.cookies["runt_session"]
    assert cookie.value == body["data"]["token"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"


async def test_login_with_form_body(client, make_user):
    make_user("alice")
    resp = await client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert resp.status == 200
    assert (await resp.json())["data"]["user"]["username"] == "alice"


async def test_session_cookie_and_bearer_token_both_authenticate(client, make_user):
    make_user("alice")
    token = await login(client, "alice")  # the client's cookie jar now holds the session
    resp = await client.get("/models/")
    assert resp.status == 200
    client.session.cookie_jar.clear()
    assert (await client.get("/models/")).status == 401
    resp = await client.get("/models/", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


async def test_logout_ends_the_session(client, alice: Api):
    status, _ = await alice.get("/models/")
    assert status == 200
    status, body = await alice.post("/logout/")
    assert status == 200 and body["status"] == "success"
    status, body = await alice.get("/models/")
    assert status == 401
    assert body["status"] == "error"


async def test_unknown_user_and_wrong_password_get_identical_answers(client, make_user):
    make_user("alice")
    wrong = await client.post("/login/", json={"username": "alice", "password": "nope-nope"})
    unknown = await client.post("/login/", json={"username": "mallory", "password": "nope-nope"})
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert "runt_session" not in wrong.cookies and "runt_session" not in unknown.cookies


@pytest.mark.parametrize("username", ["alice", "nobody"])
async def test_failed_logins_are_throttled_per_account(client, make_user, username):
    make_user("alice")
    make_user("carol")
    for _ in range(3):  # the test config allows 3 failures per window
        resp = await client.post("/login/", json={"username": username, "password": "bad-pass"})
        assert resp.status == 401
    # Now even the right password is refused for this account, with a hint when to retry…
    resp = await client.post("/login/", json={"username": username, "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["status"] == "error"
    # …while other accounts are unaffected.
    resp = await client.post("/login/", json={"username": "carol", "password": PASSWORD})
    assert resp.status == 200


async def test_a_success_resets_the_failure_count(client, make_user):
    make_user("alice")
    for _ in range(2):
        await client.post("/login/", json={"username": "alice", "password": "bad-pass"})
    await login(client, "alice")
    for _ in range(2):
        await client.post("/login/", json={"username": "alice", "password": "bad-pass"})
    await login(client, "alice")


PROTECTED = [
    (route.method, path.replace("{model_id}", "1"))
    for route in ROUTES
    if not route.public
    for path in path_variants(route.path)
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_endpoint_but_login_needs_a_session(client, method, path):
    resp = await client.request(method, path, json={})
    assert resp.status == 401
    body = await resp.json()
    assert body["status"] == "error" and "log in" in body["message"]


@pytest.mark.parametrize(("method", "path"), PROTECTED[:4])
async def test_a_forged_token_is_refused(client, make_user, method, path):
    resp = await client.request(
        method, path, json={}, headers={"Authorization": "Bearer forged-token-value"}
    )
    assert resp.status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "x"}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": 5, "password": "x"}, "username"),
        ({"username": "", "password": "x"}, "username"),
    ],
)
async def test_bad_login_bodies_name_the_field(client, body, field):
    resp = await client.post("/login/", json=body)
    assert resp.status == 400
    assert (await resp.json())["message"].startswith(f"{field}:")


async def test_login_body_that_is_not_json_is_a_400(client):
    resp = await client.post(
        "/login/", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["message"] == "body: not valid JSON"


async def test_public_endpoints_answer_without_a_session(client):
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/openapi.json")).status == 200
