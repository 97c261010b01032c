"""What the web service's tests build again and again: runs created through the API,
episodes and checkpoints stored as the event log stores them, the canned training runs the
assistant is tried on, and the environment of a `runt` process on a test database."""

from __future__ import annotations

import os

import numpy as np
import yaml

from actors.algorithms.dqn import DQNConfig, DQNLearner
from actors.envs.build import EnvSpaces, make_env
from broker.codec import state_to_bytes
from configs import CONFIG_DIR
from schemas.messages import RunSpec
from tests.conftest import Api
from web.db.tables import Checkpoint, Model, TrainingData

RUN = {"algorithm": "dqn", "target_episode": 50, "env_id": "CartPole-v1"}


async def create(api: Api, **fields) -> int:
    status, body = await api.post("/train/", json={**RUN, **fields})
    assert status == 201, body
    return body["data"]["id"]


def add_episodes(database, model_id: int, rewards: list[float]) -> None:
    """Record episodes 1..N as the event-log consumer does, current_episode included."""

    def _add(session):
        session.get(Model, model_id).current_episode = len(rewards)
        smoothed = rewards[0]
        for episode, reward in enumerate(rewards, start=1):
            smoothed = 0.95 * smoothed + 0.05 * reward
            session.add(
                TrainingData(
                    model_id=model_id,
                    episode=episode,
                    reward=reward,
                    smoothed_reward=smoothed,
                    length=int(reward),
                    worker=episode % 2,
                    worker_seq=episode,
                )
            )

    database.call(_add)


def learner_for(env_id: str = "CartPole-v1", seed: int = 3) -> DQNLearner:
    spec = RunSpec(
        run_id=1, algorithm="dqn", env_id=env_id, learning_rate=1e-3, batch_size=32,
        buffer_size=1000, gamma=0.99, seed=seed, num_workers=1, target_episode=1,
        hyperparameters={"hidden": [16]},
    )  # fmt: skip
    env = make_env(env_id, {}, seed=seed)
    spaces = EnvSpaces.from_env(env)
    env.close()
    return DQNLearner(DQNConfig.from_spec(spec), spaces, seed=seed)


def store_checkpoint(database, model_id: int, learner: DQNLearner, version: int, env_id: str):
    meta = {"algorithm": "dqn", "env_id": env_id, "env_params": {}}
    meta["network"] = learner.network_meta()
    database.call(
        lambda s: s.add(
            Checkpoint(
                model_id=model_id,
                version=version,
                env_steps=version * 10,
                episode=version,
                weights=state_to_bytes(learner.state()),
                meta=meta,
            )
        )
    )


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `runt` subprocess on `db_url` and the in-process broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
    env.update(RUNT_DATABASE_URL=db_url, RUNT_BROKER_URL="memory://", RUNT_LOG_FORMAT="json")
    env.update(extra)
    return env


# ---- canned runs for the training assistant ------------------------------------------------

PRESET = yaml.safe_load((CONFIG_DIR / "dqn_cartpole.yaml").read_text())


def collapsing_rewards() -> list[float]:
    """CartPole: up to ~300 over 150 episodes, then down to ~20 over 100."""
    noise = np.random.default_rng(1).normal(0, 10, 250)
    curve = np.concatenate([np.linspace(10, 300, 150), np.linspace(300, 20, 100)])
    return [round(float(r), 1) for r in np.clip(curve + noise, 8, 500)]


def diverging_metrics() -> list[dict]:
    """The TD loss falls to 0.5, then grows 100x; Q-values reach 5000 (returns allow 100)."""
    loss = np.concatenate([np.linspace(1.0, 0.5, 20), np.geomspace(0.5, 50, 30)])
    q_mean = np.geomspace(1, 5000, 50)
    return [
        {"losses/td_loss": float(l_), "losses/q_mean": float(q), "charts/env_steps": 1000.0 * i}
        for i, (l_, q) in enumerate(zip(loss, q_mean, strict=True))
    ]


def plateau_rewards() -> list[float]:
    """Up to ~150 in 100 episodes, then flat at 150 for 200 more."""
    noise = np.random.default_rng(2).normal(0, 15, 300)
    curve = np.concatenate([np.linspace(10, 150, 100), np.full(200, 150.0)])
    return [round(float(r), 1) for r in np.clip(curve + noise, 8, 500)]


def exhausted_metrics() -> list[dict]:
    """Epsilon at the preset's floor, long after its anneal (0.16 x 50,000 = 8,000 steps)."""
    return [{"charts/epsilon": 0.04, "charts/env_steps": 40_000.0 + 1000 * i} for i in range(20)]


def solved_rewards() -> list[float]:
    return [float(r) for r in np.concatenate([np.linspace(10, 500, 150), np.full(100, 500.0)])]


SHORT_REWARDS = [10.0, 12.0, 9.0, 15.0, 20.0, 11.0, 13.0, 14.0]
