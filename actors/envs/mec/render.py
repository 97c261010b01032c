"""A small RGB picture of the offloading system, drawn with numpy alone.

Left, two bars per device: its CPU backlog (blue) and its radio backlog (orange), with a
marker under the device whose task is being decided. Right, one green bar per edge unit.
A bar is full at `FULL_SCALE` x `task_time_average` seconds of queued work. The strip
along the top shows the last decision: blue computed locally, green offloaded (as wide
as its share of the edge server), red where the task missed its deadline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from actors.envs.mec.env import MecOffloadEnv

HEIGHT = 64  # px
BAR = 6  # px wide
GAP = 2  # px between bars
STRIP = 6  # px, the top strip
FULL_SCALE = 4.0  # deadlines of backlog that fill a bar

WHITE = (255, 255, 255)
GREY = (200, 200, 200)
BLUE = (60, 110, 200)
ORANGE = (240, 150, 40)
GREEN = (60, 170, 80)
RED = (210, 50, 50)


def draw_state(env: MecOffloadEnv) -> np.ndarray:
    """(HEIGHT, width, 3) uint8 image of `env`'s queues and last decision."""
    p = env.params
    scale = p.task_time_average
    cpu = np.maximum(env.cpu_free_at - env.now, 0.0) / scale
    radio = np.maximum(env.radio_free_at - env.now, 0.0) / scale
    edge = np.maximum(env.edge_free_at - env.now, 0.0) / scale
    n_bars = 2 * p.n_UE + 1 + len(edge)
    image = np.full((HEIGHT, n_bars * (BAR + GAP) + GAP, 3), WHITE, dtype=np.uint8)
    image[-1, :] = GREY

    column = 0
    for device in range(p.n_UE):
        _bar(image, column, cpu[device], BLUE)
        _bar(image, column + 1, radio[device], ORANGE)
        if device == env.task.device:
            left = GAP + column * (BAR + GAP)
            image[-3:, left : left + 2 * BAR + GAP] = RED
        column += 2
    column += 1  # a gap between devices and edge units
    for backlog in edge:
        _bar(image, column, backlog, GREEN)
        column += 1
    _strip(image, env)
    return image


def _bar(image: np.ndarray, column: int, backlog: float, color: tuple[int, int, int]) -> None:
    usable = HEIGHT - STRIP - 5  # below the strip, above the baseline and the marker
    height = round(min(backlog / FULL_SCALE, 1.0) * usable)
    left = GAP + column * (BAR + GAP)
    if height:
        image[HEIGHT - 4 - height : HEIGHT - 4, left : left + BAR] = color


def _strip(image: np.ndarray, env: MecOffloadEnv) -> None:
    last = env.last
    if last is None:
        return
    width = image.shape[1]
    color = GREEN if last.offloaded else BLUE
    filled = max(1, round(width * last.share)) if last.offloaded else width
    image[:STRIP, :filled] = color
    if last.missed:
        image[:STRIP, filled:] = RED
