"""`check_spec` (actors/algorithms/validate.py): a run's environment is made and its
action space checked against the algorithm before the run is accepted."""

from __future__ import annotations

import pytest

from actors.algorithms.table import ALGORITHMS
from actors.algorithms.validate import check_spec
from tests.actors.helpers import spec_for


@pytest.mark.parametrize(
    ("algorithm", "env_id", "error"),
    [
        ("dqn", "CartPole-v1", None),
        ("ppo", "CartPole-v1", None),
        ("ppo", "Pendulum-v1", None),
        ("sac", "Pendulum-v1", None),
        ("dqn", "Pendulum-v1", "algorithm: dqn cannot act in Pendulum-v1's action space Box"),
        ("sac", "CartPole-v1", "algorithm: sac cannot act in CartPole-v1's action space Discrete"),
        ("dqn", "NoSuchEnvironment-v0", "env_id: Environment `NoSuchEnvironment` doesn't exist"),
        ("dqn", "os:Thing-v0", "env_id: 'os:Thing-v0' names the module 'os', which is not under"),
    ],
)
def test_check_spec_makes_the_environment_and_checks_its_action_space(algorithm, env_id, error):
    spec = spec_for(algorithm, env_id)
    if error is None:
        assert check_spec(spec) == ALGORITHMS[algorithm].config.from_spec(spec)
    else:
        with pytest.raises(ValueError) as caught:
            check_spec(spec)
        assert str(caught.value).startswith(error)


def test_check_spec_blames_the_params_when_the_environment_makes_without_them():
    with pytest.raises(ValueError, match=r"^env_params: .*unexpected keyword argument 'gravity_x'"):
        check_spec(spec_for("dqn", "CartPole-v1", env_params={"gravity_x": 1}))
