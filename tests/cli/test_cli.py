"""The `runt` command (cli/main.py), run as a user would: in a subprocess, talking HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import SECRET
from tests.services import free_port, stop, wait_until_healthy
from tests.web.helpers import env_for

RUNT = [sys.executable, "-m", "cli.main"]


def runt(*args: str, env: dict[str, str], stdin: str | None = None):
    return subprocess.run(
        [*RUNT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


MIGRATIONS = Path(__file__).resolve().parents[2] / "web" / "db" / "migrations" / "versions"


async def test_user_add_then_login_over_http_with_form_and_json(db_url):
    env = env_for(db_url, RUNT_SECRET_KEY=SECRET)
    upgraded = runt("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    newest = max(p.name[:4] for p in MIGRATIONS.glob("[0-9]*.py"))
    assert f"revision {newest}" in upgraded.stdout
    added = runt("user", "add", "dana", "--password-stdin", env=env, stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    assert "s3cret-pass" not in added.stdout + added.stderr

    port = free_port()
    proc = subprocess.Popen(
        [*RUNT, "web", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        # unsafe=True: aiohttp's jar otherwise ignores cookies from IP-address hosts
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            form = {"username": "dana", "password": "s3cret-pass"}
            async with http.post(f"{base}/login/", data=form) as resp:
                assert resp.status == 200
                token = (await resp.json())["data"]["token"]
            async with http.get(f"{base}/models/") as resp:  # the cookie from the form login
                assert resp.status == 200
            async with aiohttp.ClientSession() as fresh:
                async with fresh.post(f"{base}/login", json=form) as resp:
                    assert resp.status == 200
                headers = {"Authorization": f"Bearer {token}"}
                async with fresh.get(f"{base}/models", headers=headers) as resp:
                    assert resp.status == 200
    finally:
        stop(proc)


def test_user_add_twice_changes_the_password(db_url):
    env = env_for(db_url)
    assert (
        runt("user", "add", "erin", "--password-stdin", env=env, stdin="first-pass\n").returncode
        == 0
    )
    again = runt("user", "add", "erin", "--password-stdin", env=env, stdin="second-pass\n")
    assert again.returncode == 0 and "password changed" in again.stdout


def test_user_add_refuses_a_short_password(tmp_path):
    env = env_for(f"sqlite:///{tmp_path / 'x.db'}")
    result = runt("user", "add", "fay", "--password-stdin", env=env, stdin="short\n")
    assert result.returncode != 0 and "password" in result.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"RUNT_WEB_PORT": "eighty", "RUNT_SECRET_KEY": SECRET}, "web.port (from RUNT_WEB_PORT)"),
        ({}, "secret_key"),
    ],
)
def test_web_refuses_to_start_with_a_bad_config(tmp_path, extra, named):
    env = env_for(f"sqlite:///{tmp_path / 'x.db'}", **extra)
    result = runt("web", env=env)
    assert result.returncode == 2
    assert named in result.stderr


def test_log_level_flag_gives_structured_debug_logs(tmp_path):
    env = env_for(f"sqlite:///{tmp_path / 'x.db'}")
    result = runt("--log-level", "DEBUG", "db", "upgrade", env=env)
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records, result.stderr
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["level"] == "DEBUG" for r in records)


async def test_up_creates_an_admin_once_and_serves(tmp_path: Path):
    data_dir = tmp_path / "data"
    port = free_port()
    env = env_for("sqlite:///unused.db")

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [*RUNT, "up", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    proc = start()
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        password = re.search(r"password: (\S+)", "".join(lines)).group(1)
        wait_until_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            body = {"username": "admin", "password": password}
            async with http.post(f"http://127.0.0.1:{port}/login/", json=body) as resp:
                assert resp.status == 200
    finally:
        stop(proc)
    assert (data_dir / "runt.sqlite3").exists()
    assert oct((data_dir / "secret_key").stat().st_mode & 0o777) == "0o600"

    proc = start()  # a second start keeps the admin and says nothing of a password
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert not any("password" in line for line in lines)
        wait_until_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/login/", json=body) as resp:
                assert resp.status == 200  # same secret, same user, still valid
    finally:
        stop(proc)
