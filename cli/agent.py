"""`runt agent`: an agent that starts and supervises actor processes; and the agent of
`runt up`, a thread whose actors are threads on the in-process broker."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import threading
from pathlib import Path

from schemas.config import Config


def actor_environment(cfg: Config, config_file: str | None) -> dict[str, str]:
    """What actor processes need to find the broker: the effective settings, passed
    through the environment (never on a command line, where `ps` shows them)."""
    env = dict(os.environ)
    env.update(
        RUNT_BROKER_URL=cfg.broker.url,
        RUNT_BROKER_PREFIX=cfg.broker.prefix,
        RUNT_LOG_LEVEL=cfg.log_level,
        RUNT_LOG_FORMAT=cfg.log_format,
        RUNT_AGENT_ACTOR_NICE=str(cfg.agent.actor_nice),
    )
    if config_file:
        env["RUNT_CONFIG"] = str(Path(config_file).resolve())
    return env


def cmd_agent(cfg: Config, args: argparse.Namespace) -> int:
    from actors.agent.agent import Agent
    from actors.agent.launch import ProcessLauncher
    from broker.sync import make_bus
    from broker.topology import Topology

    topology = Topology(cfg.broker.prefix)
    name = args.name or f"agent-{secrets.token_hex(3)}"
    agent = Agent(
        make_bus(cfg.broker.url, topology, name=name),
        topology,
        ProcessLauncher(name, actor_environment(cfg, args.config)),
        name=name,
        max_restarts=args.max_restarts,
        heartbeat_seconds=cfg.supervision.heartbeat_seconds,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.run(stop)
    return 0


def start_embedded_agent(cfg: Config) -> threading.Event:
    """The agent of `runt up`: a thread of this process whose actors are threads too,
    on the in-process broker. Returns the event that stops it."""
    from actors.agent.agent import Agent
    from actors.agent.launch import ThreadLauncher
    from broker.sync import make_bus
    from broker.topology import Topology

    topology = Topology(cfg.broker.prefix)
    agent = Agent(
        make_bus(cfg.broker.url, topology, name="agent-embedded"),
        topology,
        ThreadLauncher(
            "embedded", lambda name: make_bus(cfg.broker.url, topology, name=name), topology
        ),
        name="embedded",
        heartbeat_seconds=cfg.supervision.heartbeat_seconds,
    )
    stop = threading.Event()
    threading.Thread(target=agent.run, args=(stop,), name="agent", daemon=True).start()
    agent.started.wait(10)
    return stop
