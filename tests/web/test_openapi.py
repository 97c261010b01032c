"""/openapi.json documents every endpoint, is a valid OpenAPI 3.1 document, and real
answers match the schemas it states."""

from __future__ import annotations

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.conftest import Api
from web.routes import ROUTES


@pytest.fixture
async def spec(client) -> dict:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    return await resp.json()


async def test_document_is_valid_openapi_31(spec):
    assert spec["openapi"].startswith("3.1")
    validate_spec(spec)


async def test_every_route_is_documented(spec):
    for route in ROUTES:
        operation = spec["paths"][route.path][route.method.lower()]
        assert str(route.success) in operation["responses"]
        if not route.public:
            assert "401" in operation["responses"]
        if route.body is not None:
            assert "application/json" in operation["requestBody"]["content"]


def check(spec: dict, path: str, method: str, status: int, body: dict) -> None:
    """Validate `body` against the documented schema of that response."""
    content = spec["paths"][path][method]["responses"][str(status)]["content"]
    schema = _rebase(content["application/json"]["schema"])
    registry = Registry().with_resource("urn:spec", DRAFT202012.create_resource(spec))
    jsonschema.Draft202012Validator(schema, registry=registry).validate(body)


def _rebase(node):
    """Point local refs (#/components/...) at the registered document."""
    if isinstance(node, dict):
        return {
            k: ("urn:spec" + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


async def test_answers_conform_to_the_document(spec, alice: Api):
    status, body = await alice.post("/train/", json={"algorithm": "dqn", "target_episode": 5})
    check(spec, "/train/", "post", status, body)
    model_id = body["id"]
    status, body = await alice.get("/models/")
    check(spec, "/models/", "get", status, body)
    status, body = await alice.get(f"/models/{model_id}/")
    check(spec, "/models/{model_id}/", "get", status, body)
    status, body = await alice.get(f"/models/{model_id}/train-data/")
    check(spec, "/models/{model_id}/train-data/", "get", status, body)
    status, body = await alice.get("/models/0/")
    check(spec, "/models/{model_id}/", "get", status, body)
    status, body = await alice.post("/train/", json={})
    check(spec, "/train/", "post", status, body)
    status, body = await alice.post("/stop-train/", json={"model_id": model_id})
    check(spec, "/stop-train/", "post", status, body)


def test_a_wrong_answer_would_not_conform():
    """The conformance check above can fail: a missing field is caught."""
    from web.openapi import document

    spec = document()
    with pytest.raises(jsonschema.ValidationError):
        check(spec, "/train/", "post", 201, {"status": "success", "message": "x", "data": {}})
