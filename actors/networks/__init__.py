"""Networks: runt's MLPs (`mlp`), the actor-critic heads PPO and SAC share (`policies`)
and users' own classes (`custom`).

`actors.networks:MLPTorso`, `actors.networks:DuelingQNetwork` and `actors.networks:QNetwork`
are the dotted paths runs and configs store, and `actors.networks` is the default of
`training.allowed_modules`: this package keeps those names (docs/algorithms.md).
"""

from actors.networks.mlp import (
    DEFAULT_HIDDEN,
    DuelingQNetwork,
    MLPTorso,
    QNetwork,
    build_q_network,
    network_from_meta,
)

__all__ = [
    "DEFAULT_HIDDEN",
    "DuelingQNetwork",
    "MLPTorso",
    "QNetwork",
    "build_q_network",
    "network_from_meta",
]
