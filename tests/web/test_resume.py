"""POST /train/ with resume_from: what is checked before a run continues another."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.web.helpers import create, learner_for, store_checkpoint


async def test_resume_stores_where_the_run_continues_from(alice: Api, database):
    source = await create(alice, hyperparameters={"hidden": [16]})
    store_checkpoint(database, source, learner_for(), version=7, env_id="CartPole-v1")
    status, body = await alice.post(
        "/train/",
        json={"algorithm": "dqn", "target_episode": 5, "resume_from": source,
              "hyperparameters": {"hidden": [16]}},
    )  # fmt: skip
    assert status == 201, body
    _, detail = await alice.get(f"/models/{body['id']}/")
    assert (detail["data"]["resume_from"], detail["data"]["resume_version"]) == (source, 7)


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"resume_from": 999_999}, 404, "resume_from"),
        ({"resume_from": "x"}, 400, "resume_from"),
        ({"hyperparameters": {"hidden": [32, 32]}}, 400, "hyperparameters.hidden"),
    ],
)
async def test_bad_resumes_name_the_field(alice: Api, database, fields, status, field):
    source = await create(alice)
    store_checkpoint(database, source, learner_for(), version=1, env_id="CartPole-v1")
    request = {"algorithm": "dqn", "target_episode": 5, "resume_from": source, **fields}
    got, body = await alice.post("/train/", json=request)
    assert got == status, body
    assert body["message"].startswith(f"{field}:"), body["message"]


async def test_a_run_without_checkpoints_or_of_another_user_cannot_be_resumed(
    alice: Api, bob: Api, database
):
    source = await create(alice)
    request = {"algorithm": "dqn", "target_episode": 5, "resume_from": source}
    status, body = await alice.post("/train/", json=request)
    assert status == 409 and body["message"].startswith("resume_from:")
    store_checkpoint(database, source, learner_for(), version=1, env_id="CartPole-v1")
    status, body = await bob.post("/train/", json=request)
    assert status == 404 and body["message"].startswith("resume_from:")
