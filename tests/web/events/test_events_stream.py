"""GET /models/<id>/events streams a run's events as they are stored, to its owner only."""

from __future__ import annotations

import asyncio

from schemas.messages import EpisodeFinished, StatusChanged
from tests.conftest import Api
from tests.services import read_events
from web.typedefs import BROKER, TOPOLOGY


async def test_events_of_a_run_arrive_live_after_they_are_stored(client, alice: Api, bob: Api):
    _, body = await alice.post("/train/", json={"algorithm": "dqn", "target_episode": 10})
    run_id = body["id"]
    status, _ = await bob.get(f"/models/{run_id}/events")
    assert status == 404  # not bob's run

    app = client.server.app
    broker, topology = app[BROKER], app[TOPOLOGY]
    resp = await client.get(f"/models/{run_id}/events", headers=alice.headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert (await resp.content.readline()).startswith(b": connected")

    for event in (
        StatusChanged(run_id=run_id, status="running", actor="test"),
        EpisodeFinished(run_id=run_id, worker=0, seq=0, reward=12.0, length=12),
        EpisodeFinished(run_id=run_id + 1000, worker=0, seq=0, reward=1.0, length=1),
    ):
        await broker.publish_message(
            topology.events, topology.event_key(event.run_id, event.type), event
        )
    events = await asyncio.wait_for(read_events(resp, 2), timeout=10)
    assert [kind for kind, _ in events] == ["status", "episode"]
    assert events[1][1]["reward"] == 12.0 and events[1][1]["run_id"] == run_id
    _, detail = await alice.get(f"/models/{run_id}/")
    assert detail["data"]["current_episode"] == 1  # stored before it was streamed
    resp.close()
