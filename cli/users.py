"""`runt user add` and `runt db upgrade`: the service's accounts and its database schema."""

from __future__ import annotations

import getpass
import sys

from schemas.config import Config


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
