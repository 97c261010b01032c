"""Documented good ranges of hyperparameters, per algorithm, each with its source.

Names are runt's (`actors/algorithms/dqn.py`) for DQN and stable-baselines3's for PPO and SAC.
`typical` is what the assistant suggests when a value falls outside [low, high]. The
ranges are deliberately wide: a value outside one is unusual in the published
settings, not necessarily wrong.

Sources, abbreviated in `source` below: Mnih et al. 2015, "Human-level control through deep
reinforcement learning" (DQN; extended data table 1); Schulman et al. 2017, "Proximal Policy
Optimization Algorithms" (tables 3-5); Schulman et al. 2016 (GAE); Haarnoja et al. 2018a/b,
"Soft Actor-Critic" and "SAC: Algorithms and Applications" (table 1); SB3: stable-baselines3's
defaults; rl-zoo: rl-baselines3-zoo's hyperparams/{dqn,ppo,sac}.yml, tuned per environment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    typical: float
    source: str


DQN: dict[str, Range] = {
    # Mnih 2015: 2.5e-4 (RMSProp); SB3: 1e-4; rl-zoo: 6.3e-4 (LunarLander) .. 2.3e-3 (CartPole)
    "learning_rate": Range(
        1e-5, 3e-3, 1e-3, "Mnih et al. 2015: 2.5e-4; SB3 default 1e-4; rl-zoo 6.3e-4 to 2.3e-3"
    ),
    # Mnih 2015 and SB3: 32; rl-zoo: 64 (CartPole), 128 (LunarLander)
    "batch_size": Range(32, 256, 64, "Mnih et al. 2015 and SB3 default: 32; rl-zoo 64 to 128"),
    # Mnih 2015 and SB3: 0.99; rl-zoo classic control: 0.98 to 0.99
    "gamma": Range(0.9, 0.9999, 0.99, "Mnih et al. 2015 and SB3 default: 0.99"),
    # Mnih 2015: 0.1; SB3: 0.05; rl-zoo CartPole: 0.04; Dopamine's Rainbow: 0.01
    "exploration_final_eps": Range(
        0.01, 0.1, 0.05, "Mnih et al. 2015: 0.1; SB3 default 0.05; rl-zoo CartPole 0.04"
    ),
    # SB3: 0.1; rl-zoo CartPole 0.16, LunarLander 0.12; Mnih 2015: 1M of 50M frames (0.02)
    "exploration_fraction": Range(
        0.02, 0.5, 0.1, "SB3 default 0.1; rl-zoo 0.12 to 0.16; Mnih et al. 2015: 0.02"
    ),
    # replay ratio = batch / train_freq: Mnih 2015 32/4 = 8; rl-zoo CartPole 64*128/256 = 32
    "samples_per_insert": Range(1, 64, 8, "Mnih et al. 2015: 32 every 4 steps = 8; rl-zoo 32"),
    # SB3 DQN default; rl-zoo keeps it
    "max_grad_norm": Range(0.1, 10, 10, "SB3 DQN default 10"),
}

# Updates between hard target copies, or interval / tau for soft updates. Mnih 2015:
# every 10,000 steps with an update every 4 steps = 2,500 updates; soft updates with
# tau = 0.005 (Lillicrap et al. 2016, Haarnoja et al. 2018) average over ~200 updates.
TARGET_PERIOD = Range(
    50, 20_000, 1000, "Mnih et al. 2015: 2,500 updates; tau 0.005 (Haarnoja et al. 2018): ~200"
)

# Replay capacity below this (while the run makes more steps) forgets quickly.
# rl-zoo's smallest classic-control buffer is 10,000 (MountainCar); Zhang & Sutton 2017
# ("A Deeper Look at Experience Replay") show small buffers hurt.
MIN_BUFFER = 10_000
BUFFER_SOURCE = "rl-zoo: 1e4 (MountainCar) to 1e5 (CartPole); Zhang & Sutton 2017"

PPO: dict[str, Range] = {
    # Schulman 2017 (MuJoCo) and SB3: 3e-4; Atari 2.5e-4
    "learning_rate": Range(1e-5, 1e-3, 3e-4, "Schulman et al. 2017 and SB3 default: 3e-4"),
    # Schulman 2017: 0.2 worked best of 0.1, 0.2, 0.3
    "clip_range": Range(0.1, 0.3, 0.2, "Schulman et al. 2017: 0.2 (best of 0.1-0.3)"),
    # Schulman 2017: 10 (MuJoCo), 3 (Atari); SB3: 10; rl-zoo: 4 to 20
    "n_epochs": Range(3, 20, 10, "Schulman et al. 2017: 3 (Atari) to 10 (MuJoCo); SB3 10"),
    # Schulman 2017: 2048 (MuJoCo), 128 x 8 actors (Atari); SB3: 2048; rl-zoo: 32 to 2048
    "n_steps": Range(32, 8192, 2048, "Schulman et al. 2017 and SB3 default: 2048; rl-zoo 32+"),
    # Schulman 2016 (GAE): 0.92 to 0.99 worked best; SB3: 0.95
    "gae_lambda": Range(0.9, 1.0, 0.95, "Schulman et al. 2016: 0.92-0.99; SB3 default 0.95"),
    # SB3: 0.0; Schulman 2017 Atari: 0.01; rl-zoo up to ~0.01
    "ent_coef": Range(0.0, 0.05, 0.0, "SB3 default 0.0; Schulman et al. 2017 Atari: 0.01"),
    # SB3: minibatch 64; Schulman 2017: 64 (MuJoCo), 32 x 8 (Atari)
    "batch_size": Range(32, 4096, 64, "Schulman et al. 2017 and SB3 default: 64"),
    "gamma": Range(0.9, 0.9999, 0.99, "Schulman et al. 2017 and SB3 default: 0.99"),
    # SB3 PPO default; Schulman 2017 does not clip
    "max_grad_norm": Range(0.1, 10, 0.5, "SB3 PPO default 0.5"),
}

SAC: dict[str, Range] = {
    # Haarnoja 2018a table 1 and SB3: 3e-4
    "learning_rate": Range(1e-4, 1e-3, 3e-4, "Haarnoja et al. 2018 and SB3 default: 3e-4"),
    # Haarnoja 2018a: 0.005; SB3: 0.005; rl-zoo: 0.005 to 0.02
    "tau": Range(0.001, 0.02, 0.005, "Haarnoja et al. 2018 and SB3 default: 0.005"),
    # Haarnoja 2018a: 256; SB3: 256; rl-zoo: 64 to 512
    "batch_size": Range(64, 1024, 256, "Haarnoja et al. 2018 and SB3 default: 256"),
    "gamma": Range(0.9, 0.9999, 0.99, "Haarnoja et al. 2018 and SB3 default: 0.99"),
    # ent_coef: a fixed value is advised against altogether (hyper.sac_entropy)
}

RANGES: dict[str, dict[str, Range]] = {"dqn": DQN, "ppo": PPO, "sac": SAC}

# Names only one algorithm uses: they tell the algorithm when a request leaves it out.
ALGORITHM_HINTS: dict[str, tuple[str, ...]] = {
    "ppo": ("clip_range", "n_epochs", "gae_lambda", "n_steps", "vf_coef"),
    "sac": ("target_entropy", "ent_coef_init"),
    "dqn": ("exploration", "exploration_final_eps", "exploration_fraction", "samples_per_insert"),
}

# Hidden widths that suit low-dimensional control (SB3's MlpPolicy is [64, 64] for DQN
# and PPO, [256, 256] for SAC; rl-zoo's DQN CartPole and LunarLander use [256, 256]).
WIDE_HIDDEN = [256, 256]
NET_SOURCE = "SB3 MlpPolicy [64, 64] (DQN, PPO), [256, 256] (SAC); rl-zoo DQN [256, 256]"
