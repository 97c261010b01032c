"""The response envelope, request parsing and the middlewares that turn every error
into `{"status": "error", "message": ..., "data": ...}` with a meaningful code, the
domain's refusals (web/domain/errors.py) included."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from schemas.api import MAX_ID
from web.domain.errors import (
    Conflict,
    DomainError,
    Impossible,
    Invalid,
    NotFound,
    Unavailable,
)

log = logging.getLogger("runt.web")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success. `field` names the input at fault, if any."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = f"{field}: {message}" if field else message
        self.data = {"field": field, **extra} if field or extra else None


# The answer to each kind of refusal of a domain module.
DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (Invalid, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Impossible, 422),
    (Unavailable, 503),
)


def domain_error(exc: DomainError) -> ApiError:
    status = next((code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), 400)
    return ApiError(status, exc.message, field=exc.field)


def envelope(data: Any = None, message: str = "ok", status: int = 200, **top: Any) -> web.Response:
    body = {"status": "success", "message": message, "data": data, **top}
    return web.json_response(body, status=status)


def plain_envelope(data: Any, message: str = "ok") -> bytes:
    """The success envelope of data that already has its response model's fields and
    types (zoned datetimes included), encoded by pydantic-core as `dump` would, without
    building the models: for the busiest read endpoints (answer with `json_body`)."""
    return to_json({"status": "success", "message": message, "data": data})


def json_body(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def error_response(status: int, message: str, data: Any = None, **headers: str) -> web.Response:
    body = {"status": "error", "message": message, "data": data}
    return web.json_response(body, status=status, headers=headers or None)


def dump(model: type[M], value: Any) -> Any:
    """Serialise `value` through a response model so answers match the OpenAPI document."""
    return model.model_validate(value).model_dump(mode="json")


def _field_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def validation_error(exc: ValidationError) -> ApiError:
    errors = []
    for err in exc.errors(include_url=False):
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        message = message.removeprefix("Value error, ")
        errors.append({"field": _field_of(err["loc"]), "message": message})
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    error = ApiError(400, text, errors=errors)
    error.data["field"] = errors[0]["field"] if errors else None
    return error


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request body as a dict, from JSON or from a form; an empty body is {}."""
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except ValueError as exc:  # a multipart body without its boundary, and the like
            raise ApiError(400, f"not a valid form ({exc})", field="body") from None
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "must be a JSON object", field="body")
    return data


async def parse_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_body(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    return validate(model, dict(request.query))


def path_id(request: web.Request, name: str = "model_id") -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise ApiError(400, "must be a positive integer", field=name)
    return int(raw)


# Sent with every response, errors, streams and static files included (`on_prepare`).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every response. No answer of the API is stored by a cache
    (streams included); static files may say otherwise for themselves."""
    response.headers.update(SECURITY_HEADERS)
    if isinstance(response, web.FileResponse):
        response.headers.setdefault("Cache-Control", "no-store")
    else:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.data)
    except DomainError as exc:
        error = domain_error(exc)
        return error_response(error.status, error.message, error.data)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"body: too large ({exc.text})")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, exc.reason, **headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")
