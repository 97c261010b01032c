"""Configuration: defaults, YAML overlay, environment overrides, validation messages."""

from __future__ import annotations

import pytest

from schemas.config import ConfigError, env_var_names, load_config


def test_defaults_load_from_the_shipped_yaml():
    cfg = load_config(environ={})
    assert cfg.database.url.startswith("mysql+pymysql://")
    assert cfg.broker.url.startswith("amqp://")
    assert cfg.web.port == 8000
    assert cfg.api.max_page_size >= 100


def test_environment_overrides_the_yaml():
    cfg = load_config(
        environ={
            "RUNT_DATABASE_URL": "sqlite:///x.db",
            "RUNT_BROKER_URL": "memory://",
            "RUNT_SECRET_KEY": "s" * 20,
            "RUNT_WEB_PORT": "9001",
            "RUNT_API_MAX_PAGE_SIZE": "50",
            "RUNT_LOG_LEVEL": "debug",
        }
    )
    assert cfg.database.url == "sqlite:///x.db"
    assert cfg.broker.url == "memory://"
    assert cfg.secret_key == "s" * 20
    assert cfg.web.port == 9001
    assert cfg.api.max_page_size == 50
    assert cfg.log_level == "DEBUG"


def test_a_yaml_file_is_merged_over_the_defaults(tmp_path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text("web:\n  port: 8123\napi:\n  default_page_size: 7\n")
    cfg = load_config(overlay, environ={})
    assert (cfg.web.port, cfg.api.default_page_size) == (8123, 7)
    assert cfg.web.host == "127.0.0.1"  # untouched keys keep their defaults
    assert load_config(environ={"RUNT_CONFIG": str(overlay)}).web.port == 8123


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"RUNT_WEB_PORT": "eighty"}, "web.port (from RUNT_WEB_PORT)"),
        ({"RUNT_WEB_PORT": "70000"}, "web.port"),
        ({"RUNT_DATABASE_URL": "postgres://x"}, "database.url (from RUNT_DATABASE_URL)"),
        ({"RUNT_BROKER_URL": "redis://x"}, "broker.url"),
        ({"RUNT_SECRET_KEY": "short"}, "secret_key (from RUNT_SECRET_KEY)"),
        ({"RUNT_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"RUNT_DATABASE_POOL_SIZE": "0"}, "database.pool_size"),
        ({"RUNT_SUPERVISION_HEARTBEAT_TIMEOUT_SECONDS": "3"}, "supervision.heartbeat_timeout"),
    ],
)
def test_a_wrong_value_stops_loading_with_the_key_named(environ, named):
    with pytest.raises(ConfigError) as err:
        load_config(environ=environ)
    assert f"config key {named}" in str(err.value)


def test_unknown_keys_in_a_file_are_refused(tmp_path):
    overlay = tmp_path / "typo.yaml"
    overlay.write_text("web:\n  prot: 8000\n")
    with pytest.raises(ConfigError, match=r"web\.prot"):
        load_config(overlay, environ={})


def test_a_file_that_is_not_yaml_is_reported(tmp_path):
    overlay = tmp_path / "broken.yaml"
    overlay.write_text("web: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(overlay, environ={})
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_every_key_has_an_environment_variable():
    names = env_var_names()
    assert names["database.url"] == "RUNT_DATABASE_URL"
    assert names["broker.url"] == "RUNT_BROKER_URL"
    assert names["secret_key"] == "RUNT_SECRET_KEY"
    assert names["api.max_page_size"] == "RUNT_API_MAX_PAGE_SIZE"


def test_the_web_service_needs_a_secret():
    cfg = load_config(environ={})
    with pytest.raises(ConfigError, match="secret_key"):
        cfg.require_secret()
