"""DQN maths and plumbing (actors/algorithms/dqn.py, its network in actors/networks/mlp.py):
the Double-DQN target, config, learner, checkpoints, policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from actors.algorithms.dqn import (
    DQNConfig,
    DQNLearner,
    QPolicy,
    adam_step,
    double_dqn_target,
)
from actors.networks.mlp import build_q_network, network_from_meta
from schemas.messages import RunSpec
from tests.actors.helpers import DISCRETE, preset, random_transitions, spec_for


def make_spec(**hyperparameters) -> RunSpec:
    return spec_for(
        "dqn",
        "CartPole-v1",
        buffer_size=1000,
        gamma=0.9,
        num_workers=2,
        hyperparameters=hyperparameters,
    )


def test_double_dqn_target_by_hand():
    reward = torch.tensor([1.0, 2.0, 0.5])
    terminated = torch.tensor([False, True, False])
    next_q_online = torch.tensor([[1.0, 3.0], [5.0, 2.0], [0.2, 0.1]])  # picks 1, 0, 0
    next_q_target = torch.tensor([[10.0, 20.0], [30.0, 40.0], [7.0, 8.0]])  # values them
    target = double_dqn_target(reward, terminated, 0.9, next_q_online, next_q_target)
    # 1 + 0.9 * 20; terminal: reward only; 0.5 + 0.9 * 7 (a max over the target net: 8)
    assert target.tolist() == pytest.approx([19.0, 2.0, 6.8])


def test_plain_max_target_by_hand():
    reward = torch.tensor([1.0, 2.0, 0.5])
    terminated = torch.tensor([False, True, False])
    next_q_online = torch.tensor([[1.0, 3.0], [5.0, 2.0], [0.2, 0.1]])  # not consulted
    next_q_target = torch.tensor([[10.0, 20.0], [30.0, 40.0], [7.0, 8.0]])
    target = double_dqn_target(reward, terminated, 0.9, next_q_online, next_q_target, double=False)
    assert target.tolist() == pytest.approx([19.0, 2.0, 0.5 + 0.9 * 8.0])


@pytest.mark.parametrize("double_q", [True, False])
def test_double_q_picks_the_learners_target(double_q):
    config = DQNConfig.from_spec(make_spec(hidden=[16], double_q=double_q))
    learner = DQNLearner(config, DISCRETE, seed=0)
    with torch.no_grad():  # a target net unlike the online one, so the two targets differ
        for param in learner.target_network.parameters():
            param.mul_(-1.5)
    batch = random_transitions(np.random.default_rng(1), DISCRETE)
    next_obs = torch.as_tensor(batch.next_obs)
    with torch.no_grad():
        args = (torch.as_tensor(batch.reward), torch.as_tensor(batch.terminated), 0.9)
        nets = (learner.q_network(next_obs), learner.target_network(next_obs))
        expected = double_dqn_target(*args, *nets, double=double_q).mean().item()
        other = double_dqn_target(*args, *nets, double=not double_q).mean().item()
    assert expected != pytest.approx(other)
    metrics = learner.update(batch)
    assert metrics["losses/td_target_mean"] == pytest.approx(expected, rel=1e-5)


def test_config_merges_hyperparameters_over_the_defaults():
    config = DQNConfig.from_spec(make_spec(hidden=[32, 16], tau=0.5, exploration="apex"))
    assert config.hidden == (32, 16) and config.tau == 0.5 and config.exploration == "apex"
    assert config.batch_size == 32 and config.gamma == 0.9 and config.seed == 3
    assert config.learning_starts == DQNConfig.learning_starts
    assert config.num_actors == 2 * config.envs_per_worker
    with pytest.raises(AttributeError):
        config.tau = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"learning_start": 10}, "hyperparameters.learning_start: unknown"),
        ({"batch_size": 10}, "hyperparameters.batch_size: set it as the run's own field"),
        ({"hidden": "wide"}, "hyperparameters.hidden"),
        ({"exploration": "boltzmann"}, "hyperparameters.exploration"),
        ({"tau": 0.0}, "hyperparameters.tau"),
        ({"eval_episodes": 0}, "hyperparameters.eval_episodes"),
        ({"exploration_fraction": 2}, "hyperparameters.exploration: fraction"),
    ],
)
def test_config_names_the_bad_hyperparameter(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        DQNConfig.from_spec(make_spec(**hyperparameters))


def test_the_cartpole_preset_is_a_valid_dqn_config():
    config = DQNConfig.from_spec(RunSpec(run_id=1, seed=0, **preset("dqn_cartpole")))
    assert config.hidden == (64, 64)
    assert config.rate_limiter(insert_chunk=config.num_actors).can_insert(config.learning_starts)


def test_network_init_depends_on_the_seed_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = build_q_network(DISCRETE, (8,), seed=7).state_dict()
    second = build_q_network(DISCRETE, (8,), seed=7).state_dict()
    other = build_q_network(DISCRETE, (8,), seed=8).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)  # global generator untouched
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["layers.0.weight"], other["layers.0.weight"])
    torch.manual_seed(7)  # the plain recipe gives the same version 0
    plain = build_q_network(DISCRETE, (8,)).state_dict()
    assert all(torch.equal(first[k], plain[k]) for k in first)


def test_network_meta_rebuilds_the_architecture():
    network = build_q_network(DISCRETE, (16, 8), seed=0)
    meta = network.network_meta()
    assert meta == {"architecture": "mlp_q", "obs_dim": 4, "n_actions": 2, "hidden": [16, 8]}
    rebuilt = network_from_meta(meta)
    rebuilt.load_state_dict(network.state_dict())
    obs = torch.randn(3, 4)
    assert torch.equal(rebuilt(obs), network(obs))
    with pytest.raises(ValueError, match="architecture"):
        network_from_meta({**meta, "architecture": "cnn"})


def test_update_reports_namespaced_metrics_and_moves_the_online_net():
    config = DQNConfig.from_spec(make_spec(hidden=[16], target_update_interval=3))
    learner = DQNLearner(config, DISCRETE, seed=0)
    before = learner.policy_state()
    metrics = learner.update(random_transitions(np.random.default_rng(0), DISCRETE))
    assert set(metrics) >= {"losses/td_loss", "losses/q_mean", "losses/grad_norm"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert learner.updates == 1
    assert not torch.equal(before["layers.0.weight"], learner.policy_state()["layers.0.weight"])


def test_direct_adam_step_is_torch_adams_step():
    """The learner steps its fused Adam by calling the kernel directly; parameters and
    optimiser state must follow torch's own `step()` exactly, first step included."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(5))]
    theirs = [torch.nn.Parameter(param.detach().clone()) for param in ours]
    ours_adam = torch.optim.Adam(ours, lr=0.01, fused=True)
    theirs_adam = torch.optim.Adam(theirs, lr=0.01, fused=True)
    for _ in range(4):
        grads = [torch.randn_like(param) for param in ours]
        for param, copy, grad in zip(ours, theirs, grads, strict=True):
            param.grad, copy.grad = grad.clone(), grad.clone()
        adam_step(ours_adam)
        theirs_adam.step()
        for param, copy in zip(ours, theirs, strict=True):
            assert torch.equal(param, copy)
    for param, copy in zip(ours, theirs, strict=True):
        for key, value in theirs_adam.state[copy].items():
            assert torch.equal(ours_adam.state[param][key], value), key
    assert float(ours_adam.state[ours[0]]["step"]) == 4


