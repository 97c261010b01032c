"""`runt web`: this process serves, or with `web.workers` > 1 several serve one port.

One Python process answers requests on one core at most; a service with more traffic
than that runs several. Each worker is a fresh interpreter (multiprocessing's spawn)
running `serve_web` on the same port with SO_REUSEPORT, so the kernel spreads the
connections over them. Worker 0 is the primary: it also runs the event log and the
supervisor of runs. Dashboards' live streams work on any worker (web/events/live.py).

This process only watches the workers: one that exits is started again, unless it keeps
exiting right after its start (a port taken, a bad setting), which ends the service;
SIGINT or SIGTERM stops them all, each finishing gracefully. Workers whose main process
was killed outright stop by themselves within a second.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from multiprocessing.process import BaseProcess

from actors.settings import configure as configure_actors
from cli.serve import serve_web
from schemas.config import Config, ConfigError
from schemas.logs import setup_logging

log = logging.getLogger("runt.web")

QUICK_EXIT_S = 10.0  # a worker exiting sooner than this after its start failed to start
MAX_QUICK_EXITS = 3  # ... and this many such exits in a row end the service
STOP_TIMEOUT_S = 15.0  # a worker still running this long after SIGTERM is killed
PARENT_CHECK_S = 1.0


def cmd_web(cfg: Config, host: str | None, port: int | None) -> int:
    """Serve here with one worker; else start the workers and watch them."""
    cfg.require_secret()
    host = host or cfg.web.host
    port = port if port is not None else cfg.web.port
    if cfg.web.workers == 1:
        serve_web(cfg, host, port)
        return 0
    if port == 0:
        raise ConfigError("web.port: several web.workers need a fixed port, not 0")
    return run_workers(cfg, host, port, cfg.web.workers)


def _worker_main(cfg: Config, host: str, port: int, worker: int, workers: int, level: str):
    setup_logging(level, cfg.log_format)
    configure_actors(cfg.training)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    serve_web(cfg, host, port, worker, workers)


def _end_with_parent(parent: int) -> None:
    """A worker whose parent is gone (killed outright) ends itself gracefully instead of
    serving the port on its own."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    log.warning("the web service's main process is gone; this worker stops")
    os.kill(os.getpid(), signal.SIGTERM)


class _Workers:
    def __init__(self, cfg: Config, host: str, port: int, count: int):
        self.args = (cfg, host, port)
        self.count = count
        self.level = logging.getLevelName(logging.getLogger().level)
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[int, tuple[BaseProcess, float]] = {}
        self.quick_exits: Counter = Counter()

    def start(self, worker: int) -> None:
        process = self.context.Process(
            target=_worker_main,
            args=(*self.args, worker, self.count, self.level),
            name=f"runt-web-{worker}",
        )
        process.start()
        self.running[worker] = (process, time.monotonic())

    def restart_exited(self) -> bool:
        """Start again the workers that exited; False when one keeps failing to start."""
        for worker, (process, started) in list(self.running.items()):
            if process.is_alive():
                continue
            if time.monotonic() - started < QUICK_EXIT_S:
                self.quick_exits[worker] += 1
                if self.quick_exits[worker] >= MAX_QUICK_EXITS:
                    log.error(
                        "web worker %d exited %d times right after its start (exit code %s)",
                        worker, MAX_QUICK_EXITS, process.exitcode,
                    )  # fmt: skip
                    return False
            else:
                self.quick_exits[worker] = 0
            log.warning("web worker %d exited (code %s); starting again", worker, process.exitcode)
            self.start(worker)
        return True

    def stop(self) -> None:
        for process, _ in self.running.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: aiohttp shuts the app down gracefully
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process, _ in self.running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def run_workers(cfg: Config, host: str, port: int, count: int) -> int:
    workers = _Workers(cfg, host, port, count)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    healthy = True
    try:
        for worker in range(count):
            workers.start(worker)
        log.info("%d web workers on http://%s:%d/", count, host, port)
        while not stopping and healthy:
            time.sleep(0.2)
            healthy = workers.restart_exited()
    finally:
        workers.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if healthy else 1
