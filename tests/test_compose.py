"""compose.yaml is wired up: services find each other, use real config variables, and
carry no default credentials. Reads the file only; Docker is not needed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from schemas.config import env_var_names

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose.yaml"

# `${NAME:?message}` or `${NAME?message}`: compose stops when NAME is unset (or empty).
REQUIRED_VAR = re.compile(r"\$\{(\w+):?\?[^}]*\}")
REQUIRED_REF = re.compile(r"\$\w+")  # what parse_url leaves of a required variable
CREDENTIAL_KEY = re.compile(r"USER|PASS|SECRET", re.IGNORECASE)
RUNT_SERVICES = ("migrate", "web", "agent")


# ---- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def required_var(value: str) -> str | None:
    """The variable name if `value` is exactly one required interpolation, else None."""
    match = REQUIRED_VAR.fullmatch(value)
    return match.group(1) if match else None


def parse_url(url: str) -> SplitResult:
    """Split a URL whose parts may be interpolations; `${NAME:?msg}` becomes `$NAME`."""
    return urlsplit(REQUIRED_VAR.sub(r"$\1", url))


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports of a service's `ports`, short ("127.0.0.1:80:8000") or long."""
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in a command line."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    return None


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """{service: condition}; the list form means condition service_started."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """{volume name: mount path} of the service's named volumes (not bind mounts)."""
    found = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                found[entry["source"]] = entry["target"]
            continue
        source, _, rest = str(entry).partition(":")
        if rest and not source.startswith(("/", ".", "~", "$")):
            found[source] = rest.split(":")[0]
    return found


# ---- tests ---------------------------------------------------------------------------------


def test_services_exist(compose):
    assert {"rabbitmq", "mysql", "migrate", "web", "agent"} <= services(compose).keys()


def test_runt_variables_are_config_variables(compose):
    known = set(env_var_names().values())
    used = {
        (name, key)
        for name, service in services(compose).items()
        for key in environment(service)
        if key.startswith("RUNT_")
    }
    assert used, "no RUNT_* variable found in any service"
    unknown = sorted(f"{name}: {key}" for name, key in used if key not in known)
    assert not unknown, f"not a config variable (see schemas.config.env_var_names): {unknown}"


def test_runt_services_get_database_and_broker_urls(compose):
    for name in RUNT_SERVICES:
        env = environment(services(compose)[name])
        assert {"RUNT_DATABASE_URL", "RUNT_BROKER_URL"} <= env.keys(), name


def test_web_gets_required_secret_key(compose):
    env = environment(services(compose)["web"])
    assert required_var(env.get("RUNT_SECRET_KEY", "")) == "RUNT_SECRET_KEY"


def test_database_url_points_at_mysql(compose):
    mysql = services(compose)["mysql"]
    mysql_env = environment(mysql)
    for name in RUNT_SERVICES:
        url = parse_url(environment(services(compose)[name])["RUNT_DATABASE_URL"])
        assert url.scheme == "mysql+pymysql", name
        assert url.hostname == "mysql", name
        assert url.port in container_ports(mysql), name
        assert url.path == f"/{mysql_env['MYSQL_DATABASE']}", name
        assert "charset=utf8mb4" in url.query, name
        # the account the URL logs in with is the one the mysql image creates
        assert url.username == f"${required_var(mysql_env['MYSQL_USER'])}", name
        assert url.password == f"${required_var(mysql_env['MYSQL_PASSWORD'])}", name


def test_broker_url_points_at_rabbitmq(compose):
    rabbitmq = services(compose)["rabbitmq"]
    rabbitmq_env = environment(rabbitmq)
    for name in RUNT_SERVICES:
        url = parse_url(environment(services(compose)[name])["RUNT_BROKER_URL"])
        assert url.scheme == "amqp", name
        assert url.hostname == "rabbitmq", name
        assert url.port in container_ports(rabbitmq), name
        assert url.username == f"${required_var(rabbitmq_env['RABBITMQ_DEFAULT_USER'])}", name
        assert url.password == f"${required_var(rabbitmq_env['RABBITMQ_DEFAULT_PASS'])}", name


