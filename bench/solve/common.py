"""What every part of the time-to-solve benchmark shares: the contenders, the definition
of solved, a trial's record and the run runt is given."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CONTENDERS = ("runt", "sb3-dqn", "sb3-ppo")
DIAGNOSTIC = ("runt-serial",)  # only when named in --only
SOLVED_MEAN = 475.0  # Gymnasium's reward_threshold for CartPole-v1
EVAL_EPISODES = 10
TORCH_THREADS = 1
DEFAULT_DATABASE_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
USERNAME, PASSWORD = "bench", "bench-password"


def runt_eval_interval(preset: dict[str, Any]) -> int:
    """Env steps between two of runt's evaluations: updates per evaluation divided by
    updates per env step, which the replay ratio fixes (samples_per_insert / batch)."""
    from actors.dqn import DQNConfig

    config = DQNConfig.from_spec(runt_spec(preset, run_id=1, seed=0, num_workers=None))
    return round(config.eval_interval_updates * config.batch_size / config.samples_per_insert)


def train_body(preset: dict[str, Any], seed: int, num_workers: int | None) -> dict[str, Any]:
    """The POST /train/ body: the preset, this trial's seed, stop at 475."""
    body = {**preset, "seed": seed, "stop_reward": SOLVED_MEAN, "name": f"bench-seed{seed}"}
    if num_workers is not None:
        body["num_workers"] = num_workers
    return body


def runt_spec(preset: dict[str, Any], run_id: int, seed: int, num_workers: int | None):
    """The RunSpec the web service would send for `train_body(...)`."""
    from schemas.api import TrainRequest
    from schemas.messages import RunSpec

    req = TrainRequest(**train_body(preset, seed, num_workers))
    fields = {name: getattr(req, name) for name in RunSpec.model_fields if hasattr(req, name)}
    return RunSpec(**{**fields, "run_id": run_id, "seed": seed})


@dataclass
class Trial:
    contender: str
    seed: int
    solved: bool = False
    wall_s: float = math.inf  # launch/submission -> solved evaluation received
    startup_s: float | None = None
    env_steps: float = math.inf  # at the solved evaluation
    evaluations: int = 0
    best_mean: float | None = None
    note: str = ""

    def record_eval(self, mean: float) -> None:
        self.evaluations += 1
        self.best_mean = mean if self.best_mean is None else max(self.best_mean, mean)
