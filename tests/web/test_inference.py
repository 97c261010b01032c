"""POST /testmodel/: a stored checkpoint runs from a given state, with every error case."""

from __future__ import annotations

import numpy as np
import pytest

from actors.envs.build import make_env
from broker.codec import state_to_bytes
from tests.conftest import Api
from tests.web.helpers import learner_for, store_checkpoint
from web.db.tables import Checkpoint
from web.inference import PolicyCache, load

RUN = {"algorithm": "dqn", "target_episode": 50, "env_id": "CartPole-v1", "seed": 3}


async def create(api: Api, **fields) -> int:
    status, body = await api.post("/train/", json={**RUN, **fields})
    assert status == 201, body
    return body["id"]


async def test_a_checkpoint_runs_from_a_given_observation(alice: Api, database):
    model_id = await create(alice)
    learner = learner_for()
    store_checkpoint(database, model_id, learner, version=5, env_id="CartPole-v1")
    status, body = await alice.post(
        "/testmodel/", json={"model_id": model_id, "observation": [0, 0, 0.05, 0], "steps": 30}
    )
    assert status == 200, body
    data = body["data"]
    assert data["observation"][0] == pytest.approx([0, 0, 0.05, 0])
    assert len(data["observation"]) == len(data["action"]) == len(data["rewards"]) == data["steps"]
    assert data["steps"] <= 30 and data["checkpoint_version"] == 5
    assert data["total_reward"] == pytest.approx(sum(data["rewards"]))
    # The actions are the greedy ones of the stored network on the observations shown.
    greedy = learner.q_network(
        __import__("torch").as_tensor(np.array(data["observation"], dtype=np.float32))
    ).argmax(1)
    assert [a[0] for a in data["action"]] == greedy.tolist()


async def test_without_an_observation_the_run_seed_decides_the_start(alice: Api, database):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(), version=1, env_id="CartPole-v1")
    first = (await alice.post("/testmodel/", json={"model_id": model_id}))[1]["data"]
    again = (await alice.post("/testmodel", data={"model_id": str(model_id)}))[1]["data"]
    assert first == again
    env = make_env("CartPole-v1", {}, seed=3)
    obs, _ = env.reset(seed=3)
    assert first["observation"][0] == pytest.approx(obs.tolist())


async def test_the_newest_checkpoint_is_used_unless_one_is_named(alice: Api, database):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(seed=1), version=1, env_id="CartPole-v1")
    store_checkpoint(database, model_id, learner_for(seed=2), version=9, env_id="CartPole-v1")
    _, newest = await alice.post("/testmodel/", json={"model_id": model_id, "steps": 5})
    assert newest["data"]["checkpoint_version"] == 9
    _, named = await alice.post(
        "/testmodel/", json={"model_id": model_id, "steps": 5, "checkpoint": 1}
    )
    assert named["data"]["checkpoint_version"] == 1
    status, missing = await alice.post("/testmodel/", json={"model_id": model_id, "checkpoint": 4})
    assert status == 404 and missing["message"].startswith("checkpoint:")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"observation": [0, 0, 0]}, 400, "observation"),
        ({"observation": [0, "x", 0, 0]}, 400, "observation.1"),
        ({"observation": "not json"}, 400, "observation"),
        ({"steps": 0}, 400, "steps"),
        ({"steps": 10_001}, 400, "steps"),
        ({"deterministic": "maybe"}, 400, "deterministic"),
        ({"checkpoint": -1}, 400, "checkpoint"),
    ],
)
async def test_bad_inference_requests_name_the_field(alice: Api, database, body, status, field):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(), version=1, env_id="CartPole-v1")
    got, answer = await alice.post("/testmodel/", json={"model_id": model_id, **body})
    assert got == status, answer
    assert answer["message"].startswith(f"{field}:"), answer["message"]
    if field == "observation" and status == 400 and len(body["observation"]) == 3:
        assert "[4]" in answer["message"]  # says the expected shape


