"""The `runt` command: the options of every subcommand, and the module that runs it.

runt [--config FILE] [--log-level LEVEL] COMMAND ...
  web                      the web service                    cli/workers.py, cli/serve.py
  db upgrade               create or migrate the schema       cli/users.py
  user add NAME            add a user, or set a password      cli/users.py
  agent                    start and supervise actors         cli/agent.py
  export, visualize ID     a trained policy as a file         cli/export.py
  train FILE.yaml          submit a run to the web service    cli/client.py
  up                       everything on this machine         cli/up.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from actors.settings import configure as configure_actors
from cli.agent import cmd_agent
from cli.client import main_train
from cli.export import cmd_export, cmd_visualize
from cli.up import cmd_up
from cli.users import cmd_db_upgrade, cmd_user_add
from cli.workers import cmd_web
from schemas.config import Config, ConfigError, load_config
from schemas.logs import setup_logging


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


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "web": lambda cfg, args: cmd_web(cfg, args.host, args.port),
    "db": lambda cfg, args: cmd_db_upgrade(cfg),
    "user": lambda cfg, args: cmd_user_add(cfg, args.name, args.password_stdin),
    "up": lambda cfg, args: cmd_up(args, cfg),
    "agent": cmd_agent,
    "export": cmd_export,
    "visualize": cmd_visualize,
    "train": lambda cfg, args: main_train(args),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        setup_logging(args.log_level or cfg.log_level, cfg.log_format)
        configure_actors(cfg.training)  # what runs may import, where metric files go
        return COMMANDS[args.command](cfg, args)
    except ConfigError as exc:
        print(f"runt: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
