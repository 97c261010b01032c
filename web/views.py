"""Request handlers: parse and validate input, call the store on the DB thread pool,
answer with the envelope. Domain outcomes become `ApiError`s with the field at fault."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from aiohttp import web

from actors.algorithms.validate import check_spec
from actors.export.checkpoints import policy_file
from actors.export.visualize import CannotRender, gif_bytes, render_episodes
from broker.abc import BrokerUnavailable
from broker.codec import encode_frame
from schemas import api
from schemas.messages import (
    PolicyRef,
    ResumeFrom,
    ResumeHeader,
    StartRun,
    StopRun,
    expand_episodes,
)
from web import inference
from web.auth import SESSION_COOKIE, new_token, token_digest, verify_password
from web.db import store
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
from web.typedefs import (
    BROKER,
    CONFIG,
    DB,
    LIVE,
    POLICIES,
    READS,
    REPLAYS,
    SESSIONS,
    THROTTLE,
    TOPOLOGY,
    USER,
    CurrentUser,
)

BAD_CREDENTIALS = "invalid username or password"
SSE_KEEPALIVE_S = 15.0
REPLAY_CACHE_SIZE = 16


def current_user(request: web.Request) -> CurrentUser:
    return request[USER]


# ---- auth --------------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, api.LoginRequest)
    cfg, throttle, db = request.app[CONFIG], request.app[THROTTLE], request.app[DB]
    wait = await db.run(throttle.retry_after, body.username)
    if wait > 0:
        raise web.HTTPTooManyRequests(
            reason="too many failed logins for this username; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    found = await db.run(store.find_user, body.username)
    ok = await asyncio.to_thread(verify_password, found[2] if found else None, body.password)
    if not (found and ok):
        await db.run(throttle.failed, body.username)
        raise ApiError(401, BAD_CREDENTIALS)
    await db.run(throttle.succeeded, body.username)
    user_id, username, _ = found
    token = new_token()
    ttl = timedelta(hours=cfg.web.session_ttl_hours)
    expires = await db.run(store.open_session, user_id, token_digest(cfg.secret_key, token), ttl)
    data = {"token": token, "user": {"id": user_id, "username": username}, "expires_at": expires}
    response = envelope(dump(api.LoginOut, data), "logged in")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=cfg.web.cookie_secure,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    token_hash = current_user(request).token_hash
    await request.app[DB].run(store.close_session, token_hash)
    request.app[SESSIONS].forget(token_hash)
    response = envelope(None, "logged out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# ---- runs --------------------------------------------------------------------------------


def run_changed(request: web.Request, run_id: int, status: str, reason: str | None = None) -> None:
    """After storing a run's status here: this process's cached reads go at once, the
    other processes' (and every live stream) hear it from the notice."""
    request.app[READS].runs_changed([run_id])
    request.app[LIVE].changed(run_id, status, reason)


async def train(request: web.Request) -> web.Response:
    """Store the run, then ask the agents to start it. The answer does not wait for
    training: the run goes on without the web service."""
    body = await parse_body(request, api.TrainRequest)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    try:
        # Making the environment may take a while: not on the event loop.
        config = await asyncio.to_thread(
            check_spec,
            store.spec_of(body, run_id=0, seed=seed),
            request.app[CONFIG].training.allowed_modules,
        )
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise ApiError(400, message, field=field) from None
    db = request.app[DB]
    resume, resume_state = None, None
    if body.resume_from is not None:
        resume, resume_state = await resume_point(request, body, config.hidden, body.policy)
    model = await db.run(store.create_model, current_user(request).id, body, seed, resume)
    run_changed(request, model.id, model.status)
    topology, broker = request.app[TOPOLOGY], request.app[BROKER]
    try:
        work = topology.agent_work()
        if work.name not in broker.declared:
            # The durable work queue holds the command until an agent takes it, even if
            # no agent has ever run on this broker; without it the command is unroutable.
            await broker.declare(work)
        if resume is not None:
            await publish_resume_state(request, model.id, resume, resume_state)
        await broker.publish_message(
            topology.commands, "run.start", StartRun(spec=store.run_spec(model, resume))
        )
    except BrokerUnavailable as exc:
        reason = f"the broker was unreachable when the run was submitted ({exc})"
        await db.run(store.mark_failed, model.id, reason)
        run_changed(request, model.id, "failed", reason)
        raise ApiError(503, "unavailable; the run was not started", field="broker") from None
    data = dump(api.TrainOut, {"id": model.id, "status": model.status})
    return envelope(data, "training run queued", status=201, id=model.id)


