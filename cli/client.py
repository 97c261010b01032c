"""`runt train FILE.yaml [--follow]`: submit a run described in YAML through the REST
API, then show its progress until it ends.

The YAML holds the fields of POST /train/ (see configs/dqn_cartpole.yaml). The server is
`--url` (default http://127.0.0.1:8000); credentials come from `--token` / RUNT_TOKEN,
or `--user` with the password from RUNT_PASSWORD or a prompt.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

TERMINAL = ("completed", "stopped", "failed")


class ApiFailure(RuntimeError):
    pass


class Client:
    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own server
            self.base_url + path, data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
                return json.loads(resp.read())["data"]
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["message"]
            except ValueError:
                message = exc.reason
            raise ApiFailure(f"{method} {path}: {exc.code} {message}") from None
        except urllib.error.URLError as exc:
            raise ApiFailure(f"cannot reach {self.base_url}: {exc.reason}") from None

    def login(self, username: str, password: str) -> None:
        self.token = self.call("POST", "/login/", {"username": username, "password": password})[
            "token"
        ]


def load_run_file(path: str) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ApiFailure(f"{path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ApiFailure(f"{path}: must hold a mapping of POST /train/ fields")
    return spec


def progress_line(model: dict[str, Any], recent_mean: float | None) -> str:
    done, target = model["current_episode"], model["target_episode"]
    width = 30
    filled = int(width * min(done / target, 1.0)) if target else 0
    metrics = model.get("metrics") or {}
    parts = [
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{target} episodes",
        f"mean reward {recent_mean:.1f}" if recent_mean is not None else "mean reward -",
    ]
    if "charts/env_steps_per_s" in metrics:
        parts.append(f"{metrics['charts/env_steps_per_s']:.0f} steps/s")
    if model.get("last_eval_return") is not None:
        parts.append(f"eval {model['last_eval_return']:.1f}")
    parts.append(model["status"])
    return "  ".join(parts)


def follow(client: Client, model_id: int, interval: float = 1.0, out=sys.stdout) -> dict:
    """Print progress until the run ends; return the final model."""
    while True:
        model = client.call("GET", f"/models/{model_id}/")
        recent_mean = None
        done = model["current_episode"]
        if done:
            page = (done - 1) // 20 + 1
            rows = client.call("GET", f"/models/{model_id}/train-data/?page={page}&page_size=20")
            rewards = [r["reward"] for r in rows["train_data"]]
            recent_mean = sum(rewards) / len(rewards) if rewards else None
        end = "\n" if model["status"] in TERMINAL or not out.isatty() else ""
        print("\r" + progress_line(model, recent_mean), end=end, file=out, flush=True)
        if model["status"] in TERMINAL:
            return model
        time.sleep(interval)


def main_train(args) -> int:
    client = Client(args.url, args.token or os.environ.get("RUNT_TOKEN"))
    try:
        if not client.token:
            user = args.user or os.environ.get("RUNT_USER") or input("Username: ")
            password = os.environ.get("RUNT_PASSWORD") or getpass.getpass("Password: ")
            client.login(user, password)
        created = client.call("POST", "/train/", load_run_file(args.file))
        print(f"run {created['id']} {created['status']}")
        if not args.follow:
            return 0
        final = follow(client, created["id"])
    except ApiFailure as exc:
        print(f"runt: {exc}", file=sys.stderr)
        return 1
    if final.get("status_reason"):
        print(f"reason: {final['status_reason']}")
    return 0 if final["status"] in ("completed", "stopped") else 1
