"""The `runt` command.

runt [--config FILE] [--log-level LEVEL] web           the web service
runt db upgrade                                        create or migrate the schema
runt user add NAME [--password-stdin]                  add a user (or reset a password)
runt up                                                everything on this machine
"""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import secrets
import sys
from pathlib import Path

from actors.settings import configure as configure_actors
from schemas.config import Config, ConfigError, load_config
from schemas.logs import setup_logging

log = logging.getLogger("runt")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runt", description="RL training as a service")
    parser.add_argument("--config", help="YAML file merged over configs/runt.yaml")
    parser.add_argument(
        "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    web_cmd = sub.add_parser("web", help="run the web service")
    web_cmd.add_argument("--host")
    web_cmd.add_argument("--port", type=int)

    db_cmd = sub.add_parser("db", help="database schema")
    db_sub = db_cmd.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or migrate the schema to the newest revision")

    user_cmd = sub.add_parser("user", help="user accounts")
    user_sub = user_cmd.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="add a user, or set the password of an existing one")
    add.add_argument("name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    agent = sub.add_parser("agent", help="run an agent: starts and supervises actors")
    agent.add_argument("--name", help="this agent's name in logs and status reasons")
    agent.add_argument(
        "--max-restarts", type=int, default=3, help="restarts of a crashed rollout worker"
    )

    export = sub.add_parser("export", help="write a trained policy for use outside runt")
    export.add_argument("model_id", type=int)
    export.add_argument("--format", choices=["torchscript", "safetensors"], default="torchscript")
    export.add_argument("--out", help="file to write (default: model-<id>.<ext>)")
    export.add_argument("--version", type=int, help="checkpoint version (default: newest)")

    visualize = sub.add_parser("visualize", help="render episodes of a trained policy")
    visualize.add_argument("model_id", type=int)
    visualize.add_argument("--out", default="agent.gif", help=".gif, or .mp4 with imageio")
    visualize.add_argument("--episodes", type=int, default=1)
    visualize.add_argument("--version", type=int, help="checkpoint version (default: newest)")

    train = sub.add_parser("train", help="submit a run described in a YAML file")
    train.add_argument("file", help="YAML with the fields of POST /train/")
    train.add_argument("--follow", action="store_true", help="show progress until it ends")
    train.add_argument("--url", default="http://127.0.0.1:8000", help="the runt web service")
    train.add_argument("--token", help="session token (or RUNT_TOKEN)")
    train.add_argument("--user", help="log in as this user (password from RUNT_PASSWORD)")

    up = sub.add_parser("up", help="web service with a SQLite file, all on this machine")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--data-dir", help="where the SQLite file and generated secret live")
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise SystemExit("passwords differ")
    if len(password) < 8:
        raise SystemExit("password: must be at least 8 characters")
    return password


def cmd_user_add(cfg: Config, name: str, from_stdin: bool) -> int:
    from web.auth import hash_password
    from web.db import store
    from web.db.engine import Database

    name = name.strip()
    if not 1 <= len(name) <= 150:
        raise SystemExit("name: must be 1 to 150 characters")
    password_hash = hash_password(_read_password(from_stdin))
    db = Database(cfg.database)
    try:
        try:
            user_id = db.call(store.add_user, name, password_hash)
            print(f"user {name!r} added (id {user_id})")
        except store.UsernameTaken:
            db.call(store.set_password, name, password_hash)
            print(f"user {name!r} exists; password changed")
    finally:
        db.close()
    return 0


def cmd_db_upgrade(cfg: Config) -> int:
    from web.db.migrate import upgrade

    revision = upgrade(cfg.database)
    print(f"database schema at revision {revision}")
    return 0


def cmd_web(cfg: Config, host: str | None, port: int | None) -> int:
    host = host or cfg.web.host
    port = port if port is not None else cfg.web.port
    if cfg.web.workers == 1:
        serve_web(cfg, host, port)
        return 0
    if port == 0:
        raise ConfigError("web.port: several web.workers need a fixed port, not 0")
    from cli.workers import run_workers

    return run_workers(cfg, host, port, cfg.web.workers)


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


def _checkpoint(cfg: Config, model_id: int, version: int | None) -> tuple[dict, bytes, int, int]:
    """(meta, weights, version, env_steps) of a model's checkpoint, from the database."""
    from web.db import store
    from web.db.engine import Database

    db = Database(cfg.database)
    try:
        version = (
            version if version is not None else db.call(store.newest_checkpoint_version, model_id)
        )
        if version is None:
            raise SystemExit(f"model {model_id}: no checkpoint yet")
        try:
            meta, weights, env_steps = db.call(store.checkpoint_blob, model_id, version)
        except Exception:
            raise SystemExit(f"model {model_id}: no checkpoint {version}") from None
    finally:
        db.close()
    return meta, weights, version, env_steps


def cmd_export(cfg: Config, args: argparse.Namespace) -> int:
    from actors.export.checkpoints import policy_file, torchscript

    meta, weights, version, env_steps = _checkpoint(cfg, args.model_id, args.version)
    if args.format == "torchscript":
        out = Path(args.out or f"model-{args.model_id}.pt")
        torchscript(meta, weights).save(str(out))
        print(f"wrote {out}: TorchScript, observations (batch, {meta['network']['obs_dim']})"
              " -> greedy actions; load with torch.jit.load")  # fmt: skip
    else:
        out = Path(args.out or f"model-{args.model_id}.safetensors")
        out.write_bytes(policy_file(meta, weights, version, env_steps))
        print(f"wrote {out}: safetensors weights, described in its metadata")
    return 0


def cmd_visualize(cfg: Config, args: argparse.Namespace) -> int:
    from actors.export.visualize import CannotRender, render_episodes, write

    meta, weights, _, _ = _checkpoint(cfg, args.model_id, args.version)
    try:
        frames = render_episodes(meta, weights, episodes=max(1, args.episodes))
        write(frames, Path(args.out))
    except CannotRender as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {args.out}: {len(frames)} frames of {args.episodes} episode(s)")
    return 0


def actor_environment(cfg: Config, config_file: str | None) -> dict[str, str]:
    """What actor processes need to find the broker: the effective settings, passed
    through the environment (never on a command line, where `ps` shows them)."""
    import os

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
    import signal
    import threading

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


def start_embedded_agent(cfg: Config):
    """The agent of `runt up`: a thread of this process whose actors are threads too,
    on the in-process broker. Returns the event that stops it."""
    import threading

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


def _embedded_config(args: argparse.Namespace, base: Config) -> Config:
    """`runt up`: a SQLite file and a secret of its own in the data directory."""
    data_dir = Path(args.data_dir or base.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_file = data_dir / "secret_key"
    if not base.secret_key and not secret_file.exists():
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(32))
    overrides: dict = {
        "data_dir": str(data_dir),
        "database": {"url": f"sqlite:///{data_dir / 'runt.sqlite3'}"},
        "broker": {"url": "memory://"},
    }
    if not base.secret_key:
        overrides["secret_key"] = secret_file.read_text().strip()
    return load_config(args.config, overrides=overrides)


def _ensure_admin(cfg: Config) -> None:
    import os

    from web.auth import hash_password
    from web.db import store
    from web.db.engine import Database

    db = Database(cfg.database)
    try:
        if db.call(store.count_users):
            return
        password = os.environ.get("RUNT_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        db.call(store.add_user, "admin", hash_password(password))
    finally:
        db.close()
    if "RUNT_ADMIN_PASSWORD" in os.environ:
        print("created user 'admin' with the password from RUNT_ADMIN_PASSWORD")
    else:
        print(f"created user 'admin' with password: {password}  (shown only this once)")


def cmd_up(args: argparse.Namespace, base: Config) -> int:
    cfg = _embedded_config(args, base)
    cmd_db_upgrade(cfg)
    _ensure_admin(cfg)
    host = args.host or cfg.web.host
    port = args.port if args.port is not None else cfg.web.port
    agent_stop = start_embedded_agent(cfg)
    print(f"runt is up: open http://{host}:{port}/  (data in {cfg.data_dir})", flush=True)
    try:
        serve_web(cfg, host, port)  # one process: the in-process transport is its own
        return 0
    finally:
        agent_stop.set()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        setup_logging(args.log_level or cfg.log_level, cfg.log_format)
        configure_actors(cfg.training)  # what runs may import, where metric files go
        if args.command == "web":
            cfg.require_secret()
            return cmd_web(cfg, args.host, args.port)
        if args.command == "db":
            return cmd_db_upgrade(cfg)
        if args.command == "user":
            return cmd_user_add(cfg, args.name, args.password_stdin)
        if args.command == "up":
            return cmd_up(args, cfg)
        if args.command == "agent":
            return cmd_agent(cfg, args)
        if args.command == "export":
            return cmd_export(cfg, args)
        if args.command == "visualize":
            return cmd_visualize(cfg, args)
        if args.command == "train":
            from cli.client import main_train

            return main_train(args)
    except ConfigError as exc:
        print(f"runt: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
