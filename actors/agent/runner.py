"""Entry point of an actor process: `python -m actors.agent.runner --role R ...` with the run's
spec as JSON on stdin and the broker settings in RUNT_* environment variables.

SIGTERM asks the actor to finish (the trainer still writes its final checkpoint). An
actor whose agent is gone leaves at once, without a word: it was the agent's to watch,
and the web service fails the run when the agent's heartbeats stop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from actors.settings import configure
from actors.threads import single_threaded
from broker.sync import make_bus
from broker.topology import Topology
from schemas.config import load_config
from schemas.logs import setup_logging
from schemas.messages import RunSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="actors.agent.runner")
    parser.add_argument(
        "--role", required=True, choices=["trainer", "buffer", "rollout", "evaluator"]
    )
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--agent", default="")
    parser.add_argument("--work-dir", default=None, help="where a restarted actor continues from")
    args = parser.parse_args(argv)
    watch_parent(os.getppid())

    cfg = load_config()
    lower_priority(cfg.agent.actor_nice)
    setup_logging(cfg.log_level, cfg.log_format)
    configure(cfg.training)  # the agent host's allow-list and metrics directory
    spec = RunSpec.model_validate_json(sys.stdin.read())
    single_threaded()  # actors share the machine's cores (actors/threads.py)

    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())

    from actors.roles.factory import make_actor

    topology = Topology(cfg.broker.prefix)
    bus = make_bus(cfg.broker.url, topology, name=f"{args.role}-{spec.run_id}-{args.worker}")
    actor = make_actor(
        args.role,
        spec,
        bus,
        topology,
        worker=args.worker,
        incarnation=args.incarnation,
        stop_event=stop_event,
        agent=args.agent,
        work_dir=args.work_dir,
    )
    try:
        actor.run()
    except Exception:
        return 1
    return 0


def lower_priority(nice: int) -> None:
    """Run at niceness `nice` (0: as started): training is batch work and should give way
    to the web service and the database on a shared machine. A process started nicer
    stays so; only a privileged one could lower it again."""
    if nice and hasattr(os, "setpriority"):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def watch_parent(parent: int, every: float = 0.5) -> None:
    """Leave as soon as the process that started this one (the agent) has gone: an
    orphaned trainer would go on publishing for a run nobody supervises."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        logging.getLogger("runt.actor").error("the agent (pid %d) is gone; leaving", parent)
        exit_now(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: the actor has closed its connection and
    flushed its logs, and unloading torch can take seconds the agent would wait for."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
