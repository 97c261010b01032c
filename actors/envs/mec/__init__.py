"""Mobile-edge-computing task offloading, the environment behind RUNT's task fields.

Importing this package registers `runt/MecOffload-v0` with Gymnasium; `actors.envs.build`
imports it, so every actor that builds environments can make it. Episodes are
`max_episode_steps` decisions long (one decision per arriving task, default below);
`gym.make` and a run's `env_params` may set another length.
"""

from __future__ import annotations

import gymnasium as gym

from actors.envs.mec.env import LOCAL, MecOffloadEnv, Outcome, Task
from actors.envs.mec.params import MecParams

ENV_ID = "runt/MecOffload-v0"  # schemas.api.MEC_ENV_ID
EPISODE_DECISIONS = 200  # default episode length, decisions (tasks)

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="actors.envs.mec.env:MecOffloadEnv",
        max_episode_steps=EPISODE_DECISIONS,
    )

__all__ = ["ENV_ID", "EPISODE_DECISIONS", "LOCAL", "MecOffloadEnv", "MecParams", "Outcome", "Task"]
