"""Metric sinks: a run's trainer also writes what it reports to TensorBoard event files
and/or a Weights & Biases run, when the run's `metric_sinks` asks for them.

Files go under the trainer's `training.metrics_dir` (actors/settings.py), one folder per
run: `run-<id>/tensorboard/` (open with `tensorboard --logdir`) and `run-<id>/wandb/`
(an offline run there uploads with `wandb sync`), over the run's env steps: every metrics
report, every greedy evaluation (`eval/…`) and every training episode
(`charts/episodic_…`). The packages are the optional extra `runt[metrics]`, imported only
by a trainer whose run asks for them. See docs/algorithms.md (metric sinks).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from actors.settings import metrics_dir
from schemas.messages import RunSpec

log = logging.getLogger("runt.sinks")


class MetricWriter:
    """The sinks of one run; without any, every call does nothing."""

    def __init__(self, tensorboard: Any = None, wandb_run: Any = None):
        self.tensorboard = tensorboard
        self.wandb = wandb_run
        self.episodes = 0

    @classmethod
    def for_run(cls, spec: RunSpec, directory: Path | None = None) -> MetricWriter:
        sinks = spec.metric_sinks
        if sinks is None or not (sinks.tensorboard or sinks.wandb):
            return cls()
        folder = (directory or metrics_dir()) / f"run-{spec.run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        tensorboard = wandb_run = None
        if sinks.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            tensorboard = SummaryWriter(log_dir=str(folder / "tensorboard"), flush_secs=10)
        if sinks.wandb is not None:
            wandb_run = _start_wandb(spec, folder)
        log.info("metrics of run %d also go to %s", spec.run_id, folder)
        return cls(tensorboard, wandb_run)

    @property
    def active(self) -> bool:
        return self.tensorboard is not None or self.wandb is not None

    def scalars(self, values: dict[str, float], env_steps: int) -> None:
        if self.tensorboard is not None:
            for name, value in values.items():
                self.tensorboard.add_scalar(name, value, global_step=env_steps)
        if self.wandb is not None:
            self.wandb.log({**values, "env_steps": env_steps})

    def episode(self, reward: float, length: int, env_steps: int) -> None:
        if not self.active:
            return
        self.episodes += 1
        self.scalars(
            {"charts/episodic_return": reward, "charts/episodic_length": float(length)},
            env_steps,
        )

    def evaluation(self, mean: float, std: float, env_steps: int) -> None:
        self.scalars({"eval/mean_return": mean, "eval/std_return": std}, env_steps)

    def close(self) -> None:
        """Flush and close; a failing sink is logged, never raised (training is done)."""
        if self.tensorboard is not None:
            try:
                self.tensorboard.close()
            except Exception:
                log.exception("closing the TensorBoard writer failed")
        if self.wandb is not None:
            try:
                self.wandb.finish()
            except Exception:
                log.exception("finishing the W&B run failed")
        self.tensorboard = self.wandb = None


def _start_wandb(spec: RunSpec, folder: Path):
    import wandb

    sink = spec.metric_sinks.wandb
    run = wandb.init(
        project=sink.project,
        entity=sink.entity,
        mode=sink.mode,
        dir=str(folder),
        name=f"runt-{spec.run_id}",
        id=f"runt-{spec.run_id}-{uuid.uuid4().hex[:8]}",
        config=spec.model_dump(mode="json", exclude={"resume", "metric_sinks"}),
        reinit="create_new",  # trainers of several runs may share a process (runt up)
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )
    run.define_metric("*", step_metric="env_steps")
    return run
