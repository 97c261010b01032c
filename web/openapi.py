"""The OpenAPI 3.1 document, generated from the route table and the pydantic schemas.
web/app.py builds it at startup; `GET /openapi.json` serves that copy."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas import api
from web.routes import ROUTES, Route

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _envelope_schema(data_ref: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "message", "data"],
        "properties": {
            "status": {"type": "string", "enum": ["success", "error"]},
            "message": {"type": "string"},
            "data": {"anyOf": [data_ref, {"type": "null"}]} if data_ref else {},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameters(route: Route) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": api.MAX_ID},
        }
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        schema = route.query.model_json_schema()
        for name, prop in schema["properties"].items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    return params


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    data_ref = refs.get(route.data) if route.data else None
    if route.enveloped:
        content = _json(_envelope_schema(data_ref))
    elif route.media_type == "application/json":
        content = _json({"type": "object"})
    else:
        content = {route.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(route.success): {"description": "success", "content": content}}
    error = {"description": "error", "content": _json({"$ref": REF.format(model="Error")})}
    for code in (*route.errors, *(() if route.public else (401,))):
        responses[str(code)] = error
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "tags": list(route.tags),
        "responses": responses,
    }
    if params := _parameters(route):
        op["parameters"] = params
    if route.body is not None:
        body_ref = refs[route.body]
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": body_ref},
                "application/x-www-form-urlencoded": {"schema": body_ref},
            },
        }
    if route.public:
        op["security"] = []
    return op


@functools.cache
def document() -> dict[str, Any]:
    models = {m for r in ROUTES for m in (r.body, r.data) if m is not None}
    keyed = [(m, "validation" if any(r.body is m for r in ROUTES) else "serialization")
             for m in sorted(models, key=lambda m: m.__name__)]  # fmt: skip
    key_map, defs = models_json_schema(keyed, ref_template=REF)
    refs = {model: key_map[(model, mode)] for model, mode in keyed}
    components = dict(defs.get("$defs", {}))
    components["Error"] = _envelope_schema(None)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "runt", "version": "1", "description": "RL training as a service"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "runt_session"},
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
    }
