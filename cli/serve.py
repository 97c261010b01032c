"""Serving the web app in this process: `runt web` (each of its workers) and `runt up`."""

from __future__ import annotations

import gc
import logging

from schemas.config import Config

log = logging.getLogger("runt")


def serve_web(cfg: Config, host: str, port: int, worker: int = 0, workers: int = 1) -> None:
    """Serve the web app in this process until SIGINT/SIGTERM. Worker 0 is the primary
    (event log, supervisor); the others only answer requests."""
    from aiohttp import web

    from actors.threads import single_threaded
    from web.app import init_app

    # Small networks: one compute thread is faster than sharing every core (inference
    # threads set torch's for themselves too; that setting is per thread).
    single_threaded()
    app = init_app(cfg, worker=worker)
    # Everything imported so far (torch, gymnasium, ...) lives as long as the process:
    # out of the collector's reach, a full collection no longer walks it (tens of ms,
    # during which no request was answered).
    gc.freeze()
    web.run_app(
        app,
        loop=_event_loop(),
        host=host,
        port=port,
        reuse_port=workers > 1,
        access_log=None,
        print=lambda msg: log.info(msg.strip()),
    )


def _event_loop():
    """uvloop where it is installed (libuv's loop: a request costs the web service less
    CPU), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
