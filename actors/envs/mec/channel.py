"""Radio and computing physics of runt/MecOffload-v0, as plain functions in SI units.

Uplink: each device sends on its own sub-band of bandwidth B (orthogonal access, so no
interference between devices) at the Shannon rate

    r = B log2(1 + p g / (N0 B))        [bit/s]

with transmit power p [W], channel power gain g = 10^(-L(d)/10) |h|^2 (path loss L(d)
from TR 36.814, Rayleigh fading |h|^2 ~ Exp(1)) and receiver noise density N0 [W/Hz]
(thermal noise raised by the base station's noise figure). See `constants.py`.

Computing: C cycles on a CPU of f cycles/s take C / f seconds; on a device they cost
kappa f^2 C joules (Mao et al. 2017). The device pays p x (upload time) joules to offload;
like most MEC models, the energy of receiving the (small) result is neglected.
"""

from __future__ import annotations

import numpy as np

from actors.envs.mec.constants import (
    EFFECTIVE_SWITCHED_CAPACITANCE,
    NOISE_PSD_DBM_PER_HZ,
    PATH_LOSS_AT_1_KM_DB,
    PATH_LOSS_PER_DECADE_DB,
    RECEIVER_NOISE_FIGURE_DB,
)

LN_2 = float(np.log(2.0))


def db_to_linear(db: float | np.ndarray) -> float | np.ndarray:
    return 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)


def dbm_to_watts(dbm: float) -> float:
    return float(db_to_linear(dbm - 30.0))


def path_loss_db(distance_m: float | np.ndarray) -> float | np.ndarray:
    """TR 36.814 macro-cell path loss, 128.1 + 37.6 log10(d / 1 km), in dB."""
    distance_km = np.asarray(distance_m, dtype=np.float64) / 1000.0
    return PATH_LOSS_AT_1_KM_DB + PATH_LOSS_PER_DECADE_DB * np.log10(distance_km)


def channel_gain(distance_m: float, fading: float) -> float:
    """Power gain (linear) of a link at `distance_m` with fading power `fading` (|h|^2)."""
    return float(db_to_linear(-path_loss_db(distance_m))) * fading


def noise_psd_watts_per_hz() -> float:
    """N0 at the base station's receiver: -174 dBm/Hz plus its noise figure, in W/Hz."""
    return dbm_to_watts(NOISE_PSD_DBM_PER_HZ + RECEIVER_NOISE_FIGURE_DB)


def shannon_rate(bandwidth_hz: float, power_w: float, gain: float, noise_psd: float) -> float:
    """Uplink rate in bit/s: B log2(1 + p g / (N0 B))."""
    snr = power_w * gain / (noise_psd * bandwidth_hz)
    return bandwidth_hz * float(np.log1p(snr)) / LN_2  # log1p: still > 0 for a tiny SNR


def compute_time(cycles: float, cpu_hz: float) -> float:
    """Seconds to run `cycles` on a CPU of `cpu_hz` cycles/s."""
    return cycles / cpu_hz


def local_energy(cycles: float, cpu_hz: float) -> float:
    """Joules a device spends computing `cycles` at `cpu_hz`: kappa f^2 C."""
    return EFFECTIVE_SWITCHED_CAPACITANCE * cpu_hz**2 * cycles


def transmit_energy(power_w: float, upload_s: float) -> float:
    """Joules a device spends transmitting at `power_w` for `upload_s` seconds."""
    return power_w * upload_s
