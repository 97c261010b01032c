"""What every part of the time-to-solve benchmark shares: the contenders, the definition
of solved, a trial's record and the run runt is given."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchlib import REPO

CONTENDERS = ("runt", "runt-ppo", "sb3-dqn", "sb3-ppo")
DIAGNOSTIC = ("runt-serial",)  # only when named in --only
RUNT = ("runt", "runt-ppo")  # runt over the broker, with the DQN and the PPO preset
# Which of runt's presets a contender is paired with: it is evaluated as often as that
# preset's trainer evaluates, and runt's contender of the same algorithm is its match.
ALGORITHM = {
    "runt": "dqn",
    "runt-serial": "dqn",
    "sb3-dqn": "dqn",
    "runt-ppo": "ppo",
    "sb3-ppo": "ppo",
}
SOLVED_MEAN = 475.0  # Gymnasium's reward_threshold for CartPole-v1
EVAL_EPISODES = 10
TORCH_THREADS = 1
DEFAULT_DATABASE_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
PPO_PRESET = REPO / "configs" / "ppo_cartpole.yaml"
USERNAME, PASSWORD = "bench", "bench-password"


def runt_eval_interval(preset: dict[str, Any]) -> int:
    """Env steps between two of runt's evaluations. DQN: updates per evaluation divided
    by updates per env step, which the replay ratio fixes (samples_per_insert / batch).
    PPO: updates per evaluation times the env steps of one update's batch."""
    from actors.algorithms.table import algorithm_of

    spec = runt_spec(preset, run_id=1, seed=0, num_workers=None)
    config = algorithm_of(spec).config_of(spec)
    if spec.algorithm == "ppo":
        batch = config.num_workers * config.envs_per_worker * config.n_steps
        return config.eval_interval_updates * batch
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
    # Of wall_s, the seconds spent evaluating in the training loop (the baselines; runt's
    # evaluator runs beside its trainer, so None there)
    eval_s: float | None = None
    evaluations: int = 0
    best_mean: float | None = None
    note: str = ""

    def record_eval(self, mean: float) -> None:
        self.evaluations += 1
        self.best_mean = mean if self.best_mean is None else max(self.best_mean, mean)
