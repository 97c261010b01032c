"""Every endpoint in one table: path, handler, and the schemas the OpenAPI document is
generated from. Each path answers with and without its trailing slash."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from schemas import api
from web import dashboard, views
from web.assistant.view import training_assistant
from web.http import Handler
from web.metrics import metrics
from web.presets import list_presets


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    data: Any = None
    success: int = 200
    errors: tuple[int, ...] = ()
    public: bool = False
    enveloped: bool = True
    media_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())


ROUTES: tuple[Route, ...] = (
    Route("POST", "/login/", views.login, "Log in; returns a token and sets a session cookie",
          body=api.LoginRequest, data=api.LoginOut, errors=(400, 401, 429), public=True,
          tags=("auth",)),
    Route("POST", "/logout/", views.logout, "End the current session", tags=("auth",)),
    Route("POST", "/train/", views.train, "Create a training run (queued)",
          body=api.TrainRequest, data=api.TrainOut, success=201, errors=(400,),
          tags=("runs",)),
    Route("POST", "/stop-train/", views.stop_train, "Stop a training run",
          body=api.StopRequest, data=api.TrainOut, errors=(400, 404, 409), tags=("runs",)),
    Route("POST", "/testmodel/", views.test_model,
          "Run the trained policy from a given start state (or the seeded reset)",
          body=api.TestModelRequest, data=api.TestModelOut, errors=(400, 404, 409, 422),
          tags=("inference",)),
    Route("GET", "/models/{model_id}/checkpoint", views.download_checkpoint,
          "The policy weights as safetensors, described by JSON in its header metadata",
          query=api.CheckpointQuery, errors=(400, 404, 409), enveloped=False,
          media_type="application/octet-stream", tags=("inference",)),
    Route("GET", "/models/{model_id}/replay.gif", views.replay_gif,
          "Greedy episodes of the trained policy, rendered as a GIF",
          query=api.ReplayQuery, errors=(400, 404, 409, 422), enveloped=False,
          media_type="image/gif", tags=("inference",)),
    Route("GET", "/models/", views.list_models, "The user's training runs, newest first",
          query=api.ModelsQuery, data=api.ModelPage, errors=(400,), tags=("runs",)),
    Route("GET", "/models/{model_id}/", views.model_detail, "One training run",
          data=api.ModelDetail, errors=(400, 404), tags=("runs",)),
    Route("GET", "/models/{model_id}/train-data/", views.train_data,
          "Episode rewards of a run, by episode", query=api.PageQuery, data=api.TrainDataPage,
          errors=(400, 404), tags=("runs",)),
    Route("GET", "/models/{model_id}/events", views.model_events,
          "Live events of a run as server-sent events (episode, metrics, evaluation, status)",
          errors=(400, 404), enveloped=False, media_type="text/event-stream", tags=("runs",)),
    Route("POST", "/trainingassistent/", training_assistant,
          "Streamed advice on a run (Markdown as text/plain chunks, or SSE when asked)",
          body=api.AssistantRequest, errors=(400, 404), enveloped=False,
          media_type="text/plain", tags=("assistant",)),
    Route("GET", "/metrics", metrics, "Counters of the event log and of rejected messages",
          data=api.MetricsOut, tags=("service",)),
    Route("GET", "/presets/", list_presets,
          "Training presets (configs/*.yaml): POST /train/ fields to start a run from",
          data=api.PresetList, tags=("runs",)),
    Route("GET", "/", dashboard.index,
          "The browser dashboard (its scripts and styles are under /static/)",
          public=True, enveloped=False, media_type="text/html", tags=("dashboard",)),
    Route("GET", "/healthz", views.healthz, "Database and broker reachability",
          data=api.HealthOut, errors=(503,), public=True, tags=("service",)),
    Route("GET", "/openapi.json", views.openapi, "This API as an OpenAPI 3.1 document",
          public=True, enveloped=False, tags=("service",)),
)  # fmt: skip


def path_variants(path: str) -> tuple[str, ...]:
    if path.endswith("/") and path != "/":
        return path, path.rstrip("/")
    return (path,)


# The dashboard's files: public, and not part of the API document.
STATIC_ROUTE = dashboard.STATIC_PREFIX + "{path:.+}"


def setup_routes(app: web.Application) -> frozenset[str]:
    """Register every route; return the set of paths that need no session."""
    public: set[str] = set()
    for route in ROUTES:
        for path in path_variants(route.path):
            app.router.add_route(route.method, path, route.handler)
            if route.public:
                public.add(path)
    static = app.router.add_route("GET", STATIC_ROUTE, dashboard.static_file)
    public.add(static.resource.canonical)
    return frozenset(public)
