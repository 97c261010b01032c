"""The algorithm table (actors/algorithms/table.py) and the interface its records fill
(actors/algorithms/interfaces.py): each algorithm's buffer kind and roles, and the kinds
of action space."""

from __future__ import annotations

import pytest

from actors.algorithms.interfaces import action_kind
from actors.algorithms.table import ALGORITHMS
from actors.envs.build import make_env
from actors.roles.factory import ACTORS


def test_every_algorithm_has_its_buffer_roles_and_config():
    assert set(ALGORITHMS) == {"dqn", "ppo", "sac"}
    assert {name: a.buffer for name, a in ALGORITHMS.items()} == {
        "dqn": "replay",
        "ppo": "on_policy",
        "sac": "replay",
    }
    assert ACTORS["ppo"]["buffer"].__name__ == "OnPolicyBuffer"
    assert ACTORS["dqn"]["buffer"].__name__ == ACTORS["sac"]["buffer"].__name__ == "Buffer"
    assert ACTORS["ppo"]["trainer"] is ACTORS["dqn"]["trainer"]


@pytest.mark.parametrize(
    ("env_id", "kind"),
    [("CartPole-v1", "discrete"), ("Pendulum-v1", "box"), ("Blackjack-v1", "discrete")],
)
def test_action_kinds(env_id, kind):
    env = make_env(env_id)
    assert action_kind(env.action_space) == kind
    env.close()