async def resume_point(
    request: web.Request,
    body: api.TrainRequest,
    hidden: Sequence[int],
    policy: PolicyRef | None,
) -> tuple[ResumeFrom, bytes]:
    """The newest checkpoint of `resume_from`, checked against the new run's settings."""
    db, source = request.app[DB], body.resume_from
    ref = await db.run(store.find_checkpoint, current_user(request).id, source, None)
    if ref is None:
        raise ApiError(404, "no such model", field="resume_from")
    if ref.version is None:
        raise ApiError(409, "that run has no checkpoint to resume from", field="resume_from")
    meta, weights, env_steps = await db.run(store.checkpoint_blob, source, ref.version)
    if meta["algorithm"] != body.algorithm:
        raise ApiError(
            400, f"its checkpoint is {meta['algorithm']}, not {body.algorithm}", field="resume_from"
        )
    network = meta["network"]
    described = None if policy is None else policy.model_dump(mode="json")
    if described != network.get("policy"):
        raise ApiError(
            400, f"must match the checkpoint's network {network.get('policy')}", field="policy"
        )
    if network["architecture"] != "custom_q" and list(hidden) != list(network["hidden"]):
        raise ApiError(
            400,
            f"must match the checkpoint's network {meta['network']['hidden']}",
            field="hyperparameters.hidden",
        )
    return ResumeFrom(model_id=source, version=ref.version, env_steps=env_steps), weights


async def publish_resume_state(
    request: web.Request, run_id: int, resume: ResumeFrom, weights: bytes
) -> None:
    """The learner state goes on the run's own durable resume queue, not in the start
    command: tensors stay out of control messages."""
    topology, broker = request.app[TOPOLOGY], request.app[BROKER]
    await broker.declare(topology.resume(run_id))
    header = ResumeHeader(run_id=run_id, version=resume.version, env_steps=resume.env_steps)
    frame = encode_frame(header, {"safetensors": np.frombuffer(weights, dtype=np.uint8)})
    await broker.publish(topology.data, topology.data_key(run_id, "resume"), frame, persistent=True)


async def stop_train(request: web.Request) -> web.Response:
    """Tell the run's actors to stop (they finish, checkpoint and exit), then mark it."""
    body = await parse_body(request, api.StopRequest)
    db, owner = request.app[DB], current_user(request).id
    status = await db.run(store.model_status, owner, body.model_id)
    if status is None:
        raise ApiError(404, "no such model", field="model_id")
    if status not in api.ACTIVE_STATUSES:
        raise ApiError(409, f"the run has already ended ({status})", field="model_id")
    topology = request.app[TOPOLOGY]
    command = StopRun(run_id=body.model_id, status="stopped", reason="stopped by the user")
    try:
        await request.app[BROKER].publish_message(
            topology.commands, topology.stop_key(body.model_id), command
        )
    except BrokerUnavailable:
        raise ApiError(503, "unavailable; try again", field="broker") from None
    result = await db.run(store.request_stop, owner, body.model_id)
    if result is None:  # cannot happen: ownership was checked and runs are never deleted
        raise ApiError(404, "no such model", field="model_id")
    status, changed = result
    if not changed:
        raise ApiError(409, f"the run has already ended ({status})", field="model_id")
    run_changed(request, body.model_id, status)
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
    owner = current_user(request).id

    async def read() -> bytes:
        page, models = await request.app[DB].read(
            store.list_models, owner, query.page, size, query.status, query.algorithm
        )
        data = {
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
            "total_pages": page.total_pages,
            "models": models,
        }
        return plain_envelope(data)

    key = ("models", owner, query.page, size, query.status, query.algorithm)
    return json_body(await request.app[READS].fetch(key, read))


async def model_detail(request: web.Request) -> web.Response:
    model_id = path_id(request)
    detail = await request.app[DB].run(store.model_detail, current_user(request).id, model_id)
    if detail is None:
        raise ApiError(404, "no such model", field="model_id")
    return envelope(dump(api.ModelDetail, detail))


