"""Service configuration: YAML defaults, an optional YAML overlay, then environment variables.

The result is a frozen pydantic model; any wrong value stops start-up with a
`ConfigError` whose message names the key (and the variable it came from).
Every key is described in docs/configuration.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

ENV_PREFIX = "RUNT_"


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = Field(min_length=1, description="SQLAlchemy URL (mysql+pymysql://… or sqlite:///…)")
    pool_size: int = Field(10, ge=1, le=200)
    max_overflow: int = Field(10, ge=0, le=200)
    pool_recycle: int = Field(1800, ge=1)
    pool_timeout: float = Field(10, gt=0)
    # MySQL: the web service's reads on its event loop through asyncmy; false: on the
    # thread pool through pymysql, as the writes always are.
    async_reads: bool = True

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("mysql+pymysql://", "mariadb+pymysql://", "sqlite://")):
            raise ValueError("must start with mysql+pymysql://, mariadb+pymysql:// or sqlite://")
        return url


class BrokerConfig(_Section):
    url: str = Field(min_length=1, description="amqp://user:pass@host:port/vhost or memory://")
    prefix: str = Field("runt", pattern=r"^[A-Za-z0-9_-]{1,40}$")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("amqp://", "amqps://", "memory://")):
            raise ValueError("must start with amqp://, amqps:// or memory://")
        return url


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Processes serving the port (SO_REUSEPORT); `runt up` always runs one.
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    session_ttl_hours: float = Field(24, gt=0)
    cookie_secure: bool = False


class ApiConfig(_Section):
    default_page_size: int = Field(20, ge=1)
    max_page_size: int = Field(500, ge=1)
    # How long a web process may answer GET /models/ and train-data pages from memory when
    # no notice of a change arrived (web/events/readcache.py); 0: always read the database.
    read_cache_seconds: float = Field(1.0, ge=0, le=60)


class AuthConfig(_Section):
    login_max_failures: int = Field(5, ge=1)
    login_window_seconds: float = Field(300, gt=0)


class AssistantConfig(_Section):
    """The training assistant's optional language model (an OpenAI-compatible endpoint)."""

    llm_base_url: str = Field("", description="e.g. https://api.openai.com/v1; empty: no LLM")
    llm_model: str = ""
    llm_timeout_seconds: float = Field(20, gt=0, le=600)
    llm_api_key_env: str = Field("RUNT_LLM_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("llm_base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be empty)")
        return url

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


class SupervisionConfig(_Section):
    """How runs are watched: agents' heartbeats and starts nobody took."""

    heartbeat_seconds: float = Field(2, gt=0, le=60, description="an agent's heartbeat period")
    heartbeat_timeout_seconds: float = Field(
        15, gt=0, description="a running run whose agent is silent this long is failed"
    )
    start_retry_seconds: float = Field(
        60, gt=0, description="a run still queued this long gets its start command again"
    )

    @field_validator("heartbeat_timeout_seconds")
    @classmethod
    def _longer_than_a_beat(cls, timeout: float, info: ValidationInfo) -> float:
        beat = info.data.get("heartbeat_seconds")
        if beat is not None and timeout < 2 * beat:
            raise ValueError(f"must be at least twice heartbeat_seconds ({beat:g})")
        return timeout


class AgentConfig(_Section):
    """How an agent runs the actor processes it starts."""

    actor_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="niceness of actor processes: training is batch work, the web service "
        "interactive; 0 leaves it alone",
    )


class TrainingConfig(_Section):
    """What runs may import, and where trainers write metric files."""

    allowed_modules: tuple[str, ...] = Field(
        ("actors.networks",),
        description="module prefixes whose classes a run may name (policy.path, module:Env ids)",
    )
    metrics_dir: Path = Path("~/.local/share/runt/metrics")

    @field_validator("allowed_modules", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: "a.b,c"
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_modules")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not all(part.isidentifier() for part in prefix.split(".")):
                raise ValueError(f"{prefix!r} is not a dotted module name")
        return value


class Config(_Section):
    secret_key: str = ""
    data_dir: Path = Path("~/.local/share/runt")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    database: DatabaseConfig
    broker: BrokerConfig
    web: WebConfig = WebConfig()
    api: ApiConfig = ApiConfig()
    auth: AuthConfig = AuthConfig()
    assistant: AssistantConfig = AssistantConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    training: TrainingConfig = TrainingConfig()
    agent: AgentConfig = AgentConfig()

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, key: str) -> str:
        if key and len(key) < 16:
            raise ValueError("must be at least 16 characters (or empty: `runt up` makes one)")
        return key

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, level: Any) -> Any:
        return level.upper() if isinstance(level, str) else level

    def require_secret(self) -> None:
        if not self.secret_key:
            raise ConfigError("secret_key: not set; export RUNT_SECRET_KEY (16+ characters)")


def default_config_path() -> Path:
    from configs import CONFIG_DIR

    return CONFIG_DIR / "runt.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must hold a mapping of keys")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_var_names() -> dict[str, str]:
    """Map every config key (dotted) to the environment variable that overrides it."""
    names: dict[str, str] = {}
    for name, field in Config.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Section):
            for sub in annotation.model_fields:
                names[f"{name}.{sub}"] = f"{ENV_PREFIX}{name}_{sub}".upper()
        else:
            names[name] = f"{ENV_PREFIX}{name}".upper()
    return names


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Write environment overrides into `data`; return {dotted key: variable} of those used."""
    used: dict[str, str] = {}
    for dotted, var in env_var_names().items():
        if var not in environ:
            continue
        section, _, key = dotted.partition(".")
        if key:
            data.setdefault(section, {})[key] = environ[var]
        else:
            data[section] = environ[var]
        used[dotted] = var
    return used


def load_config(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Defaults from configs/runt.yaml, then `path` (or $RUNT_CONFIG), then the environment,
    then `overrides` (used by `runt up` and tests)."""
    environ = dict(os.environ if environ is None else environ)
    data = _read_yaml(default_config_path())
    path = path or environ.get("RUNT_CONFIG")
    if path:
        data = _merge(data, _read_yaml(Path(path)))
    from_env = _apply_env(data, environ)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, from_env)) from None


def _describe(exc: ValidationError, from_env: dict[str, str]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        source = f" (from {from_env[key]})" if key in from_env else ""
        lines.append(f"config key {key}{source}: {err['msg']}")
    return "; ".join(lines)
