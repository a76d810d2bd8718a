"""Statistics for few-seed RL results (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the interquartile mean (IQM) with stratified-bootstrap confidence intervals, beside the
mean with a Student-t interval, and human-normalized Atari scores.

rliable, the paper's package, does not import with current pandas/arch releases, so its two methods
used here are implemented directly: IQM is the 25%-trimmed mean of all runs of all tasks, and the
stratified bootstrap resamples runs with replacement within each task (column), independently, and
takes percentile intervals.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import cache
from importlib import resources

import numpy as np
from scipy import stats as scipy_stats


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (``scipy.stats.trim_mean(x, 0.25)``,
    which trims ``floor(0.25 n)`` scores from each end)."""
    return float(scipy_stats.trim_mean(np.asarray(scores, dtype=np.float64).ravel(), 0.25))


def mean_ci(scores: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its Student-t confidence interval over independent runs: ``(mean, low, high)``.
    One run gives a degenerate interval (nothing to estimate the spread from)."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    mean = float(x.mean())
    if x.size < 2:
        return mean, mean, mean
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(statistic(scores), low, high)``: a percentile interval from ``reps`` stratified bootstrap
    resamples of ``scores`` ``[runs, tasks]`` (runs resampled within each task)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    rng = np.random.default_rng(seed)
    n_runs, n_tasks = x.shape
    picks = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))
    resampled = np.take_along_axis(x[None], picks, axis=1)  # [reps, runs, tasks]
    values = np.array([statistic(sample) for sample in resampled])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return statistic(x), float(low), float(high)


@cache
def atari_human_random() -> dict[str, tuple[float, float]]:
    """ROM name -> (random score, human score) for the Atari-57 games (rainbow_ext/data)."""
    table = {}
    with resources.files("rainbow_ext").joinpath("data/atari_human_random.csv").open() as file:
        rows = csv.DictReader(line for line in file if not line.startswith("#"))
        for row in rows:
            table[row["game"]] = (float(row["random"]), float(row["human"]))
    return table


def human_normalized(game: str, score: float | np.ndarray) -> float | np.ndarray:
    """``(score - random) / (human - random)``: 0 is a random policy, 1 a professional human tester.
    A ValueError for a game without published scores."""
    if game not in atari_human_random():
        raise ValueError(f"no published human and random scores for {game!r}")
    random, human = atari_human_random()[game]
    return (np.asarray(score, dtype=np.float64) - random) / (human - random)
