"""Physical constants of runt/MecOffload-v0, each with its unit and its source.

TR 36.814 is 3GPP TR 36.814 v9.0.0 (2010), "Further advancements for E-UTRA physical
layer aspects", Annex A.2.1.1 (system-simulation baseline, urban macro cell, case 1).
"""

from __future__ import annotations

# ---- channel -----------------------------------------------------------------------------

# Distance-dependent path loss L = 128.1 + 37.6 log10(d / 1 km) dB (TR 36.814, macro cell).
PATH_LOSS_AT_1_KM_DB = 128.1  # dB; TR 36.814
PATH_LOSS_PER_DECADE_DB = 37.6  # dB per tenfold distance; TR 36.814

# Devices are placed at a distance drawn uniformly between these two, once per episode.
MIN_DISTANCE_M = 35.0  # m; minimum UE-to-cell distance, TR 36.814
CELL_RADIUS_M = 250.0  # m; half the 500 m inter-site distance of TR 36.814 case 1

# Small-scale fading is Rayleigh: the power gain |h|^2 is exponential with mean 1, drawn
# once per task (block fading: one coherence block per upload). Shadowing is left out.
RAYLEIGH_MEAN_POWER_GAIN = 1.0  # dimensionless

NOISE_PSD_DBM_PER_HZ = -174.0  # dBm/Hz; thermal noise kT at T = 290 K
RECEIVER_NOISE_FIGURE_DB = 5.0  # dB; eNB (base-station) noise figure, TR 36.814

# ---- devices -----------------------------------------------------------------------------

MAX_TRANSMIT_POWER_W = 0.2  # W (23 dBm); UE power class 3, 3GPP TS 36.101 Sec. 6.2.2
DEVICE_BANDWIDTH_HZ = 1e6  # Hz; runt's choice: each device owns an orthogonal 1 MHz sub-band

# Dynamic CPU energy per cycle is kappa * f^2 (f in cycles/s), so a task of C cycles costs
# kappa * f^2 * C joules: the model of Mao et al. 2017, "A Survey on Mobile Edge Computing:
# The Communication Perspective", IEEE Commun. Surveys Tuts. 19(4). kappa = 1e-27 is a value
# widely used in MEC studies (1e-28 also appears).
EFFECTIVE_SWITCHED_CAPACITANCE = 1e-27  # J s^2 / cycle^3

# ---- task defaults (RUNT's fields) -------------------------------------------------------
# runt's choices, in the range MEC offloading studies use (tasks of hundreds of kB and
# around a gigacycle, handset CPUs near 1 GHz, an edge server several times faster), tuned
# so that neither computing everything locally nor offloading everything is optimal.

TASK_SIZE_AVERAGE_BITS = 2e6  # bits (250 kB)
TASK_CYCLES_AVERAGE = 5e8  # CPU cycles
TASK_DEADLINE_AVERAGE_S = 1.0  # s
TASK_ARRIVAL_RATE_PER_S = 2.0  # tasks/s per device
N_UE = 5  # devices
UE_CPU_HZ = 1e9  # cycles/s
MEC_CPU_HZ = 5e9  # cycles/s

# Task size, cycles and deadline are each drawn uniformly from [1 - s, 1 + s] x their mean.
TASK_SPREAD = 0.5  # dimensionless

# ---- normalisation of observations (not physics) -----------------------------------------

GAIN_DB_REFERENCE = -100.0  # dB; mid-cell path gain plus the mean Rayleigh fade in dB
GAIN_DB_SCALE = 20.0  # dB
OBS_CLIP = 10.0  # every observation lies in [-OBS_CLIP, OBS_CLIP]