def test_target_net_is_copied_every_k_updates():
    config = DQNConfig.from_spec(make_spec(hidden=[16], target_update_interval=3))
    learner = DQNLearner(config, DISCRETE, seed=0)
    rng = np.random.default_rng(0)
    initial = learner.target_network.state_dict()["layers.0.weight"].clone()
    for _ in range(2):
        learner.update(random_transitions(rng, DISCRETE))
    assert torch.equal(learner.target_network.state_dict()["layers.0.weight"], initial)
    learner.update(random_transitions(rng, DISCRETE))
    online, target = learner.q_network.state_dict(), learner.target_network.state_dict()
    assert all(torch.equal(online[k], target[k]) for k in online)


def test_polyak_averaging_moves_the_target_by_tau():
    config = DQNConfig.from_spec(make_spec(hidden=[16], target_update_interval=1, tau=0.25))
    learner = DQNLearner(config, DISCRETE, seed=0)
    old_target = learner.target_network.state_dict()["layers.0.weight"].clone()
    learner.update(random_transitions(np.random.default_rng(0), DISCRETE))
    online = learner.q_network.state_dict()["layers.0.weight"]
    expected = 0.75 * old_target + 0.25 * online
    assert torch.allclose(learner.target_network.state_dict()["layers.0.weight"], expected)


def test_learner_state_round_trips_through_safetensors_bytes():
    config = DQNConfig.from_spec(make_spec(hidden=[16], target_update_interval=4))
    rng = np.random.default_rng(0)
    learner = DQNLearner(config, DISCRETE, seed=0)
    for _ in range(5):
        learner.update(random_transitions(rng, DISCRETE))

    blob = save_safetensors(learner.state())
    restored = DQNLearner(config, DISCRETE, seed=99)
    restored.load_state(load_safetensors(blob))

    assert restored.updates == 5
    obs = torch.randn(8, 4)
    assert torch.equal(restored.q_network(obs), learner.q_network(obs))
    assert torch.equal(restored.target_network(obs), learner.target_network(obs))
    saved, loaded = learner.step.optimizer_state(), restored.step.optimizer_state()
    assert set(saved) == set(loaded) and saved
    for key, value in saved.items():
        assert torch.equal(loaded[key], value), key
    batch = random_transitions(rng, DISCRETE)  # and training goes on exactly as it would have
    assert restored.update(batch) == learner.update(batch)
    assert torch.equal(restored.q_network(obs), learner.q_network(obs))


def test_policy_acts_greedily_without_epsilon_and_randomly_with_it():
    config = DQNConfig.from_spec(make_spec(hidden=[16]))
    learner = DQNLearner(config, DISCRETE, seed=0)
    policy = QPolicy.from_meta(learner.network_meta(), learner.policy_state())
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    rng = np.random.default_rng(0)
    greedy = learner.q_network(torch.as_tensor(obs)).argmax(dim=1).numpy()
    assert np.array_equal(policy.act(obs, 0.0, rng), greedy)
    random_actions = policy.act(obs, 1.0, rng)
    assert 0.4 < np.mean(random_actions == greedy) < 0.6  # two actions, half agree
    per_row = np.where(np.arange(500) < 250, 0.0, 1.0)
    mixed = policy.act(obs, per_row, rng)
    assert np.array_equal(mixed[:250], greedy[:250])


def test_version_zero_policy_matches_the_learner_built_from_the_same_seed():
    config = DQNConfig.from_spec(make_spec(hidden=[16]))
    learner = DQNLearner(config, DISCRETE, seed=5)
    policy = QPolicy.from_spaces(DISCRETE, config.hidden, seed=5)
    state = policy.network.state_dict()
    assert all(torch.equal(state[k], v) for k, v in learner.policy_state().items())
