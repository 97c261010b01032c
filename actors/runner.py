"""Entry point of an actor process: `python -m actors.runner --role R ...` with the run's
spec as JSON on stdin and the broker settings in RUNT_* environment variables.

SIGTERM asks the actor to finish (the trainer still writes its final checkpoint)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

import torch

from actors.settings import configure
from broker.sync import make_bus
from broker.topology import Topology
from schemas.config import load_config
from schemas.logs import setup_logging
from schemas.messages import RunSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="actors.runner")
    parser.add_argument("--role", required=True, choices=["trainer", "buffer", "rollout"])
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--agent", default="")
    args = parser.parse_args(argv)

    cfg = load_config()
    setup_logging(cfg.log_level, cfg.log_format)
    configure(cfg.training)  # the agent host's allow-list and metrics directory
    spec = RunSpec.model_validate_json(sys.stdin.read())
    # Actors share the machine's cores with each other; one thread each avoids
    # oversubscription (torch would otherwise start a thread per core in every process).
    torch.set_num_threads(1)

    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())

    from actors.registry import make_actor

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
    )
    try:
        actor.run()
    except Exception:
        return 1
    return 0


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: the actor has closed its connection and
    flushed its logs, and unloading torch can take seconds the agent would wait for."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
