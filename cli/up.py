"""`runt up`: everything on this machine in one process. The web service, an agent whose
actors are threads, the in-process broker and a SQLite file in the data directory, with
a secret and an `admin` user made on the first start."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from cli.agent import start_embedded_agent
from cli.serve import serve_web
from cli.users import cmd_db_upgrade
from schemas.config import Config, load_config


def embedded_config(args: argparse.Namespace, base: Config) -> Config:
    """A SQLite file and a secret of its own in the data directory."""
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


def ensure_admin(cfg: Config) -> None:
    """An `admin` user when there is no user yet, with RUNT_ADMIN_PASSWORD or a password
    shown once."""
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
    cfg = embedded_config(args, base)
    cmd_db_upgrade(cfg)
    ensure_admin(cfg)
    host = args.host or cfg.web.host
    port = args.port if args.port is not None else cfg.web.port
    agent_stop = start_embedded_agent(cfg)
    print(f"runt is up: open http://{host}:{port}/  (data in {cfg.data_dir})", flush=True)
    try:
        serve_web(cfg, host, port)  # one process: the in-process transport is its own
        return 0
    finally:
        agent_stop.set()
