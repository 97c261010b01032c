"""What the dashboard needs from the service: the page and its files (public, typed,
never outside web/static), GET /presets/, and GET /models/ filtered by status and
algorithm. The page itself is driven in a browser in tests/e2e/test_dashboard_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from configs import CONFIG_DIR
from schemas.api import TrainRequest
from tests.conftest import Api
from web.dashboard import STATIC_DIR
from web.db.tables import Model
from web.presets import description, load_presets, read_preset

RUN = {"algorithm": "dqn", "target_episode": 5, "env_id": "CartPole-v1"}


# ---- the page and its files ------------------------------------------------------------


async def test_the_page_is_public_html_that_loads_its_script_from_a_file(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert '<script type="module" src="/static/js/main.js"></script>' in html
    # Everything in files: no inline script, style or handler (the CSP forbids them).
    assert "<style" not in html and "style=" not in html and " onclick" not in html
    assert html.count("<script") == 1


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/js/main.js", "text/javascript"),
        ("/static/js/views/model.js", "text/javascript"),
        ("/static/css/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_public_with_their_type(client, path, content_type):
    resp = await client.get(path)
    assert resp.status == 200, path
    assert resp.content_type == content_type
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/static/js/nothing.js",
        "/static/%2e%2e/app.py",  # outside web/static
        "/static/..%2fapp.py",
        "/static/js/",
        "/static/index.html.bak",
    ],
)
async def test_nothing_outside_the_static_files_is_served(client, path):
    resp = await client.get(path)
    assert resp.status == 404
    assert (await resp.json())["status"] == "error"


def test_every_module_the_page_imports_exists():
    """The page's modules import each other by relative path; a typo would be a blank page."""
    import re

    for module in STATIC_DIR.rglob("*.js"):
        for target in re.findall(r"""^import .* from '(\.[^']+)';$""", module.read_text(), re.M):
            assert (module.parent / target).resolve().is_file(), f"{module}: {target}"


def test_no_static_file_writes_server_text_as_html():
    """Server text enters the page only as text nodes."""
    for path in STATIC_DIR.rglob("*.js"):
        text = path.read_text()
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert unsafe not in text, f"{path.name} uses {unsafe}"


async def test_static_routes_are_not_in_the_api_document(client):
    spec = await (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/static") for path in spec["paths"])
    page = spec["paths"]["/"]["get"]
    assert page["security"] == []
    assert "text/html" in page["responses"]["200"]["content"]


# ---- presets ---------------------------------------------------------------------------


async def test_presets_are_listed_from_the_config_folder(alice: Api):
    status, body = await alice.get("/presets/")
    assert status == 200, body
    presets = {p["name"]: p for p in body["data"]["presets"]}
    shipped = {p.stem for p in CONFIG_DIR.glob("*.yaml")} - {"runt"}
    assert set(presets) == shipped
    cartpole = presets["dqn_cartpole"]
    assert cartpole["file"] == "dqn_cartpole.yaml"
    assert cartpole["description"].startswith("DQN on CartPole-v1")
    on_disk = yaml.safe_load((CONFIG_DIR / "dqn_cartpole.yaml").read_text())
    assert cartpole["values"] == on_disk
    for preset in presets.values():
        TrainRequest.model_validate(preset["values"])  # each can be posted as it is


async def test_presets_need_a_session(client):
    resp = await client.get("/presets/")
    assert resp.status == 401


async def test_a_preset_starts_a_run_as_it_is(alice: Api):
    _, body = await alice.get("/presets")
    values = next(p for p in body["data"]["presets"] if p["name"] == "dqn_cartpole")["values"]
    status, body = await alice.post("/train/", json=values)
    assert status == 201, body


def test_files_that_are_no_presets_are_left_out(tmp_path: Path):
    (tmp_path / "runt.yaml").write_text("web:\n  port: 1\n")
    (tmp_path / "good.yaml").write_text(
        "# PPO on CartPole. More words.\nalgorithm: ppo\ntarget_episode: 10\n"
    )
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("algorithm: [dqn\n")
    (tmp_path / "invalid.yaml").write_text("algorithm: dqn\ntarget_episode: 0\n")
    presets = load_presets(tmp_path)
    assert [p["name"] for p in presets] == ["good"]
    assert presets[0]["description"] == "PPO on CartPole."
    assert read_preset(tmp_path / "invalid.yaml") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# DQN on X. Solved = 1.\n# more\nalgorithm: dqn\n", "DQN on X."),
        ("#\n# Second line, no full stop\nalgorithm: dqn\n", "Second line, no full stop"),
        ("algorithm: dqn  # not a leading comment\n", ""),
    ],
)
def test_the_description_is_the_first_sentence_of_the_leading_comment(text, expected):
    assert description(text) == expected


