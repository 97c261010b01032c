"""End to end on RabbitMQ and MariaDB, as a RUNT client uses runt: DQN and PPO learn
runt/MecOffload-v0 from a POST /train/ that carries RUNT's task fields and no env_id, and
PPO with Gaussian (Box) actions learns Pendulum-v1. Each trained policy is judged
greedily on seeded episodes against fixed policies playing the same episodes.

Same setup as tests/e2e/test_e2e_training.py (tests/e2e/conftest.py): the web app in this
process, an agent process with its actor processes, a broker prefix and a database of the
test's own.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from sqlalchemy import create_engine, select

from actors.algorithms.evaluate import evaluate
from actors.envs.mec import ENV_ID, LOCAL
from actors.export.checkpoints import policy_from_checkpoint
from tests.actors.helpers import MEC_DQN_SETTINGS, MEC_PPO_SETTINGS
from tests.e2e.helpers import TERMINAL, wait_for
from web.db.tables import Checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.mysql]

EVAL_SEED = 2_000  # the trained policy and the baselines play episodes seeded 2000..2009
EVAL_EPISODES = 10
# RUNT's task and compute-resource fields, as its client posts them; these values are the
# environment's documented defaults (actors/envs/mec/constants.py), under which deciding per
# task pays: the best always-offload policy costs about 3x what a learned one does.
RUNT_FIELDS = {
    "task_size_average": 2e6,
    "task_comsumption_average": 5e8,
    "task_time_average": 1.0,
    "task_arrival_rate": 2.0,
    "n_UE": 5,
    "UE_computation_capacity": 1e9,
    "MEC_computation_capacity": 5e9,
}


def play(env_id: str, env_params: dict, choose) -> float:
    """Mean return of `choose(obs, rng)` over the evaluation episodes (the seeds
    `actors.algorithms.evaluate.evaluate` gives its sub-environments)."""
    returns = []
    for episode in range(EVAL_EPISODES):
        env = gym.make(env_id, **env_params)
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        env.action_space.seed(EVAL_SEED + episode)
        rng = np.random.default_rng(EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(choose(env, obs, rng))
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
    return float(np.mean(returns))


def mec_baselines(env_params: dict) -> dict[str, float]:
    n_actions = int(gym.make(ENV_ID, **env_params).action_space.n)
    offload = [play(ENV_ID, env_params, lambda env, obs, rng, a=a: a) for a in range(1, n_actions)]
    return {
        "random": play(ENV_ID, env_params, lambda env, obs, rng: int(rng.integers(n_actions))),
        "always_local": play(ENV_ID, env_params, lambda env, obs, rng: LOCAL),
        "always_offload": max(offload),  # the best share and power, fixed
    }


def trained_score(db_url: str, model_id: int, env_id: str, env_params: dict) -> float:
    """The run's final checkpoint, played greedily on the evaluation episodes."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        meta, weights = conn.execute(
            select(Checkpoint.meta, Checkpoint.weights)
            .where(Checkpoint.model_id == model_id)
            .order_by(Checkpoint.version.desc())
            .limit(1)
        ).one()
    engine.dispose()
    policy = policy_from_checkpoint(meta, weights)
    return evaluate(policy, env_id, env_params, EVAL_EPISODES, seed=EVAL_SEED).mean


# Settings of tests/actors/envs/test_mec_env.py's serial runs (measured there), over the broker with
# one rollout worker of 8 environments. An episode is 200 decisions: 120 episodes are
# 15 rounds of the 8 environments, ~24k env steps. (At 104 episodes PPO's final policy
# was one update short of solving now and then: -347 against the margin's -346.)
MEC_RUNS = {
    "dqn": {
        **MEC_DQN_SETTINGS,
        "hyperparameters": {**MEC_DQN_SETTINGS["hyperparameters"], "eval_interval_updates": 2500},
    },
    "ppo": {
        **MEC_PPO_SETTINGS,
        "hyperparameters": {**MEC_PPO_SETTINGS["hyperparameters"], "eval_interval_updates": 10},
    },
}


@pytest.mark.parametrize("algorithm", ["dqn", "ppo"])
async def test_runt_fields_train_mec_offloading_beyond_random_and_always_offload(
    api, agents, mysql_url, algorithm
):
    """Margin: the greedy policy's cost (minus its mean return) is at most half that of
    random play and of the best always-offload policy, on the same 10 episodes (as the
    serial test in test_mec_env.py). Measured (seed 1, evaluation seeds 2000-2009): random
    -996, always-local -715, best always-offload -691; DQN -129 to -143, PPO -146 to -148
    (about 20 s each)."""
    agents.start("solo")
    run = {"algorithm": algorithm, "target_episode": 120, "seed": 1, **MEC_RUNS[algorithm]}
    status, body = await api.post("/train/", json={**run, **RUNT_FIELDS})
    assert status == 201, body
    model = await wait_for(api, body["id"], lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_reason"]
    assert model["env_id"] == ENV_ID and model["env_params"] == RUNT_FIELDS

    baselines = mec_baselines(RUNT_FIELDS)
    learned = trained_score(mysql_url, body["id"], ENV_ID, RUNT_FIELDS)
    rounded = {name: round(score, 1) for name, score in baselines.items()}
    print(
        f"\n{algorithm} over RabbitMQ: learned {learned:.1f} after "
        f"{model['metrics']['charts/env_steps']:.0f} env steps; baselines {rounded}"
    )
    for name in ("random", "always_offload"):
        assert learned >= baselines[name] / 2, (name, learned, rounded)


PENDULUM_PRESET = {
    # configs/ppo_pendulum.yaml (rl-baselines3-zoo's Pendulum-v1 settings, without gSDE),
    # evaluated after every rollout of 4 x 1024 steps.
    "algorithm": "ppo",
    "env_id": "Pendulum-v1",
    "learning_rate": 1e-3,
    "batch_size": 64,
    "buffer_size": 4096,
    "gamma": 0.9,
    "num_workers": 1,
    "hyperparameters": {
        "envs_per_worker": 4,
        "n_steps": 1024,
        "n_epochs": 10,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "hidden": [64, 64],
        "eval_interval_updates": 1,
        "eval_episodes": 10,
    },
}


async def test_ppo_with_gaussian_actions_learns_pendulum_over_rabbitmq(api, agents, mysql_url):
    """Box actions end to end: Gaussian samples from the workers, clipped to [-2, 2] when
    stepping, the raw samples' log-probabilities in the segments. The run stops when a
    greedy evaluation reaches -500; judged again on our own seeds, the policy must score
    at least half of random's cost (random torques: about -1200 per episode). Measured
    serially: -640 after 33k env steps, -400 after 41k (~17 s); over the broker -424 after
    41k env steps (34 s; random -1189 on the same seeds)."""
    agents.start("solo")
    run = {**PENDULUM_PRESET, "target_episode": 400, "stop_reward": -500, "seed": 0}
    status, body = await api.post("/train/", json=run)
    assert status == 201, body
    model = await wait_for(api, body["id"], lambda m: m["status"] in TERMINAL, timeout=150)
    assert model["status"] == "completed", model["status_reason"]

    random_score = play("Pendulum-v1", {}, lambda env, obs, rng: env.action_space.sample())
    learned = trained_score(mysql_url, body["id"], "Pendulum-v1", {})
    print(
        f"\nPPO (Gaussian) on Pendulum-v1 over RabbitMQ: learned {learned:.1f} after "
        f"{model['metrics']['charts/env_steps']:.0f} env steps; random {random_score:.1f}"
    )
    assert learned >= random_score / 2, (learned, random_score)
