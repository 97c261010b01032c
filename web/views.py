"""Request handlers: parse the input, call a domain module (web/domain/) or the store,
answer with the envelope. Refusals are exceptions that web/http.py answers: the domain's
(`web.domain.errors`) and `ApiError`s, each naming the field at fault."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from schemas import api
from schemas.messages import expand_episodes
from web import auth
from web.db import store
from web.domain.errors import NotFound
from web.http import (
    ApiError,
    dump,
    envelope,
    json_body,
    parse_body,
    parse_query,
    path_id,
    plain_envelope,
)
from web.typedefs import BROKER, CONFIG, DB, LIVE, OPENAPI, POLICIES, READS, RUNS, USER

SSE_KEEPALIVE_S = 15.0


def owner(request: web.Request) -> int:
    """The id of the user the request's session belongs to (web/auth.py)."""
    return request[USER].id


# ---- auth --------------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, api.LoginRequest)
    session = await auth.log_in(request.app, body.username, body.password)
    response = envelope(dump(api.LoginOut, session), "logged in")
    auth.set_session_cookie(response, session["token"], request.app[CONFIG].web)
    return response


async def logout(request: web.Request) -> web.Response:
    await auth.log_out(request)
    response = envelope(None, "logged out")
    auth.clear_session_cookie(response)
    return response


# ---- runs --------------------------------------------------------------------------------


async def train(request: web.Request) -> web.Response:
    """Store the run, then ask the agents to start it. The answer does not wait for
    training: the run goes on without the web service."""
    body = await parse_body(request, api.TrainRequest)
    model = await request.app[RUNS].submit(owner(request), body)
    data = dump(api.TrainOut, {"id": model.id, "status": model.status})
    return envelope(data, "training run queued", status=201, id=model.id)


async def stop_train(request: web.Request) -> web.Response:
    """Tell the run's actors to stop (they finish, checkpoint and exit), then mark it."""
    body = await parse_body(request, api.StopRequest)
    status = await request.app[RUNS].stop(owner(request), body.model_id)
    return envelope(dump(api.TrainOut, {"id": body.model_id, "status": status}), "stop requested")


def _page_size(request: web.Request, query: api.PageQuery) -> int:
    limits = request.app[CONFIG].api
    size = query.page_size or limits.default_page_size
    if size > limits.max_page_size:
        raise ApiError(400, f"must be at most {limits.max_page_size}", field="page_size")
    return size


async def list_models(request: web.Request) -> web.Response:
    query = parse_query(request, api.ModelsQuery)
    size = _page_size(request, query)
    user = owner(request)

    async def read() -> bytes:
        page, models = await request.app[DB].read(
            store.list_models, user, query.page, size, query.status, query.algorithm
        )
        data = {
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
            "total_pages": page.total_pages,
            "models": models,
        }
        return plain_envelope(data)

    key = ("models", user, query.page, size, query.status, query.algorithm)
    return json_body(await request.app[READS].fetch(key, read))


async def model_detail(request: web.Request) -> web.Response:
    detail = await request.app[RUNS].detail(owner(request), path_id(request))
    return envelope(dump(api.ModelDetail, detail))


async def train_data(request: web.Request) -> web.Response:
    model_id = path_id(request)
    query = parse_query(request, api.PageQuery)
    size = _page_size(request, query)
    user = owner(request)

    async def read() -> bytes:
        result = await request.app[DB].read(store.train_data_page, user, model_id, query.page, size)
        if result is None:
            raise NotFound("model_id", "no such model")
        algorithm, page, rows = result
        data = {
            "model_id": model_id,
            "model_algorithm": algorithm,
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
            "total_pages": page.total_pages,
            "train_data": rows,
        }
        return plain_envelope(data)

    key = ("train", user, model_id, query.page, size)
    return json_body(await request.app[READS].fetch(key, read))


async def model_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events of one run, live: each event once it is stored."""
    model_id = path_id(request)
    await request.app[RUNS].status(owner(request), model_id)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)

    def on_events(events: list) -> None:
        for event in expand_episodes(events):
            if event.run_id == model_id and not queue.full():
                queue.put_nowait(event)

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    live = request.app[LIVE]
    listeners = live.listeners
    listeners.append(on_events)
    try:
        await live.ready.wait()  # ": connected" promises every event stored from now on
        await response.write(b": connected\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            data = event.model_dump(mode="json", exclude={"weights"})
            await response.write(f"event: {event.type}\ndata: {json.dumps(data)}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away (a dashboard left the run's page): the normal end
    finally:
        listeners.remove(on_events)
    return response


# ---- trained policies ------------------------------------------------------------------------


async def test_model(request: web.Request) -> web.Response:
    """Run the trained policy from a given (or the seeded reset) state."""
    body = await parse_body(request, api.TestModelRequest)
    result = await request.app[POLICIES].play(owner(request), body)
    return envelope(dump(api.TestModelOut, result))


async def download_checkpoint(request: web.Request) -> web.Response:
    """The policy's weights as safetensors, described by JSON in its header metadata."""
    model_id = path_id(request)
    query = parse_query(request, api.CheckpointQuery)
    name, body = await request.app[POLICIES].export(owner(request), model_id, query.version)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def replay_gif(request: web.Request) -> web.Response:
    """Greedy episodes of the newest (or named) checkpoint, rendered as a GIF."""
    model_id = path_id(request)
    query = parse_query(request, api.ReplayQuery)
    policies = request.app[POLICIES]
    gif = await policies.replay(owner(request), model_id, query.version, query.episodes)
    return web.Response(body=gif, content_type="image/gif")


# ---- service -----------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    health = {
        "database": await request.app[DB].ping(),
        "broker": request.app[BROKER].connected,
    }
    if all(health.values()):
        return envelope(health, "healthy")
    down = ", ".join(name for name, ok in health.items() if not ok)
    return web.json_response(
        {"status": "error", "message": f"unreachable: {down}", "data": health}, status=503
    )


async def openapi(request: web.Request) -> web.Response:
    """The document web/app.py built from the route table at startup (web/openapi.py)."""
    return web.json_response(request.app[OPENAPI])