# ---- GET /models/ filters -----------------------------------------------------------------


async def test_models_are_filtered_by_status_and_algorithm(alice: Api, bob: Api, database):
    ids = {}
    for name, algorithm in (("a", "dqn"), ("b", "ppo"), ("c", "dqn"), ("d", "ppo")):
        status, body = await alice.post(
            "/train/", json={**RUN, "algorithm": algorithm, "name": name}
        )
        assert status == 201, body
        ids[name] = body["id"]
    await bob.post("/train/", json=RUN)

    def set_status(session):
        session.get(Model, ids["a"]).status = "running"
        session.get(Model, ids["d"]).status = "running"

    database.call(set_status)

    async def names(query: str) -> tuple[int, list[str]]:
        status, body = await alice.get(f"/models/?{query}")
        assert status == 200, body
        return body["data"]["total"], [m["name"] for m in body["data"]["models"]]

    assert await names("status=running") == (2, ["d", "a"])  # newest first
    assert await names("algorithm=dqn") == (2, ["c", "a"])
    assert await names("status=running&algorithm=ppo") == (1, ["d"])
    assert await names("status=failed") == (0, [])
    assert await names("status=queued&page=2&page_size=1") == (2, ["b"])
    assert await names("") == (4, ["d", "c", "b", "a"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("status=", "status"),
        ("algorithm=a2c", "algorithm"),
        ("algorithm=DQN%20", "algorithm"),
        ("state=running", "state"),
    ],
)
async def test_bad_filters_are_400s_naming_the_field(alice: Api, query, field):
    status, body = await alice.get(f"/models/?{query}")
    assert status == 400, body
    assert body["message"].startswith(f"{field}:"), body["message"]


# ---- the live stream when the page goes away -------------------------------------------------


async def test_a_client_leaving_the_event_stream_ends_it_quietly(config, make_user, caplog):
    """The dashboard closes a run's stream whenever it leaves the run's page; the service
    then stops forwarding to it, without an error. Served as `runt web` serves (handlers
    are not cancelled when a client leaves; the test client's server would cancel them)."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from schemas.messages import EpisodeFinished
    from tests.conftest import PASSWORD
    from web.app import init_app
    from web.typedefs import BROKER, LIVE, TOPOLOGY

    make_user("alice")
    app = init_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            login = {"username": "alice", "password": PASSWORD}
            async with http.post(f"{base}/login/", json=login) as resp:
                token = (await resp.json())["data"]["token"]
            auth = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{base}/train/", json=RUN, headers=auth) as resp:
                run_id = (await resp.json())["data"]["id"]
            listeners = app[LIVE].listeners
            before = len(listeners)
            resp = await http.get(f"{base}/models/{run_id}/events", headers=auth)
            assert (await resp.content.readline()).startswith(b": connected")
            assert len(listeners) == before + 1
            resp.close()
            for seq in range(50):
                if len(listeners) == before:
                    break
                event = EpisodeFinished(run_id=run_id, worker=0, seq=seq, reward=1.0, length=1)
                topology = app[TOPOLOGY]
                await app[BROKER].publish_message(
                    topology.events, topology.event_key(run_id, event.type), event
                )
                await asyncio.sleep(0.1)
            assert len(listeners) == before
    finally:
        await runner.cleanup()
    assert "unhandled error" not in caplog.text
