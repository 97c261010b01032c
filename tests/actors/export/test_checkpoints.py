"""Checkpoints of every algorithm read back (actors/export/checkpoints.py): the policy they
load acts as the learner's own, within the action bounds, and exports to TorchScript and
a safetensors policy file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.algorithms.table import ALGORITHMS
from actors.export.checkpoints import policy_file, policy_from_checkpoint, torchscript
from tests.actors.helpers import checkpoint_of, env_shape, learner_for


@pytest.mark.parametrize(
    ("algorithm", "env_id"),
    [
        ("dqn", "CartPole-v1"),
        ("ppo", "CartPole-v1"),
        ("ppo", "Pendulum-v1"),
        ("sac", "Pendulum-v1"),
    ],
)
def test_checkpoints_act_export_and_match_the_learner(algorithm, env_id):
    shape = env_shape(env_id)
    learner = learner_for(algorithm, env_id)
    meta, weights = checkpoint_of(algorithm, env_id, learner)

    policy = policy_from_checkpoint(meta, weights)
    expected = ALGORITHMS[algorithm].policy_from_meta(
        learner.network_meta(), learner.policy_state()
    )
    obs = np.random.default_rng(0).normal(size=(5, shape.spaces.obs_dim)).astype(np.float32)
    np.testing.assert_allclose(policy.greedy(obs), expected.greedy(obs), rtol=1e-6)
    sampled = policy.act(obs, 0.05, np.random.default_rng(1))
    assert len(sampled) == 5
    if shape.bounds is not None:
        assert (sampled >= shape.bounds.low).all() and (sampled <= shape.bounds.high).all()

    exported = torchscript(meta, weights)(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, expected.greedy(obs), rtol=1e-5, atol=1e-6)
    assert policy_file(meta, weights, version=1, env_steps=10)[:8]  # safetensors bytes