def test_backing_services_expose_their_standard_ports(compose):
    assert 5672 in container_ports(services(compose)["rabbitmq"])
    assert 3306 in container_ports(services(compose)["mysql"])


def test_web_listens_on_its_published_port(compose):
    web = services(compose)["web"]
    args = command_args(web)
    assert args[:2] == ["runt", "web"]
    assert option(args, "--host") == "0.0.0.0"  # noqa: S104 (reachable from other containers)
    port = option(args, "--port")
    assert port is not None and int(port) in container_ports(web)
    assert f"localhost:{port}/healthz" in " ".join(web["healthcheck"]["test"])


def test_web_waits_for_healthy_backends_and_migration(compose):
    assert dependencies(services(compose)["web"]) == {
        "rabbitmq": "service_healthy",
        "mysql": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert dependencies(services(compose)["migrate"]) == {"mysql": "service_healthy"}
    assert command_args(services(compose)["migrate"]) == ["runt", "db", "upgrade"]


def test_agent_waits_for_broker_and_can_scale(compose):
    agent = services(compose)["agent"]
    assert dependencies(agent).get("rabbitmq") == "service_healthy"
    assert "container_name" not in agent
    assert "ports" not in agent


@pytest.mark.parametrize("name", ["rabbitmq", "mysql", "web"])
def test_has_healthcheck(compose, name):
    healthcheck = services(compose)[name].get("healthcheck", {})
    assert healthcheck.get("test"), name
    assert not healthcheck.get("disable"), name
    assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name


def credential_problems(compose: dict[str, Any]) -> list[str]:
    """Every credential that is not exactly one required variable (`${NAME:?...}`): a
    literal, an empty value or a default (`${NAME:-guest}`)."""
    problems = []
    for name, service in services(compose).items():
        env = environment(service)
        for flag in ("MYSQL_ALLOW_EMPTY_PASSWORD", "MYSQL_RANDOM_ROOT_PASSWORD"):
            if flag in env:
                problems.append(f"{name}: {flag}")
        for key, value in env.items():
            if key.endswith("_URL"):
                url = parse_url(value)
                for part in ("username", "password"):
                    if not REQUIRED_REF.fullmatch(getattr(url, part) or ""):
                        problems.append(f"{name}: {key} {part} is not a required variable")
            elif CREDENTIAL_KEY.search(key) and not required_var(value):
                problems.append(f"{name}: {key}={value!r} is not ${{VAR:?...}}")
    return problems


def test_credentials_are_required_variables(compose):
    assert credential_problems(compose) == []
    assert "MYSQL_ROOT_PASSWORD" in environment(services(compose)["mysql"])
    rabbitmq = environment(services(compose)["rabbitmq"])
    assert {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"} <= rabbitmq.keys()
    assert "guest" not in COMPOSE_FILE.read_text()


@pytest.mark.parametrize(
    "env",
    [
        {"RABBITMQ_DEFAULT_PASS": "guest"},
        {"RABBITMQ_DEFAULT_PASS": "${RUNT_RABBITMQ_PASSWORD:-guest}"},
        {"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"},
        {"RUNT_BROKER_URL": "amqp://${RUNT_RABBITMQ_USER:?x}:${RUNT_RABBITMQ_PASSWORD:-guest}@r/"},
        {"RUNT_DATABASE_URL": "mysql+pymysql://root@mysql:3306/runt"},
    ],
)
def test_the_credential_check_finds_defaults(env):
    assert credential_problems({"services": {"x": {"environment": env}}})


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        missing = named_volumes(service).keys() - declared
        assert not missing, f"{name} uses undeclared volumes {missing}"
    assert "/var/lib/rabbitmq" in named_volumes(services(compose)["rabbitmq"]).values()
    assert "/var/lib/mysql" in named_volumes(services(compose)["mysql"]).values()
