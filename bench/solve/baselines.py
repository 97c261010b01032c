"""The contenders that run in a child process of the benchmark per trial: stable-baselines3's
DQN and PPO with the rl-baselines3-zoo hyperparameters, and runt's serial DQN."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import REPO, end_process, load_preset

from solve.common import EVAL_EPISODES, SOLVED_MEAN, TORCH_THREADS, Trial, runt_spec

SCRIPT = Path(__file__).resolve().parents[1] / "time_to_solve.py"  # the children's entry

# rl-baselines3-zoo, hyperparams/dqn.yml, entry CartPole-v1 ("Almost Tuned"):
# https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/hyperparams/dqn.yml
ZOO_DQN: dict[str, Any] = {
    "n_timesteps": 50_000,  # n_timesteps: !!float 5e4
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "net_arch": [256, 256],  # policy_kwargs: "dict(net_arch=[256, 256])"
}
# rl-baselines3-zoo, hyperparams/ppo.yml, entry CartPole-v1 ("Tuned"):
# https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/hyperparams/ppo.yml
ZOO_PPO: dict[str, Any] = {
    "n_envs": 8,
    "n_timesteps": 100_000,  # n_timesteps: !!float 1e5
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 0.001,  # lin_0.001: linear from 0.001 to 0 over n_timesteps
    "clip_range": 0.2,  # lin_0.2
}


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def sb3_child(args: argparse.Namespace) -> int:
    """One stable-baselines3 trial; reports JSON lines on stdout."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from actors.algorithms.evaluate import evaluate

    env_id = load_preset(args.preset)["env_id"]
    emit(event="ready")
    started = time.perf_counter()

    class GreedySB3:
        def __init__(self, model):
            self.model = model

        def greedy(self, obs):
            return self.model.predict(obs, deterministic=True)[0]

    class SolvedCheck(BaseCallback):
        """Evaluate every `eval_every` env steps; stop when solved or at the time cap."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = args.eval_every
            self.reason = "budget"
            self.eval_s = 0.0  # spent evaluating, inline in the training loop

        @staticmethod
        def elapsed() -> float:
            return time.perf_counter() - started

        def _on_step(self) -> bool:
            if time.perf_counter() - started > args.time_cap:
                self.reason = "time_cap"
                return False
            if self.num_timesteps < self.next_eval:
                return True
            while self.next_eval <= self.num_timesteps:
                self.next_eval += args.eval_every
            seed = args.seed + 7 + self.num_timesteps
            began = time.perf_counter()
            result = evaluate(GreedySB3(self.model), env_id, None, EVAL_EPISODES, seed=seed)
            self.eval_s += time.perf_counter() - began
            emit(
                event="eval",
                steps=self.num_timesteps,
                mean=result.mean,
                t=self.elapsed(),
                eval_s=self.eval_s,
            )
            if result.mean >= SOLVED_MEAN:
                self.reason = "solved"
                return False
            return True

    if args.child == "sb3-dqn":
        zoo = ZOO_DQN
        model = DQN(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=1, seed=args.seed),
            learning_rate=zoo["learning_rate"],
            batch_size=zoo["batch_size"],
            buffer_size=zoo["buffer_size"],
            learning_starts=zoo["learning_starts"],
            gamma=zoo["gamma"],
            target_update_interval=zoo["target_update_interval"],
            train_freq=zoo["train_freq"],
            gradient_steps=zoo["gradient_steps"],
            exploration_fraction=zoo["exploration_fraction"],
            exploration_final_eps=zoo["exploration_final_eps"],
            policy_kwargs={"net_arch": zoo["net_arch"]},
            seed=args.seed,
            device="cpu",
        )
    else:
        zoo = ZOO_PPO
        lr, clip = zoo["learning_rate"], zoo["clip_range"]
        model = PPO(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=zoo["n_envs"], seed=args.seed),
            n_steps=zoo["n_steps"],
            batch_size=zoo["batch_size"],
            gae_lambda=zoo["gae_lambda"],
            gamma=zoo["gamma"],
            n_epochs=zoo["n_epochs"],
            ent_coef=zoo["ent_coef"],
            learning_rate=lambda progress_remaining: progress_remaining * lr,  # zoo "lin_"
            clip_range=lambda progress_remaining: progress_remaining * clip,
            seed=args.seed,
            device="cpu",
        )
    check = SolvedCheck()
    model.learn(total_timesteps=zoo["n_timesteps"], callback=check)
    emit(event="end", reason=check.reason, steps=model.num_timesteps)
    return 0


def serial_child(args: argparse.Namespace) -> int:
    """runt's DQN with the same preset in one process (actors/algorithms/serial.py): no broker, no
    actor processes. Its evaluations carry their time since the run was built."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    from actors.algorithms.serial import SerialRun

    emit(event="ready")
    spec = runt_spec(load_preset(args.preset), 1, args.seed, args.num_workers)
    result = SerialRun(spec).run(time_limit_s=args.time_cap)
    for record in result.evaluations:
        emit(event="eval", steps=record.env_steps, mean=record.mean, t=record.wall_time_s)
    emit(event="end", reason=result.stop_reason, steps=result.env_steps)
    return 0


def run_child_trial(args: argparse.Namespace, contender: str, seed: int, every: int) -> Trial:
    trial = Trial(contender, seed)
    command = [sys.executable, str(SCRIPT), "--child", contender]
    command += ["--seed", str(seed), "--eval-every", str(every), "--time-cap", str(args.time_cap)]
    command += ["--preset", args.preset]
    if args.num_workers is not None:
        command += ["--num-workers", str(args.num_workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launched = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    watchdog = threading.Timer(args.time_cap + 120, proc.kill)  # a hung child, not a slow one
    watchdog.start()
    try:
        for line in proc.stdout:
            now = time.monotonic() - launched
            msg = json.loads(line)
            if msg["event"] == "ready":
                trial.startup_s = now
            elif msg["event"] == "eval":
                trial.record_eval(msg["mean"])
                if msg["mean"] >= SOLVED_MEAN and not trial.solved:
                    trial.solved, trial.env_steps = True, msg["steps"]
                    trial.wall_s = (trial.startup_s or 0.0) + msg["t"]
                    trial.eval_s = msg.get("eval_s")
            elif msg["event"] == "end" and not trial.solved:
                trial.note = f"{msg['reason']} at {msg['steps']} steps"
        proc.wait()
        if proc.returncode and not trial.solved:
            trial.note = f"exit code {proc.returncode}"
    finally:
        watchdog.cancel()
        end_process(proc, grace=5.0)
    return trial
