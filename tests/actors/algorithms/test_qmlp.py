"""runt's MLP trains in NumPy (actors/algorithms/qmlp.py): the same update as torch autograd's, on
parameters the torch modules share, with torch's checkpoint layout."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from actors.algorithms.dqn import DQNConfig, DQNLearner, QPolicy, TorchQUpdate
from actors.algorithms.qmlp import NumpyQUpdate, share_flat
from actors.algorithms.replay import Transition
from actors.envs.build import EnvSpaces
from actors.networks.mlp import build_q_network
from tests.actors.helpers import spec_for

SPACES = EnvSpaces(obs_shape=(4,), obs_dtype=np.dtype(np.float32), n_actions=3)


def config_of(**hyperparameters) -> DQNConfig:
    spec = spec_for(
        "dqn",
        "CartPole-v1",
        learning_rate=0.01,
        buffer_size=1000,
        gamma=0.9,
        seed=0,
        hyperparameters={"hidden": [16, 8]} | hyperparameters,
    )
    return DQNConfig.from_spec(spec)


def batch_of(rng: np.random.Generator, size: int = 32, n_step: int = 1) -> Transition:
    return Transition(
        obs=rng.normal(size=(size, 4)).astype(np.float32),
        action=rng.integers(0, 3, size=size),
        reward=(3 * rng.normal(size=size)).astype(np.float32),
        next_obs=rng.normal(size=(size, 4)).astype(np.float32),
        terminated=rng.random(size) < 0.2,
        horizon=rng.integers(1, n_step + 1, size=size).astype(np.int32),
    )


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {},  # Double DQN, hard target copies every 3 updates
        {"double_q": False, "tau": 0.2},  # the plain max; Polyak averaging below 0.5 ...
        {"tau": 0.7, "n_step": 3, "max_grad_norm": 0.05},  # ... and above; n-step; clipped
    ],
)
def test_numpy_update_is_the_autograd_update(hyperparameters):
    """Six updates side by side from the same weights: every metric, parameter, target
    parameter and Adam moment of the NumPy path agrees with torch's to float precision."""
    config = config_of(target_update_interval=3, **hyperparameters)
    network = build_q_network(SPACES, config.hidden, seed=1)
    target = build_q_network(SPACES, config.hidden, seed=2).requires_grad_(False)
    ours_online, ours_target = copy.deepcopy(network), copy.deepcopy(target)
    ours = NumpyQUpdate(ours_online, ours_target, config)
    reference = TorchQUpdate(network, target, config)
    rng = np.random.default_rng(0)
    clipped = 0
    for update in range(1, 7):
        batch = batch_of(rng, n_step=config.n_step)
        refresh = update % config.target_update_interval == 0
        got, expected = ours.update(batch, refresh), reference.update(batch, refresh)
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-6), update
        clipped += expected["losses/grad_norm"] > config.max_grad_norm
        for mine, theirs in zip(ours_online.parameters(), network.parameters(), strict=True):
            assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6), update
        for mine, theirs in zip(ours_target.parameters(), target.parameters(), strict=True):
            assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6), update
    if "max_grad_norm" in hyperparameters:
        assert clipped  # the clip really scaled some updates
    got, expected = ours.optimizer_state(), reference.optimizer_state()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.allclose(got[key], value, rtol=1e-4, atol=1e-7), key


def test_the_modules_see_the_shared_parameters():
    network = build_q_network(SPACES, (8,), seed=0)
    obs = torch.randn(5, 4)
    before = network(obs).detach().clone()
    flat, views = share_flat(network)
    assert torch.equal(network(obs), before)  # moved, not changed
    assert flat.size == sum(param.numel() for param in network.parameters())
    flat *= 2.0  # an update in NumPy is seen by torch's forward and state_dict ...
    assert not torch.allclose(network(obs), before)
    assert np.array_equal(network.state_dict()["layers.0.weight"].numpy(), views[0])
    other = build_q_network(SPACES, (8,), seed=1)  # ... and load_state_dict writes NumPy's
    network.load_state_dict(other.state_dict())
    assert np.array_equal(views[0], other.state_dict()["layers.0.weight"].numpy())


def test_a_checkpoint_restores_into_either_path():
    """The NumPy path's optimiser state is torch Adam's layout: a checkpoint of a learner
    on runt's MLP continues on the autograd path exactly as on its own."""
    config = config_of(target_update_interval=2, tau=0.3)
    learner = DQNLearner(config, SPACES, seed=0)
    assert isinstance(learner.step, NumpyQUpdate)
    rng = np.random.default_rng(0)
    for _ in range(4):
        learner.update(batch_of(rng))
    state = learner.state()

    online = build_q_network(SPACES, config.hidden)
    online.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("q_network.")})
    target = copy.deepcopy(online).requires_grad_(False)
    target.load_state_dict({k[15:]: v for k, v in state.items() if k.startswith("target_network.")})
    torch_path = TorchQUpdate(online, target, config)
    torch_path.load_optimizer_state(
        {k[10:]: v for k, v in state.items() if k.startswith("optimizer.")}
    )
    batch = batch_of(rng)
    assert learner.update(batch) == pytest.approx(
        torch_path.update(batch, refresh_target=False), rel=1e-4, abs=1e-6
    )
    for mine, theirs in zip(learner.q_network.parameters(), online.parameters(), strict=True):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_numpy_greedy_actions_are_torchs():
    """QPolicy acts through NumPy for runt's MLP; its actions are the torch forward's
    argmax, for float64 observations too, and follow newly loaded weights."""
    network = build_q_network(SPACES, (16, 8), seed=0)
    policy = QPolicy(copy.deepcopy(network))
    assert policy.numpy_mlp is not None
    obs = np.random.default_rng(0).normal(size=(300, 4))  # float64, as some envs give
    expected = network(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=1).numpy()
    assert np.array_equal(policy.greedy(obs), expected)
    other = build_q_network(SPACES, (16, 8), seed=1)
    policy.load(other.state_dict())
    expected = other(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=1).numpy()
    assert np.array_equal(policy.greedy(obs), expected)
