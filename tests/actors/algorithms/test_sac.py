"""SAC maths and plumbing (actors/algorithms/sac.py; the squashed Gaussian and action
bounds of actors/networks/policies.py): the soft target, entropy tuning, the squashed
Gaussian, config, learner, checkpoints, the acting policy and a smoke run of the serial loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from actors.algorithms.replay import Transition
from actors.algorithms.sac import (
    SACConfig,
    SACLearner,
    SACPolicy,
    alpha_loss,
    entropy_target,
    sac_critic_target,
)
from actors.algorithms.serial import run_serial
from actors.networks.policies import ActionBounds, squashed_gaussian_log_prob
from schemas.messages import RunSpec
from tests.actors.helpers import BOX, preset, random_transitions, spec_for

PRESET = preset("sac_pendulum")
BOUNDS = ActionBounds(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def make_spec(**hyperparameters) -> RunSpec:
    return spec_for(
        "sac",
        "Pendulum-v1",
        buffer_size=1000,
        gamma=0.9,
        hyperparameters={"hidden": [16, 16]} | hyperparameters,
    )


def random_batch(rng: np.random.Generator) -> Transition:
    """Transitions whose actions lie within BOUNDS."""
    return random_transitions(rng, BOX, bounds=BOUNDS)


# ---- maths -----------------------------------------------------------------------------------


def test_entropy_target_is_minus_the_action_dimension():
    assert entropy_target(1) == -1.0 and entropy_target(6) == -6.0
    learner = SACLearner(SACConfig.from_spec(make_spec()), BOX, action_bounds=BOUNDS)
    assert learner.target_entropy == -2.0


def test_critic_target_by_hand():
    target = sac_critic_target(
        reward=torch.tensor([1.0, 2.0]),
        terminated=torch.tensor([False, True]),
        gamma=0.9,
        next_q1_target=torch.tensor([10.0, 5.0]),
        next_q2_target=torch.tensor([8.0, 7.0]),
        next_logp=torch.tensor([-1.0, 0.5]),
        alpha=0.2,
    )
    # 1 + 0.9 * (min(10, 8) - 0.2 * -1) = 1 + 0.9 * 8.2; a terminal step keeps its reward only
    assert target.tolist() == pytest.approx([8.38, 2.0])


@pytest.mark.parametrize(("logp", "alpha_moves"), [(2.0, "up"), (-3.0, "down")])
def test_alpha_loss_raises_alpha_below_the_target_entropy_and_lowers_it_above(logp, alpha_moves):
    """Target entropy -1. log pi = 2 is entropy -2, below the target: alpha must grow to
    reward entropy; log pi = -3 is entropy 3, above it: alpha must shrink."""
    log_alpha = torch.zeros(1, requires_grad=True)
    loss = alpha_loss(log_alpha, torch.full((4,), logp), target_entropy=-1.0)
    loss.backward()
    # gradient descent moves log alpha by -grad = mean(log pi + target)
    assert -log_alpha.grad.item() == pytest.approx(logp - 1.0)
    assert (-log_alpha.grad.item() > 0) == (alpha_moves == "up")


def test_squashed_log_prob_matches_a_tanh_transformed_normal():
    torch.manual_seed(0)
    mean, log_std, pre_tanh = torch.randn(5, 2), torch.randn(5, 2) * 0.3, torch.randn(5, 2) * 2
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.transforms.TanhTransform()],
    )
    expected = squashed.log_prob(torch.tanh(pre_tanh)).sum(-1)
    got = squashed_gaussian_log_prob(mean, log_std, pre_tanh)
    assert torch.allclose(got, expected, atol=1e-4)


def test_action_bounds_rescale_both_ways():
    unit = np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], np.float32)
    actions = BOUNDS.from_unit(unit)
    assert actions.tolist() == [[-2.0, 0.0], [0.0, 0.5], [2.0, 1.0]]
    assert BOUNDS.to_unit(actions) == pytest.approx(unit)


# ---- config ----------------------------------------------------------------------------------


def test_config_defaults_and_the_preset():
    config = SACConfig.from_spec(make_spec())
    assert config.tau == 0.005 and config.learning_starts == 100 and config.ent_coef_init == 1.0
    assert config.replay_ratio == 32  # one update of a batch per env step
    preset = SACConfig.from_spec(RunSpec(run_id=1, seed=0, **PRESET))
    assert preset.replay_ratio == preset.batch_size == 256
    limiter = preset.rate_limiter(insert_chunk=preset.num_actors)
    assert limiter.can_insert(preset.learning_starts)


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"alpha": 0.2}, "hyperparameters.alpha: unknown SAC hyperparameter"),
        ({"gamma": 0.5}, "hyperparameters.gamma: set it as the run's own field"),
        ({"tau": 0}, "hyperparameters.tau"),
        ({"samples_per_insert": -1}, "hyperparameters.samples_per_insert"),
        ({"learning_starts": 5000}, "hyperparameters.learning_starts: larger than buffer_size"),
    ],
)
def test_config_names_the_bad_hyperparameter(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        SACConfig.from_spec(make_spec(**hyperparameters))


# ---- learner, checkpoints, policy -------------------------------------------------------------


def test_init_depends_on_the_seed_alone_and_the_policy_matches_the_learner():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    config = SACConfig.from_spec(make_spec())
    first, second = (SACLearner(config, BOX, 7, BOUNDS) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in ((first.actor, second.actor), (first.critic, second.critic)):
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    policy = SACPolicy.from_spaces(BOX, config.hidden, 7, BOUNDS)
    assert all(
        torch.equal(policy.actor.state_dict()[k], v) for k, v in first.policy_state().items()
    )
    other = SACLearner(config, BOX, 8, BOUNDS)
    assert not torch.equal(other.actor.body[0].weight, first.actor.body[0].weight)


def test_update_reports_metrics_and_moves_targets_by_tau():
    config = SACConfig.from_spec(make_spec(tau=0.25))
    learner = SACLearner(config, BOX, 0, BOUNDS)
    old_target = learner.critic_target.q1[0].weight.clone()
    metrics = learner.update(random_batch(np.random.default_rng(0)))
    assert {"losses/critic_loss", "losses/actor_loss", "losses/alpha", "losses/alpha_loss"} <= set(
        metrics
    )
    assert "losses/q_mean" in metrics and metrics["losses/alpha"] == 1.0  # alpha before the step
    assert all(math.isfinite(v) for v in metrics.values())
    expected = 0.75 * old_target + 0.25 * learner.critic.q1[0].weight
    assert torch.allclose(learner.critic_target.q1[0].weight, expected)
    assert learner.log_alpha.item() != 0.0 and learner.updates == 1


def test_learner_state_round_trips_through_safetensors_bytes():
    config = SACConfig.from_spec(make_spec())
    rng = np.random.default_rng(0)
    learner = SACLearner(config, BOX, 0, BOUNDS)
    for _ in range(4):
        learner.update(random_batch(rng))
    restored = SACLearner(config, BOX, 99, BOUNDS)
    restored.load_state(load_safetensors(save_safetensors(learner.state())))
    assert restored.updates == 4 and torch.equal(restored.log_alpha, learner.log_alpha)
    obs, unit = torch.randn(6, 3), torch.rand(6, 2) * 2 - 1
    assert torch.equal(restored.actor(obs)[0], learner.actor(obs)[0])
    for got, want in zip(
        restored.critic_target(obs, unit), learner.critic_target(obs, unit), strict=True
    ):
        assert torch.equal(got, want)
    batch = random_batch(rng)  # the optimisers and the noise generator carry on identically
    assert restored.update(batch) == learner.update(batch)
    assert torch.equal(restored.critic(obs, unit)[1], learner.critic(obs, unit)[1])


def test_policy_acts_within_the_bounds_and_greedy_is_the_squashed_mean():
    learner = SACLearner(SACConfig.from_spec(make_spec()), BOX, 0, BOUNDS)
    policy = SACPolicy.from_meta(learner.network_meta(), learner.policy_state())
    obs = np.random.default_rng(1).normal(size=(400, 3)).astype(np.float32)
    actions = policy.act(obs, np.random.default_rng(0))
    assert actions.shape == (400, 2) and actions.dtype == np.float32
    assert (actions >= BOUNDS.low).all() and (actions <= BOUNDS.high).all()
    assert np.array_equal(actions, policy.act(obs, np.random.default_rng(0)))
    mean, _ = learner.actor(torch.as_tensor(obs))
    expected = BOUNDS.from_unit(torch.tanh(mean).detach().numpy())
    assert policy.greedy(obs) == pytest.approx(expected)
    random_actions = policy.random(1000, np.random.default_rng(0))
    assert random_actions[:, 0].min() < -1.5 and random_actions[:, 1].max() > 0.9


def test_serial_loop_wires_warm_up_replay_and_learning():
    hyperparameters = {"hidden": [16, 16], "learning_starts": 100, "eval_interval_updates": 50}
    spec = RunSpec(
        run_id=1, seed=0, **(PRESET | {"batch_size": 32, "hyperparameters": hyperparameters})
    )
    result = run_serial(spec, max_env_steps=300)
    assert result.stop_reason == "max_env_steps" and result.env_steps == 300
    assert result.updates == pytest.approx(200, abs=5)  # one per step after the warm-up
    assert [e.updates for e in result.evaluations] == list(range(50, result.updates + 1, 50))
    assert "losses/critic_loss" in result.metrics and result.episodes == 1