async def train_data(request: web.Request) -> web.Response:
    model_id = path_id(request)
    query = parse_query(request, api.PageQuery)
    size = _page_size(request, query)
    owner = current_user(request).id

    async def read() -> bytes:
        result = await request.app[DB].read(
            store.train_data_page, owner, model_id, query.page, size
        )
        if result is None:
            raise ApiError(404, "no such model", field="model_id")
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

    key = ("train", owner, model_id, query.page, size)
    return json_body(await request.app[READS].fetch(key, read))


async def model_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events of one run, live: each event once it is stored."""
    model_id = path_id(request)
    if await request.app[DB].run(store.model_status, current_user(request).id, model_id) is None:
        raise ApiError(404, "no such model", field="model_id")
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


async def loaded_policy(
    request: web.Request, model_id: int, version: int | None
) -> tuple[inference.LoadedPolicy, store.CheckpointRef]:
    """The model's newest (or named) checkpoint as a policy, from the cache if it can."""
    db = request.app[DB]
    ref = await db.run(store.find_checkpoint, current_user(request).id, model_id, version)
    _require_checkpoint(ref, version, version_field="checkpoint")
    cache = request.app[POLICIES]
    loaded = cache.get(model_id, ref.version)
    if loaded is None:
        meta, weights, _ = await db.run(store.checkpoint_blob, model_id, ref.version)
        loaded = await asyncio.to_thread(inference.load, model_id, ref.version, meta, weights)
        cache.put(loaded)
    return loaded, ref


async def test_model(request: web.Request) -> web.Response:
    """Run the trained policy from a given (or the seeded reset) state."""
    body = await parse_body(request, api.TestModelRequest)
    loaded, ref = await loaded_policy(request, body.model_id, body.checkpoint)
    if body.observation is not None and len(body.observation) != loaded.obs_dim:
        raise ApiError(
            400,
            f"expected a list of {loaded.obs_dim} numbers (shape [{loaded.obs_dim}]) "
            f"for {loaded.env_id}",
            field="observation",
        )
    try:
        result = await asyncio.to_thread(
            inference.run_episode,
            loaded,
            body.observation,
            body.steps,
            body.deterministic,
            ref.model_seed,
        )
    except inference.CannotSetState as exc:
        raise ApiError(422, str(exc), field="observation") from None
    return envelope(dump(api.TestModelOut, result))


async def download_checkpoint(request: web.Request) -> web.Response:
    """The policy's weights as safetensors; the header metadata `runt` holds its JSON
    description (algorithm, spaces, network, version, env steps)."""
    model_id = path_id(request)
    query = parse_query(request, api.CheckpointQuery)
    db = request.app[DB]
    ref = await db.run(store.find_checkpoint, current_user(request).id, model_id, query.version)
    _require_checkpoint(ref, query.version)
    meta, weights, env_steps = await db.run(store.checkpoint_blob, model_id, ref.version)
    body = await asyncio.to_thread(policy_file, meta, weights, ref.version, env_steps)
    name = f"runt-model-{model_id}-v{ref.version}.safetensors"
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def replay_gif(request: web.Request) -> web.Response:
    """Greedy episodes of the newest (or named) checkpoint, rendered as a GIF."""
    model_id = path_id(request)
    query = parse_query(request, api.ReplayQuery)
    db = request.app[DB]
    ref = await db.run(store.find_checkpoint, current_user(request).id, model_id, query.version)
    _require_checkpoint(ref, query.version)
    key = (model_id, ref.version, query.episodes)
    gifs = request.app[REPLAYS]
    if key not in gifs:
        meta, weights, _ = await db.run(store.checkpoint_blob, model_id, ref.version)
        try:
            frames = await asyncio.to_thread(
                render_episodes, meta, weights, query.episodes, ref.model_seed, 2
            )
        except CannotRender as exc:
            raise ApiError(422, str(exc), field="model_id") from None
        gifs[key] = await asyncio.to_thread(gif_bytes, frames)
        while len(gifs) > REPLAY_CACHE_SIZE:
            gifs.pop(next(iter(gifs)))
    return web.Response(body=gifs[key], content_type="image/gif")


def _require_checkpoint(
    ref: store.CheckpointRef | None, version: int | None, version_field: str = "version"
) -> None:
    if ref is None:
        raise ApiError(404, "no such model", field="model_id")
    if ref.version is None:
        if version is not None:
            raise ApiError(404, f"the run has no checkpoint {version}", field=version_field)
        raise ApiError(409, "the run has no checkpoint yet", field="model_id")


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
    from web.openapi import document

    return web.json_response(document())
