"""Run creation and the read API: shapes, pagination, ownership and every bad input."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.web.helpers import RUN, add_episodes, create
from web.db.tables import Evaluation, Metric

# ---- POST /train/ --------------------------------------------------------------------------


async def test_train_stores_a_queued_run_and_answers_201_with_its_id(alice: Api):
    status, body = await alice.post(
        "/train/",
        json={
            **RUN,
            "name": "cartpole baseline",
            "learning_rate": 0.0005,
            "batch_size": 128,
            "buffer_size": 50000,
            "gamma": 0.98,
            "seed": 7,
            "num_workers": 2,
            "stop_reward": 475,
            "env_params": {"max_episode_steps": 500},
            "hyperparameters": {"target_update_interval": 500},
        },
    )
    assert status == 201
    assert body["status"] == "success"
    assert body["data"]["status"] == "queued"
    assert body["id"] == body["data"]["id"]  # RUNT clients read the top-level id

    status, detail = await alice.get(f"/models/{body['id']}/")
    model = detail["data"]
    assert status == 200
    assert model["name"] == "cartpole baseline"
    assert model["algorithm"] == "dqn"
    assert model["env_id"] == "CartPole-v1"
    assert (model["learning_rate"], model["batch_size"], model["buffer_size"]) == (
        0.0005,
        128,
        50000,
    )
    assert (model["gamma"], model["seed"], model["num_workers"]) == (0.98, 7, 2)
    assert model["stop_reward"] == 475
    assert model["env_params"] == {"max_episode_steps": 500}
    assert model["hyperparameters"] == {"target_update_interval": 500}
    assert model["current_episode"] == 0
    assert model["status"] == "queued" and model["status_reason"] is None
    assert model["evaluations"] == [] and model["best_eval_return"] is None
    assert model["create_time"].endswith("Z")


async def test_train_accepts_runt_form_fields_as_environment_parameters(alice: Api):
    form = {
        "algorithm": "DQN",
        "target_episode": "100",
        "learning_rate": "0.0003",
        "task_size_average": "2.5e6",
        "task_comsumption_average": "1e9",
        "task_time_average": "0.5",
        "task_arrival_rate": "0.3",
        "n_UE": "5",
        "UE_computation_capacity": "1e9",
        "MEC_computation_capacity": "2e10",
        "hyperparameters": '{"tau": 0.005}',
    }
    status, body = await alice.post("/train", data=form)
    assert status == 201, body
    _, detail = await alice.get(f"/models/{body['id']}")
    model = detail["data"]
    assert model["algorithm"] == "dqn"
    assert model["env_id"] == "runt/MecOffload-v0"  # RUNT's fields mean the MEC environment
    assert model["env_params"] == {
        "task_size_average": 2.5e6,
        "task_comsumption_average": 1e9,
        "task_time_average": 0.5,
        "task_arrival_rate": 0.3,
        "n_UE": 5,
        "UE_computation_capacity": 1e9,
        "MEC_computation_capacity": 2e10,
    }
    assert model["hyperparameters"] == {"tau": 0.005}
    assert model["learning_rate"] == 0.0003


async def test_train_defaults_fill_what_the_request_leaves_out(alice: Api):
    model_id = await create(alice)
    _, detail = await alice.get(f"/models/{model_id}/")
    model = detail["data"]
    assert model["num_workers"] == 1
    assert 0 <= model["seed"] < 2**31  # a random seed is chosen and kept for reproducibility
    assert model["gamma"] == 0.99


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_episode": 10}, "algorithm"),
        ({"algorithm": "dqn"}, "target_episode"),
        ({**RUN, "algorithm": "a3c"}, "algorithm"),
        ({**RUN, "target_episode": -5}, "target_episode"),
        ({**RUN, "target_episode": 0}, "target_episode"),
        ({**RUN, "target_episode": "many"}, "target_episode"),
        ({**RUN, "learning_rate": "fast"}, "learning_rate"),
        ({**RUN, "learning_rate": -0.1}, "learning_rate"),
        ({**RUN, "batch_size": 0}, "batch_size"),
        ({**RUN, "batch_size": 3.5}, "batch_size"),
        ({**RUN, "gamma": 1.5}, "gamma"),
        ({**RUN, "seed": -1}, "seed"),
        ({**RUN, "num_workers": 0}, "num_workers"),
        ({**RUN, "num_workers": 1000}, "num_workers"),
        ({**RUN, "env_params": [1, 2]}, "env_params"),
        ({**RUN, "hyperparameters": "lr=3"}, "hyperparameters"),
        ({**RUN, "n_UE": 0}, "n_UE"),
        ({**RUN, "task_arrival_rate": -1}, "task_arrival_rate"),
        ({**RUN, "stop_reward": "high"}, "stop_reward"),
        ({**RUN, "env_id": ""}, "env_id"),
        ({**RUN, "colour": "blue"}, "colour"),
        ({**RUN, "algorithm": "sac"}, "algorithm"),
        ({**RUN, "hyperparameters": {"tau": 2}}, "hyperparameters.tau"),
        ({**RUN, "hyperparameters": {"warp_speed": 9}}, "hyperparameters.warp_speed"),
        ({**RUN, "hyperparameters": {"hidden": "big"}}, "hyperparameters.hidden"),
    ],
)
async def test_bad_train_requests_are_400s_naming_the_field(alice: Api, body, field):
    status, answer = await alice.post("/train/", json=body)
    assert status == 400
    assert answer["status"] == "error"
    assert answer["message"].startswith(f"{field}:"), answer["message"]
    assert answer["data"]["field"] == field
    _, listing = await alice.get("/models/")
    assert listing["data"]["total"] == 0  # nothing was stored


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (
            {**RUN, "env_id": "NoSuchEnvironment-v0"},
            "env_id",
            "Environment `NoSuchEnvironment` doesn't exist",
        ),
        (
            {**RUN, "env_params": {"gravity_x": 9.8}},
            "env_params",
            "unexpected keyword argument 'gravity_x'",
        ),
        (
            {**RUN, "env_id": "runt/MecOffload-v0", "env_params": {"n_UE": 0}},
            "env_params",
            "n_UE: must be at least 1",
        ),
        ({**RUN, "env_id": "Pendulum-v1"}, "algorithm", "dqn cannot act in Pendulum-v1"),
        ({**RUN, "algorithm": "sac"}, "algorithm", "sac cannot act in CartPole-v1"),
    ],
)
async def test_environments_are_made_once_and_their_errors_are_400s(alice: Api, body, field, says):
    status, answer = await alice.post("/train/", json=body)
    assert status == 400, answer
    assert answer["data"]["field"] == field
    assert answer["message"].startswith(f"{field}:") and says in answer["message"]
    _, listing = await alice.get("/models/")
    assert listing["data"]["total"] == 0


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
async def test_continuous_control_runs_are_accepted(alice: Api, algorithm):
    model_id = await create(alice, algorithm=algorithm, env_id="Pendulum-v1")
    _, detail = await alice.get(f"/models/{model_id}/")
    assert detail["data"]["algorithm"] == algorithm


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "body: not valid JSON"),
        ("[1, 2]", "body: must be a JSON object"),
        ('"text"', "body: must be a JSON object"),
    ],
)
async def test_train_bodies_that_are_not_json_objects_are_400s(alice: Api, raw, message):
    status, answer = await alice.post(
        "/train/", data=raw, headers={"Content-Type": "application/json"}
    )
    assert (status, answer["message"]) == (400, message)


async def test_form_body_with_bad_nested_json_names_the_field(alice: Api):
    status, answer = await alice.post(
        "/train/", data={"algorithm": "dqn", "target_episode": "3", "env_params": "{oops"}
    )
    assert status == 400
    assert answer["message"] == "env_params: must be a JSON object"


# ---- GET /models/ ------------------------------------------------------------------------


async def test_models_are_listed_newest_first_with_pages(alice: Api):
    ids = [await create(alice, name=f"run {i}") for i in range(5)]
    status, body = await alice.get("/models/?page=1&page_size=2")
    assert status == 200
    page = body["data"]
    assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (5, 1, 2, 3)
    assert [m["id"] for m in page["models"]] == [ids[4], ids[3]]
    _, body = await alice.get("/models?page=3&page_size=2")
    assert [m["id"] for m in body["data"]["models"]] == [ids[0]]
    _, body = await alice.get("/models/?page=4&page_size=2")
    assert body["data"]["models"] == [] and body["data"]["total"] == 5
    summary = body = (await alice.get("/models/"))[1]["data"]["models"][0]
    for key in ("algorithm", "env_id", "target_episode", "current_episode", "status",
                "learning_rate", "batch_size", "gamma", "create_time", "update_time"):  # fmt: skip
        assert key in summary


async def test_the_default_page_size_comes_from_the_config(alice: Api, config):
    for _ in range(config.api.default_page_size + 1):
        await create(alice)
    _, body = await alice.get("/models/")
    assert body["data"]["page_size"] == config.api.default_page_size
    assert len(body["data"]["models"]) == config.api.default_page_size


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=two", "page"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("page_size=1.5", "page_size"),
        ("order=asc", "order"),
    ],
)
@pytest.mark.parametrize("path", ["/models/", "/models/{id}/train-data/"])
async def test_bad_paging_is_a_400_naming_the_field(alice: Api, path, query, field):
    model_id = await create(alice)
    status, body = await alice.get(path.format(id=model_id) + "?" + query)
    assert status == 400
    assert body["message"].startswith(f"{field}:"), body["message"]


# ---- GET /models/<id>/ -------------------------------------------------------------------


async def test_model_detail_shows_latest_metrics_and_evaluations(alice: Api, database):
    model_id = await create(alice)

    def _record(session):
        session.add(Metric(model_id=model_id, env_steps=1000, values={"losses/td_loss": 0.5}))
        session.add(Metric(model_id=model_id, env_steps=2000, values={"losses/td_loss": 0.25}))
        for steps, mean in ((1000, 20.0), (2000, 180.0), (3000, 150.0)):
            session.add(
                Evaluation(
                    model_id=model_id,
                    env_steps=steps,
                    mean_return=mean,
                    std_return=3.0,
                    episodes=10,
                )
            )

    database.call(_record)
    _, body = await alice.get(f"/models/{model_id}/")
    model = body["data"]
    assert model["metrics"] == {"losses/td_loss": 0.25, "env_steps": 2000}
    assert [e["env_steps"] for e in model["evaluations"]] == [1000, 2000, 3000]
    assert model["best_eval_return"] == 180.0
    assert model["last_eval_return"] == 150.0


@pytest.mark.parametrize("raw_id", ["abc", "0", "-3", "1.5", "99999999999999999999999"])
async def test_non_numeric_or_out_of_range_ids_are_400s(alice: Api, raw_id):
    for path in (f"/models/{raw_id}/", f"/models/{raw_id}/train-data/"):
        status, body = await alice.get(path)
        assert status == 400
        assert body["message"].startswith("model_id:")


async def test_unknown_model_is_a_404(alice: Api):
    for path in ("/models/424242/", "/models/424242/train-data/"):
        status, body = await alice.get(path)
        assert status == 404 and body["message"].startswith("model_id:")


# ---- GET /models/<id>/train-data/ --------------------------------------------------------


async def test_train_data_is_paged_by_episode(alice: Api, database):
    model_id = await create(alice)
    rewards = [float(10 + i) for i in range(25)]
    add_episodes(database, model_id, rewards)
    status, body = await alice.get(f"/models/{model_id}/train-data/?page=2&page_size=10")
    assert status == 200
    data = body["data"]
    assert (data["model_id"], data["model_algorithm"]) == (model_id, "dqn")
    assert (data["total"], data["page"], data["page_size"], data["total_pages"]) == (25, 2, 10, 3)
    assert [row["episode"] for row in data["train_data"]] == list(range(11, 21))
    first = data["train_data"][0]
    assert first["reward"] == 20.0 and first["length"] == 20
    assert set(first) == {"episode", "reward", "smoothed_reward", "length", "create_time"}
    _, body = await alice.get(f"/models/{model_id}/train-data?page=3&page_size=10")
    assert [row["episode"] for row in body["data"]["train_data"]] == list(range(21, 26))
    _, body = await alice.get(f"/models/{model_id}/train-data/?page=9&page_size=10")
    assert body["data"]["train_data"] == []


# ---- ownership -----------------------------------------------------------------------------


async def test_users_see_only_their_own_models(alice: Api, bob: Api, database):
    alices = await create(alice)
    bobs = await create(bob)
    add_episodes(database, alices, [1.0, 2.0])
    _, listing = await bob.get("/models/")
    assert [m["id"] for m in listing["data"]["models"]] == [bobs]
    for path in (f"/models/{alices}/", f"/models/{alices}/train-data/"):
        status, body = await bob.get(path)
        assert status == 404, path  # indistinguishable from a model that does not exist
        assert body["message"] == "model_id: no such model"
    status, _ = await bob.post("/stop-train/", json={"model_id": alices})
    assert status == 404
    _, detail = await alice.get(f"/models/{alices}/")
    assert detail["data"]["status"] == "queued"  # bob's stop did nothing


# ---- POST /stop-train/ -------------------------------------------------------------------


async def test_stopping_a_queued_run_stops_it_and_a_second_stop_is_a_409(alice: Api):
    model_id = await create(alice)
    status, body = await alice.post("/stop-train/", data={"model_id": str(model_id)})
    assert status == 200
    assert body["data"] == {"id": model_id, "status": "stopped"}
    status, body = await alice.post("/stop-train", json={"model_id": model_id})
    assert status == 409
    assert body["message"].startswith("model_id:")


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "model_id"), ({"model_id": "x"}, "model_id"), ({"model_id": 0}, "model_id")],
)
async def test_bad_stop_requests_name_the_field(alice: Api, body, field):
    status, answer = await alice.post("/stop-train/", json=body)
    assert status == 400 and answer["message"].startswith(f"{field}:")


# ---- protocol details ----------------------------------------------------------------------


async def test_wrong_method_is_a_405_in_the_envelope(alice: Api):
    status, body = await alice.call("DELETE", "/models/")
    assert status == 405 and body["status"] == "error"


async def test_oversized_bodies_are_refused(alice: Api, config):
    big = "x" * (config.web.max_body_bytes + 10)
    status, body = await alice.post("/train/", json={**RUN, "name": big})
    assert status == 413
    assert body["message"].startswith("body:")


async def test_security_headers_are_set(client):
    resp = await client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