async def test_unknown_and_foreign_models_are_404_and_untrained_ones_409(
    alice: Api, bob: Api, database
):
    model_id = await create(alice)
    status, body = await alice.post("/testmodel/", json={"model_id": model_id})
    assert status == 409 and body["message"].startswith("model_id:")
    store_checkpoint(database, model_id, learner_for(), version=1, env_id="CartPole-v1")
    assert (await bob.post("/testmodel/", json={"model_id": model_id}))[0] == 404
    assert (await alice.post("/testmodel/", json={"model_id": 987654}))[0] == 404


async def test_an_environment_that_cannot_take_a_state_is_a_422(alice: Api, database):
    model_id = await create(alice, env_id="Blackjack-v1")
    # A CartPole-shaped network: the request fails on the environment, not the shape.
    learner = learner_for("CartPole-v1")
    meta = {"algorithm": "dqn", "env_id": "Blackjack-v1", "env_params": {}}
    meta["network"] = {**learner.network_meta()}
    database.call(
        lambda s: s.add(
            Checkpoint(
                model_id=model_id,
                version=1,
                env_steps=1,
                episode=1,
                weights=state_to_bytes(learner.state()),
                meta=meta,
            )
        )
    )
    status, body = await alice.post(
        "/testmodel/", json={"model_id": model_id, "observation": [1, 2, 3, 4]}
    )
    assert status == 422
    assert body["message"].startswith("observation:") and "cannot be started" in body["message"]


def test_the_policy_cache_is_bounded_and_keyed_by_version():
    learner = learner_for()
    meta = {"algorithm": "dqn", "env_id": "CartPole-v1", "network": learner.network_meta()}
    blob = state_to_bytes(learner.state())
    cache = PolicyCache(size=2)
    for version in (1, 2, 3):
        cache.put(load(7, version, meta, blob))
    assert cache.get(7, 1) is None  # evicted, least recently used
    assert cache.get(7, 3) is not None and cache.get(7, 2) is not None
    assert cache.get(7, 4) is None  # a newer checkpoint is a new key: loaded afresh


async def test_checkpoint_download_is_safetensors_described_by_its_metadata(
    alice: Api, bob: Api, database
):
    from safetensors import safe_open

    model_id = await create(alice)
    learner = learner_for()
    store_checkpoint(database, model_id, learner, version=4, env_id="CartPole-v1")
    resp = await alice.client.get(f"/models/{model_id}/checkpoint", headers=alice.headers)
    assert resp.status == 200
    assert "runt-model" in resp.headers["Content-Disposition"]
    blob = await resp.read()
    path = __import__("tempfile").mktemp(suffix=".safetensors")
    with open(path, "wb") as f:
        f.write(blob)
    with safe_open(path, framework="pt") as f:
        meta = __import__("json").loads(f.metadata()["runt"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
    assert meta["algorithm"] == "dqn" and meta["version"] == 4 and meta["env_steps"] == 40
    assert meta["observation_shape"] == [4] and meta["n_actions"] == 2
    expected = learner.policy_state()
    assert set(tensors) == set(expected)
    assert all((tensors[k] == expected[k]).all() for k in expected)
    status, _ = await bob.get(f"/models/{model_id}/checkpoint")
    assert status == 404
    status, body = await alice.get(f"/models/{model_id}/checkpoint?version=99")
    assert status == 404 and body["message"].startswith("version:")


async def test_replay_gif_shows_the_policy_playing(alice: Api, database):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(), version=2, env_id="CartPole-v1")
    resp = await alice.client.get(f"/models/{model_id}/replay.gif", headers=alice.headers)
    assert resp.status == 200 and resp.content_type == "image/gif"
    from PIL import Image

    image = Image.open(__import__("io").BytesIO(await resp.read()))
    assert image.format == "GIF" and image.n_frames >= 3
    status, body = await alice.get(f"/models/{model_id}/replay.gif?episodes=9")
    assert status == 400 and body["message"].startswith("episodes:")
