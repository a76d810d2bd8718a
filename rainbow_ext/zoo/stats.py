"""Statistics for few-seed RL results (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the interquartile mean (IQM) with stratified-bootstrap confidence intervals, beside the
mean with a Student-t interval; the probability of improvement of one algorithm over another;
performance profiles (run-score distributions); and human-normalized Atari scores.

The paper's own package, rliable 1.2.0, is not a dependency: it does not import with pandas 3 (through
arch 7.x), its pin keeps arch below 8 (with which its bootstrap fails), and it would pull statsmodels
and an older pandas into every install. Its methods are a few lines of numpy each, implemented here
and tested against closed forms: IQM is the 25%-trimmed mean of all runs of all tasks; the stratified
bootstrap resamples runs with replacement within each task (column), independently, and takes
percentile intervals; the probability of improvement is the Mann-Whitney U statistic per task,
normalized and averaged over tasks.
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


def stratified_bootstrap_ci_ragged(
    runs_per_task: list[np.ndarray],
    statistic: Callable[[np.ndarray], float],
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(statistic(task means), low, high)`` for tasks with different numbers of runs: each resample draws
    every task's runs with replacement from its own runs, and ``statistic`` reads the vector of per-task
    means (the median over games of the mean score per game, say). A task with one run keeps its value in
    every resample, so with one run per task the interval has no width: it shows only the spread of the
    runs there are."""
    tasks = [np.asarray(r, dtype=np.float64).ravel() for r in runs_per_task]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one run")
    rng = np.random.default_rng(seed)
    means = np.stack([t[rng.integers(0, t.size, size=(reps, t.size))].mean(axis=1) for t in tasks], axis=1)
    values = np.array([statistic(sample) for sample in means])  # means: [reps, tasks]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(statistic(np.array([t.mean() for t in tasks]))), float(low), float(high)


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    """``[runs, tasks]`` as float64 (one task for a vector of runs)."""
    x = np.asarray(scores, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): the probability that a run of algorithm X scores above a run of Y on a task drawn at
    random, ties counting half (Agarwal et al. 2021, section 4.3). Per task it is the Mann-Whitney U
    statistic of X's runs against Y's, divided by ``n_x n_y``; then the mean over tasks.

    :param x: ``[runs of X, tasks]`` (or a vector of runs: one task)
    :param y: ``[runs of Y, tasks]``, the same tasks in the same order
    """
    x, y = _as_matrix(x), _as_matrix(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must hold the same tasks, got {x.shape[1]} and {y.shape[1]} columns")
    return float(_improvement(x[None], y[None])[0])


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`probability_of_improvement` of stacks ``[samples, runs, tasks]``: one value per sample."""
    pairs = x[:, :, None, :] - y[:, None, :, :]  # [samples, runs of X, runs of Y, tasks]
    per_task = (pairs > 0).mean(axis=(1, 2)) + 0.5 * (pairs == 0).mean(axis=(1, 2))
    return per_task.mean(axis=-1)


def probability_of_improvement_ci(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(P(X > Y), low, high)``: a percentile interval from ``reps`` stratified bootstrap resamples,
    X's and Y's runs resampled independently within each task."""
    x, y = _as_matrix(x), _as_matrix(y)
    point = probability_of_improvement(x, y)
    rng = np.random.default_rng(seed)
    resampled = [
        np.take_along_axis(m[None], rng.integers(0, m.shape[0], size=(reps, *m.shape)), axis=1) for m in (x, y)
    ]
    values = _improvement(*resampled)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return point, float(low), float(high)


def performance_profile(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The run-score distribution (Agarwal et al. 2021, section 4.2): for each threshold tau, the
    fraction of all runs of all tasks that score above tau."""
    flat = np.asarray(scores, dtype=np.float64).ravel()
    return (flat[:, None] > np.asarray(thresholds, dtype=np.float64)[None, :]).mean(axis=0)


def trailing_mean(steps: np.ndarray, values: np.ndarray, at: np.ndarray, window: int) -> np.ndarray:
    """At each step of ``at``, the mean of the last ``window`` values recorded by then (``steps`` in
    order; NaN before the first): the MinAtar paper's and Dopamine's score of training episodes."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    ends = np.searchsorted(steps, np.asarray(at), side="right")  # values recorded at steps <= each point
    return np.array([values[max(end - window, 0) : end].mean() if end else np.nan for end in ends])


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


@cache
def atari100k_published() -> dict[str, dict[str, float]]:
    """Agent -> game (``"BankHeist"``) -> published Atari 100k score (rainbow_ext/data/atari100k_published.csv:
    DER's paper scores, and the per-game means of Dopamine's DER, SPR and DrQ(eps) over rliable's runs;
    the file names each source)."""
    table: dict[str, dict[str, float]] = {}
    with resources.files("rainbow_ext").joinpath("data/atari100k_published.csv").open() as file:
        for row in csv.DictReader(line for line in file if not line.startswith("#")):
            table.setdefault(row["agent"], {})[row["game"]] = float(row["score"])
    return table
