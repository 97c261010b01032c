"""Reward-curve diagnostics: smoothing, trend, plateau, collapse after a peak, variance,
and how close the curve is to the environment's reward threshold.

Everything is measured on a trailing moving average (window: a tenth of the episodes,
5 to 100) and judged against the curve's own scale, so the same rules hold for CartPole
(0..500) and Pendulum (-1500..-150).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_EPISODES = 20  # fewer than this and one lucky episode moves every statistic
FLAT_SHARE = 0.3  # a plateau spans at least this share of the run ...
TREND_SHARE = 0.1  # ... and changes less than this share of the curve's range over its last third
COLLAPSE_DROP = 0.5  # a collapse loses at least half of the rise to the peak
HIGH_CV = 0.5  # detrended std / mean of the last third above this is high variance
NEAR = 0.1  # "near" the threshold: within 10% of it


@dataclass(frozen=True)
class CurveReport:
    episodes: int
    window: int
    start: float  # smoothed reward of the first full window
    end: float  # smoothed reward at the last episode
    best: float  # highest smoothed reward ...
    best_episode: int  # ... and the episode it was reached at
    recent_mean: float  # raw rewards of the last third
    recent_std: float  # their spread around a straight-line fit (noise, not trend)
    slope_per_100: float  # change of the smoothed curve per 100 episodes, last third
    scale: float  # the smoothed curve's range: what "flat" and "dropped" are measured against
    flat_episodes: int  # trailing episodes whose smoothed reward stays near `end`
    drop_from_peak: float  # share of the rise to the peak lost since then
    threshold: float | None
    eval_best: float | None
    solved_episode: int | None  # first episode whose smoothed reward reached the threshold

    @property
    def too_short(self) -> bool:
        return self.episodes < MIN_EPISODES

    @property
    def trend(self) -> str:
        change = self.slope_per_100 * self.episodes / 3 / 100
        if change > TREND_SHARE * self.scale:
            return "rising"
        if change < -TREND_SHARE * self.scale:
            return "falling"
        return "flat"

    @property
    def cv(self) -> float:
        return self.recent_std / max(abs(self.recent_mean), 0.1 * self.scale, 1e-8)

    @property
    def high_variance(self) -> bool:
        return not self.too_short and self.cv > HIGH_CV

    @property
    def solved(self) -> bool:
        if self.threshold is None or self.too_short:
            return False
        return self.end >= self.threshold or (self.eval_best or -np.inf) >= self.threshold

    @property
    def level(self) -> float:
        """Where the run stands: its smoothed end, or a better greedy evaluation."""
        return max(self.end, self.eval_best if self.eval_best is not None else -np.inf)

    @property
    def gap(self) -> float | None:
        return None if self.threshold is None else self.threshold - self.level

    @property
    def near(self) -> bool:
        if self.gap is None or self.solved or self.too_short:
            return False
        return self.gap <= NEAR * max(abs(self.threshold or 0.0), 1.0)

    @property
    def collapse(self) -> bool:
        return not self.too_short and self.drop_from_peak >= COLLAPSE_DROP

    @property
    def plateau(self) -> bool:
        long_enough = self.flat_episodes >= max(MIN_EPISODES, FLAT_SHARE * self.episodes)
        return (
            long_enough
            and self.trend == "flat"
            and not (self.too_short or self.solved or self.near or self.collapse)
        )


def moving_average(rewards: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` episodes; element i covers episodes i+1..i+window."""
    sums = np.cumsum(np.insert(rewards, 0, 0.0))
    return (sums[window:] - sums[:-window]) / window


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Slope of a least-squares line through (x, y) and the residuals around it."""
    if len(x) < 2:
        return 0.0, y - y.mean()
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), y - (slope * x + intercept)


def _flat_tail(smoothed: np.ndarray, window: int, band: float) -> int:
    """How many trailing points stay within `band` of where the curve ends (the median
    of its last window, so one noisy point does not decide)."""
    end = np.median(smoothed[-window:])
    outside = np.flatnonzero(np.abs(smoothed - end) > band)
    return len(smoothed) if len(outside) == 0 else len(smoothed) - 1 - int(outside[-1])


def _drop_from_peak(smoothed: np.ndarray, window: int, significant: float) -> tuple[float, int]:
    peak = int(np.argmax(smoothed))
    rise = smoothed[peak] - smoothed[: peak + 1].min()
    if peak >= len(smoothed) - max(window // 2, 1) or rise <= significant:
        return 0.0, peak
    return float((smoothed[peak] - smoothed[-1]) / rise), peak


def analyse_curve(
    rewards: Sequence[float],
    threshold: float | None = None,
    evaluations: Sequence[float] = (),
) -> CurveReport | None:
    """Measure a reward curve (oldest episode first); None without episodes."""
    r = np.asarray(rewards, dtype=np.float64)
    n = len(r)
    if n == 0:
        return None
    window = min(n, max(5, min(100, n // 10)))
    smoothed = moving_average(r, window)
    tail = slice(len(smoothed) - max(len(smoothed) // 3, 1), None)
    episodes = np.arange(window, n + 1, dtype=np.float64)  # episode each smoothed point ends at
    slope, _ = _line(episodes[tail], smoothed[tail])
    recent = r[-max(n // 3, window) :]
    _, residuals = _line(np.arange(len(recent), dtype=np.float64), recent)
    recent_std = float(residuals.std())
    scale = float(smoothed.max() - smoothed.min()) or max(abs(float(r.mean())), 1.0)
    # 3 standard errors of a window's mean: noise alone rarely leaves the band
    band = max(TREND_SHARE * scale, 3 * recent_std / np.sqrt(window))
    drop, peak = _drop_from_peak(smoothed, window, significant=2 * band)
    solved_at = None
    if threshold is not None and (reached := np.flatnonzero(smoothed >= threshold)).size:
        solved_at = int(reached[0]) + window
    return CurveReport(
        episodes=n,
        window=window,
        start=float(smoothed[0]),
        end=float(smoothed[-1]),
        best=float(smoothed[peak]),
        best_episode=peak + window,
        recent_mean=float(recent.mean()),
        recent_std=recent_std,
        slope_per_100=slope * 100,
        scale=scale,
        flat_episodes=_flat_tail(smoothed, window, band),
        drop_from_peak=drop,
        threshold=threshold,
        eval_best=max(evaluations) if evaluations else None,
        solved_episode=solved_at,
    )
