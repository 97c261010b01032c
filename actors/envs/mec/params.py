"""Parameters of runt/MecOffload-v0: RUNT's seven fields plus runt's own, validated.

Every parameter is optional; the defaults are in SI units (bits, cycles, seconds,
tasks/s, cycles/s, Hz, W). An invalid one is a ValueError that names it, which
POST /train/ passes on to the user.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

from actors.envs.mec import constants as c

MAX_SHARE_LEVELS = 4  # the edge server is split into 2^(levels - 1) units; keep that small
MAX_POWER_LEVELS = 8
MAX_UE = 1000  # as POST /train/ allows
COUNTS = ("n_UE", "n_power_levels", "n_share_levels")  # whole numbers >= 1
WEIGHTS = ("latency_weight", "energy_weight", "deadline_penalty")  # numbers >= 0


@dataclass(frozen=True)
class MecParams:
    """The environment's constructor arguments; the defaults are documented in
    `constants.py` with their sources."""

    # -- RUNT's fields (names and spelling as RUNT sends them) --
    task_size_average: float = c.TASK_SIZE_AVERAGE_BITS  # bits uploaded per task, mean
    task_comsumption_average: float = c.TASK_CYCLES_AVERAGE  # CPU cycles per task, mean
    task_time_average: float = c.TASK_DEADLINE_AVERAGE_S  # s from arrival to deadline, mean
    task_arrival_rate: float = c.TASK_ARRIVAL_RATE_PER_S  # tasks/s of each device (Poisson)
    n_UE: int = c.N_UE  # user devices
    UE_computation_capacity: float = c.UE_CPU_HZ  # cycles/s of each device's CPU
    MEC_computation_capacity: float = c.MEC_CPU_HZ  # cycles/s of the whole edge server
    # -- runt's own --
    bandwidth: float = c.DEVICE_BANDWIDTH_HZ  # Hz of uplink sub-band per device
    max_transmit_power: float = c.MAX_TRANSMIT_POWER_W  # W, the highest power level
    n_power_levels: int = 3  # powers max / 2^k, k = levels-1 .. 0 (3 dB apart)
    n_share_levels: int = 3  # edge shares 2^-k, k = levels-1 .. 0 (1/4, 1/2, 1)
    latency_weight: float = 1.0  # reward lost per second of latency, 1/s
    energy_weight: float = 1.0  # reward lost per joule a device spends, 1/J
    deadline_penalty: float = 1.0  # reward lost per task that misses its deadline

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in COUNTS:
                object.__setattr__(self, field.name, _integer(field.name, value))
            else:
                _number(field.name, value)
        _at_most("n_UE", self.n_UE, MAX_UE)
        _at_most("n_share_levels", self.n_share_levels, MAX_SHARE_LEVELS)
        _at_most("n_power_levels", self.n_power_levels, MAX_POWER_LEVELS)
        if self.latency_weight + self.energy_weight + self.deadline_penalty == 0:
            raise ValueError("latency_weight: all reward weights are zero")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> MecParams:
        known = [field.name for field in dataclasses.fields(cls)]
        for name in kwargs:
            if name not in known:
                raise ValueError(
                    f"{name}: unknown parameter of runt/MecOffload-v0 (known: {', '.join(known)})"
                )
        return cls(**kwargs)

    @property
    def n_edge_units(self) -> int:
        """The edge server is split into this many equal units (virtual CPUs)."""
        return 2 ** (self.n_share_levels - 1)

    @property
    def share_units(self) -> tuple[int, ...]:
        """Edge units each share level books: 1, 2, 4, ... up to the whole server."""
        return tuple(2**k for k in range(self.n_share_levels))

    @property
    def power_levels(self) -> tuple[float, ...]:
        """Transmit powers in W, lowest first, 3 dB apart, the last one the maximum."""
        top = self.n_power_levels - 1
        return tuple(self.max_transmit_power / 2 ** (top - k) for k in range(top + 1))


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if name in WEIGHTS:
        if value < 0:
            raise ValueError(f"{name}: must be zero or positive, got {value!r}")
    elif value <= 0:
        raise ValueError(f"{name}: must be positive, got {value!r}")


def _integer(name: str, value: Any) -> int:
    """A whole number >= 1; JSON may carry it as 5.0."""
    is_real = isinstance(value, Real) and not isinstance(value, bool)
    if not is_real or not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name}: must be a whole number, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: must be at least 1, got {value!r}")
    return int(value)


def _at_most(name: str, value: int, limit: int) -> None:
    if value > limit:
        raise ValueError(f"{name}: must be at most {limit}, got {value}")
