"""actors/networks/__init__.py: the dotted paths runs and configs store keep working.

Runs name networks as `actors.networks:MLPTorso` and the like, and the service's default
`training.allowed_modules` is `actors.networks`; both were written before the networks
moved into modules of their own, and stored runs must still load."""

from __future__ import annotations

import pytest

from actors.algorithms.validate import check_spec
from actors.networks import mlp
from actors.networks.custom import load_class
from actors.settings import allowing
from schemas.config import load_config
from schemas.messages import PolicyRef
from tests.actors.helpers import spec_for

STORED = {
    "actors.networks:MLPTorso": mlp.MLPTorso,
    "actors.networks:DuelingQNetwork": mlp.DuelingQNetwork,
    "actors.networks:QNetwork": mlp.QNetwork,
    "actors.networks.MLPTorso": mlp.MLPTorso,  # the dotted form runs may also use
}


def test_the_default_allow_list_is_the_stored_package():
    assert load_config(environ={}).training.allowed_modules == ("actors.networks",)


@pytest.mark.parametrize("path", sorted(STORED))
def test_a_stored_path_names_the_same_class(path):
    allowed = load_config(environ={}).training.allowed_modules

    with allowing(allowed):
        assert load_class(PolicyRef(path=path)) is STORED[path]


@pytest.mark.parametrize(
    ("algorithm", "env_id", "path"),
    [
        ("dqn", "CartPole-v1", "actors.networks:DuelingQNetwork"),
        ("ppo", "CartPole-v1", "actors.networks:MLPTorso"),
    ],
)
def test_a_run_naming_a_stored_path_is_accepted_under_the_defaults(algorithm, env_id, path):
    spec = spec_for(algorithm, env_id, policy={"path": path, "kwargs": {"hidden": [16]}})
    check_spec(spec, load_config(environ={}).training.allowed_modules)
