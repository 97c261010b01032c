"""Commands the broker cannot take: a run submitted then is stored as failed and the
answer is a 503 naming the broker; a stop is refused the same way and changes nothing."""

from __future__ import annotations

import pytest

from schemas import api
from tests.conftest import Api, login, make_config
from tests.web.helpers import RUN
from web.app import init_app
from web.db import store
from web.typedefs import BROKER

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
async def offline(db_url, make_user, aiohttp_client) -> Api:
    """alice, on a web service whose broker never answers (and is given up on soon)."""
    client = await aiohttp_client(init_app(make_config(db_url, broker={"url": UNREACHABLE})))
    client.server.app[BROKER].publish_timeout = 0.5
    make_user("alice")
    return Api(client, await login(client, "alice"))


async def test_a_run_the_broker_cannot_take_is_stored_failed_with_a_503(offline: Api):
    status, body = await offline.post("/train/", json=RUN)
    assert status == 503
    assert body["message"] == "broker: unavailable; the run was not started"
    assert body["data"] == {"field": "broker"}
    _, page = await offline.get("/models/")
    (model,) = page["data"]["models"]
    _, detail = await offline.get(f"/models/{model['id']}/")
    assert detail["data"]["status"] == "failed"
    assert detail["data"]["status_reason"].startswith(
        "the broker was unreachable when the run was submitted"
    )


async def test_a_stop_the_broker_cannot_carry_is_a_503_and_changes_nothing(offline: Api, database):
    owner = database.call(store.find_user, "alice")[0]
    run = database.call(store.create_model, owner, api.TrainRequest(**RUN), 7)
    status, body = await offline.post("/stop-train/", json={"model_id": run.id})
    assert status == 503
    assert body["message"] == "broker: unavailable; try again"
    assert body["data"] == {"field": "broker"}
    _, detail = await offline.get(f"/models/{run.id}/")
    assert detail["data"]["status"] == "queued"
