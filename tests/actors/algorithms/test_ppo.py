"""PPO maths and plumbing (actors/algorithms/ppo.py, its networks and distributions in
actors/networks/policies.py): GAE, the clipped objective, distributions, config, learner,
checkpoints, the acting policy and the rollout segment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from actors.algorithms.ppo import (
    PPOConfig,
    PPOLearner,
    PPOPolicy,
    Segment,
    approx_kl,
    collect_segment,
    compute_gae,
    ppo_clipped_loss,
)
from actors.envs.build import EnvSpaces, VectorCollector, make_vector_env
from actors.networks.policies import (
    ActionBounds,
    build_actor_critic,
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
from schemas.messages import RunSpec
from tests.actors.helpers import BOX, DISCRETE, preset, spec_for

BOUNDS = ActionBounds(np.array([-2.0, -1.0], np.float32), np.array([2.0, 1.0], np.float32))


def make_spec(**hyperparameters) -> RunSpec:
    return spec_for(
        "ppo",
        "CartPole-v1",
        batch_size=16,
        buffer_size=1,
        gamma=0.9,
        num_workers=2,
        hyperparameters={"hidden": [16], "n_steps": 8, "envs_per_worker": 4} | hyperparameters,
    )


def random_segment(rng: np.random.Generator, spaces: EnvSpaces, steps=8, envs=4) -> Segment:
    if spaces.discrete:
        action = rng.integers(0, spaces.n_actions, size=(steps, envs))
    else:
        action = rng.normal(size=(steps, envs, *spaces.action_shape)).astype(np.float32)
    f32 = np.float32
    return Segment(
        obs=rng.normal(size=(steps, envs, *spaces.obs_shape)).astype(f32),
        action=action,
        logp=rng.normal(-1.0, 0.2, size=(steps, envs)).astype(f32),
        value=rng.normal(size=(steps, envs)).astype(f32),
        reward=rng.normal(size=(steps, envs)).astype(f32),
        terminated=rng.random((steps, envs)) < 0.1,
        truncated=np.zeros((steps, envs), dtype=bool),
        final_value=np.zeros((steps, envs), f32),
        last_obs=rng.normal(size=(envs, *spaces.obs_shape)).astype(f32),
        last_value=rng.normal(size=envs).astype(f32),
    )


# ---- maths -----------------------------------------------------------------------------------


def test_gae_by_hand_with_a_termination_and_a_truncation():
    rewards = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.array([10.0, 20.0, 30.0, 40.0])
    terminated = np.array([False, True, False, False])
    truncated = np.array([False, False, True, False])
    final_values = np.array([0.0, 0.0, 8.0, 0.0])  # V(final obs) of the truncated episode
    advantages, returns = compute_gae(
        rewards, values, terminated, truncated, final_values, np.float64(50.0), gamma=0.5, lam=0.5
    )
    # t=3: 4 + 0.5 * 50 (last_value) - 40 = -11
    # t=2: truncated, bootstraps from V(final obs): 3 + 0.5 * 8 - 30 = -23, sum cut
    # t=1: terminated, no bootstrap: 2 - 20 = -18, sum cut
    # t=0: delta 1 + 0.5 * 20 - 10 = 1, plus gamma * lam * A_1 = 0.25 * -18
    assert advantages.tolist() == pytest.approx([-3.5, -18.0, -23.0, -11.0])
    assert returns.tolist() == pytest.approx([6.5, 2.0, 7.0, 29.0])


def test_gae_with_lambda_one_and_no_ends_is_the_discounted_return_minus_the_value():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    last = rng.normal(size=3)
    no = np.zeros((5, 3), dtype=bool)
    advantages, returns = compute_gae(rewards, values, no, no, np.zeros((5, 3)), last, 0.9, 1.0)
    expected = last.copy()
    for t in reversed(range(5)):
        expected = rewards[t] + 0.9 * expected
        assert returns[t] == pytest.approx(expected)
    assert advantages == pytest.approx(returns - values)


def test_clipped_loss_on_both_sides_of_the_clip():
    ratios = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0])
    old_logp = torch.full((5,), -1.0)
    new_logp = (old_logp + ratios.log()).requires_grad_()
    loss, clip_fraction = ppo_clipped_loss(new_logp, old_logp, advantages, clip=0.2)
    # min(r A, clip(r) A): 1.2 (A>0 capped above), 0.5 (A>0 below: unclipped, pessimistic),
    # -1.5 (A<0 above: unclipped), -0.8 (A<0 capped below), 2.2 (inside the range)
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.5 - 0.8 + 2.2) / 5)
    assert clip_fraction.item() == pytest.approx(4 / 5)
    loss.backward()
    # no gradient where the clipped term is the minimum; -r A / n elsewhere
    assert new_logp.grad.tolist() == pytest.approx([0.0, -0.1, 0.3, 0.0, -0.44])


def test_approx_kl_is_zero_for_the_same_policy_and_positive_otherwise():
    old = torch.tensor([-1.0, -2.0, -0.5])
    assert approx_kl(old, old).item() == 0.0
    assert approx_kl(old + torch.tensor([0.1, -0.2, 0.3]), old).item() > 0.0


def test_log_probs_and_entropies_match_torch_distributions():
    torch.manual_seed(0)
    mean, log_std, x = torch.randn(6, 3), torch.randn(6, 3) * 0.5, torch.randn(6, 3)
    normal = torch.distributions.Normal(mean, log_std.exp())
    assert torch.allclose(gaussian_log_prob(mean, log_std, x), normal.log_prob(x).sum(-1))
    assert torch.allclose(gaussian_entropy(log_std), normal.entropy().sum(-1))
    logits, actions = torch.randn(6, 4), torch.randint(0, 4, (6,))
    categorical = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(categorical_log_prob(logits, actions), categorical.log_prob(actions))
    assert torch.allclose(categorical_entropy(logits), categorical.entropy())


# ---- config ----------------------------------------------------------------------------------


def test_config_merges_hyperparameters_over_the_defaults():
    config = PPOConfig.from_spec(make_spec(n_epochs=3, learning_rate_schedule="linear"))
    assert config.n_epochs == 3 and config.hidden == (16,) and config.batch_size == 16
    assert config.gamma == 0.9 and config.clip_range == PPOConfig.clip_range
    assert config.rollout_size == 2 * 4 * 8
    assert config.scheduled("learning_rate", 0) == pytest.approx(1e-3)
    half = config.schedule_budget_steps // 2
    assert config.scheduled("learning_rate", half) == pytest.approx(5e-4)
    assert config.scheduled("clip_range", half) == pytest.approx(0.2)  # constant
    assert config.scheduled("learning_rate", 10**9) == 0.0


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"n_step": 10}, "hyperparameters.n_step: unknown PPO hyperparameter"),
        ({"batch_size": 10}, "hyperparameters.batch_size: set it as the run's own field"),
        ({"gae_lambda": 1.5}, "hyperparameters.gae_lambda"),
        ({"clip_range": 0}, "hyperparameters.clip_range"),
        ({"learning_rate_schedule": "cosine"}, "hyperparameters.learning_rate_schedule"),
    ],
)
def test_config_names_the_bad_hyperparameter(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig.from_spec(make_spec(**hyperparameters))
    with pytest.raises(ValueError, match="algorithm"):
        PPOConfig.from_spec(make_spec().model_copy(update={"algorithm": "dqn"}))


@pytest.mark.parametrize("name", ["ppo_cartpole", "ppo_pendulum", "ppo_acrobot"])
def test_the_presets_are_valid_ppo_configs(name):
    config = PPOConfig.from_spec(RunSpec(run_id=1, seed=0, **preset(name)))
    assert config.rollout_size >= config.batch_size


# ---- networks, learner, checkpoints -----------------------------------------------------------


@pytest.mark.parametrize(("spaces", "bounds"), [(DISCRETE, None), (BOX, BOUNDS)])
def test_network_init_depends_on_the_seed_alone(spaces, bounds):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = build_actor_critic(spaces, (8,), 7, bounds).state_dict()
    second = build_actor_critic(spaces, (8,), 7, bounds).state_dict()
    other = build_actor_critic(spaces, (8,), 8, bounds).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["policy_body.0.weight"], other["policy_body.0.weight"])
    learner = PPOLearner(PPOConfig(hidden=(8,)), spaces, seed=7, action_bounds=bounds)
    assert all(torch.equal(first[k], v) for k, v in learner.policy_state().items())


def test_a_box_action_space_needs_its_bounds():
    with pytest.raises(ValueError, match="action_bounds"):
        build_actor_critic(BOX, (8,), 0)


@pytest.mark.parametrize(("spaces", "bounds"), [(DISCRETE, None), (BOX, BOUNDS)])
def test_update_reports_namespaced_metrics_and_counts_versions(spaces, bounds):
    config = PPOConfig.from_spec(make_spec(n_epochs=2))
    learner = PPOLearner(config, spaces, seed=0, action_bounds=bounds)
    before = learner.policy_state()
    rng = np.random.default_rng(0)
    metrics = learner.update([random_segment(rng, spaces), random_segment(rng, spaces)])
    expected = {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"}
    assert {f"losses/{name}" for name in expected | {"explained_variance"}} <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert learner.updates == 1 and learner.env_steps == 2 * 8 * 4
    after = learner.policy_state()
    assert not torch.equal(before["policy_head.weight"], after["policy_head.weight"])
    assert not torch.equal(before["value_head.weight"], after["value_head.weight"])


def test_learner_state_round_trips_through_safetensors_bytes():
    config = PPOConfig.from_spec(make_spec(n_epochs=2, learning_rate_schedule="linear"))
    rng = np.random.default_rng(0)
    learner = PPOLearner(config, BOX, seed=0, action_bounds=BOUNDS)
    for _ in range(3):
        learner.update([random_segment(rng, BOX)])

    restored = PPOLearner(config, BOX, seed=0, action_bounds=BOUNDS)
    restored.load_state(load_safetensors(save_safetensors(learner.state())))
    assert (restored.updates, restored.env_steps) == (3, 3 * 32)
    obs, actions = torch.randn(5, 3), torch.randn(5, 2)
    for got, want in zip(
        restored.network.evaluate_actions(obs, actions),
        learner.network.evaluate_actions(obs, actions),
        strict=True,
    ):
        assert torch.equal(got, want)
    segment = random_segment(rng, BOX)  # training goes on exactly as it would have
    assert restored.update([segment]) == learner.update([segment])
    assert torch.equal(restored.network.log_std, learner.network.log_std)


# ---- acting ----------------------------------------------------------------------------------


def test_discrete_sampling_follows_the_policy_and_reports_its_log_probs():
    learner = PPOLearner(PPOConfig(hidden=(8,)), DISCRETE, seed=0)
    with torch.no_grad():
        learner.network.policy_head.bias.copy_(torch.tensor([0.0, math.log(3.0)]))  # p = 1/4, 3/4
    policy = PPOPolicy.from_meta(learner.network_meta(), learner.policy_state())
    obs = np.zeros((4000, 4), np.float32)
    actions, logp, values = policy.act(obs, np.random.default_rng(0))
    assert actions.dtype == np.int64 and set(actions.tolist()) == {0, 1}
    assert np.mean(actions) == pytest.approx(0.75, abs=0.03)
    assert logp[actions == 1] == pytest.approx(math.log(0.75), abs=1e-5)
    assert values == pytest.approx(np.full(4000, values[0]))
    assert np.array_equal(policy.greedy(obs[:3]), [1, 1, 1])
    again, _, _ = policy.act(obs, np.random.default_rng(0))
    assert np.array_equal(again, actions)  # the draws come from the caller's generator


def test_gaussian_actions_are_sampled_unclipped_and_clipped_only_for_the_env():
    learner = PPOLearner(PPOConfig(hidden=(8,)), BOX, seed=0, action_bounds=BOUNDS)
    with torch.no_grad():
        learner.network.log_std.fill_(math.log(3.0))  # wide enough to leave [-1, 1] often
    policy = PPOPolicy.from_meta(learner.network_meta(), learner.policy_state())
    obs = np.random.default_rng(1).normal(size=(500, 3)).astype(np.float32)
    actions, logp, _ = policy.act(obs, np.random.default_rng(0))
    assert actions.shape == (500, 2) and (np.abs(actions[:, 1]) > 1).any()
    expected_logp, _, _ = learner.network.evaluate_actions(
        torch.as_tensor(obs), torch.as_tensor(actions)
    )
    assert logp == pytest.approx(expected_logp.detach().numpy(), abs=1e-5)
    stepped = policy.env_actions(actions)
    assert (stepped >= BOUNDS.low).all() and (stepped <= BOUNDS.high).all()
    mean = learner.network.policy_out(torch.as_tensor(obs)).detach().numpy()
    assert np.array_equal(policy.greedy(obs), np.clip(mean, BOUNDS.low, BOUNDS.high))


class RecordingCollector(VectorCollector):
    """Keeps every transition, so a test can see the final observations of episodes."""

    def step(self, actions):
        transition, finished = super().step(actions)
        self.next_obs.append(transition.next_obs)
        return transition, finished


def test_collect_segment_marks_truncations_and_their_bootstrap_values():
    envs = make_vector_env("CartPole-v1", {"max_episode_steps": 5}, num_envs=3, seed=0)
    collector = RecordingCollector(envs, seed=0)
    collector.next_obs = []
    policy = PPOPolicy.from_spaces(EnvSpaces.from_env(envs), (8,), seed=0)
    segment, episodes = collect_segment(collector, policy, 12, np.random.default_rng(0))
    assert segment.obs.shape == (12, 3, 4) and segment.action.shape == (12, 3)
    assert segment.env_steps == 36 and segment.last_obs.shape == (3, 4)
    ended = segment.terminated | segment.truncated
    assert ended.sum() == len(episodes) > 0
    assert not (segment.terminated & segment.truncated).any()
    assert (segment.final_value[~segment.truncated] == 0).all()
    final_obs = np.stack(collector.next_obs)[segment.truncated]  # before the autoreset
    assert segment.truncated.sum() >= 3  # 12 steps, a limit of 5: every env truncates
    assert segment.final_value[segment.truncated] == pytest.approx(policy.value(final_obs))
    assert np.array_equal(
        segment.obs[1:][~ended[:-1]], np.stack(collector.next_obs)[:-1][~ended[:-1]]
    )
    assert segment.last_value == pytest.approx(policy.value(segment.last_obs))
    assert np.array_equal(segment.last_obs, collector.obs)
    collector.close()
