"""Statistics for few-seed results (rainbow_ext.zoo.stats): IQM, intervals, probability of improvement,
performance profiles, human-normalized Atari scores and the published Atari-100k scores."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.zoo.stats import (
    atari100k_published,
    human_normalized,
    iqm,
    mean_ci,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    stratified_bootstrap_ci_ragged,
)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.arange(1, 9)) == 4.5  # mean of 3, 4, 5, 6
    assert iqm(np.array([100.0, 1, 2, 3, 4, 5, 6, 7, 8, -50])) == pytest.approx(np.mean([2, 3, 4, 5, 6, 7]))
    assert iqm(np.array([[1.0, 2], [3, 4]])) == 2.5  # every run of every task


def test_mean_ci_student_t() -> None:
    mean, low, high = mean_ci(np.array([1.0, 2, 3, 4, 5]))
    half = 2.7764451 * np.sqrt(2.5) / np.sqrt(5)  # t(0.975, 4) * s / sqrt(n)
    assert (mean, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert mean_ci(np.array([7.0])) == (7.0, 7.0, 7.0)


def test_stratified_bootstrap() -> None:
    # constant data: nothing to resample
    assert stratified_bootstrap_ci(np.full(5, 3.0), np.mean) == (3.0, 3.0, 3.0)
    # Resampling within each task keeps every task's values: with runs equal inside each task, every
    # resample is the original, so the interval has no width (a pooled bootstrap would mix the tasks).
    scores = np.array([[0.0, 100.0]] * 4)
    assert stratified_bootstrap_ci(scores, np.mean) == (50.0, 50.0, 50.0)
    # Large normal sample: the percentile interval of the mean matches the t-interval.
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    _, low, high = stratified_bootstrap_ci(x, np.mean, reps=4000)
    _, t_low, t_high = mean_ci(x)
    assert low == pytest.approx(t_low, abs=0.05) and high == pytest.approx(t_high, abs=0.05)
    # ...and it covers the true mean about 95% of the time
    rng = np.random.default_rng(1)
    intervals = [stratified_bootstrap_ci(rng.normal(size=30), np.mean, reps=500, seed=i)[1:] for i in range(200)]
    covered = [low <= 0.0 <= high for low, high in intervals]
    assert scipy_stats.binomtest(sum(covered), 200, 0.95).pvalue > 1e-3


def test_stratified_bootstrap_with_tasks_of_different_run_counts() -> None:
    # the statistic reads the per-task means; a task of one run keeps its value in every resample
    assert stratified_bootstrap_ci_ragged([np.array([1.0]), np.array([3.0])], np.mean) == (2.0, 2.0, 2.0)
    # one task of two runs (0 and 4), one of one run (10): resampled means of the first are 0, 2 or 4
    # (probabilities 1/4, 1/2, 1/4), so the mean over tasks is 5, 6 or 7 and the 95% interval is [5, 7]
    value, low, high = stratified_bootstrap_ci_ragged([np.array([0.0, 4.0]), np.array([10.0])], np.mean, reps=4000)
    assert (value, low, high) == (6.0, 5.0, 7.0)
    # the same as the matrix version when every task has the same number of runs and the statistic is linear
    x = np.random.default_rng(2).normal(size=(5, 3))
    ragged = stratified_bootstrap_ci_ragged(list(x.T), np.mean, reps=3000, seed=4)
    matrix = stratified_bootstrap_ci(x, np.mean, reps=3000, seed=5)
    assert ragged[0] == pytest.approx(matrix[0]) and ragged[1:] == pytest.approx(matrix[1:], abs=0.05)
    with pytest.raises(ValueError, match="at least one run"):
        stratified_bootstrap_ci_ragged([np.array([1.0]), np.array([])], np.mean)


def test_published_atari100k_scores_reproduce_the_published_aggregates() -> None:
    """rainbow_ext/data/atari100k_published.csv: all 26 games for each agent, and the aggregates its sources
    print: DER's paper median 0.161 and mean 0.285, and the per-game means of rliable's DER (Dopamine)
    runs median 0.189, mean 0.350."""
    published = atari100k_published()
    games = set(published["DER (paper)"])
    assert len(games) == 26 and {"Pong", "BankHeist", "UpNDown", "KungFuMaster"} <= games
    for agent in ("DER (paper)", "DER (Dopamine)", "SPR", "DrQ(eps)"):
        assert set(published[agent]) == games, agent

    def normalized(agent: str) -> np.ndarray:
        return np.array([human_normalized(atari_rom(f"ALE/{g}-v5"), published[agent][g]) for g in sorted(games)])

    assert np.median(normalized("DER (paper)")) == pytest.approx(0.161, abs=5e-4)
    assert np.mean(normalized("DER (paper)")) == pytest.approx(0.285, abs=5e-4)
    assert np.median(normalized("DER (Dopamine)")) == pytest.approx(0.189, abs=5e-4)
    assert np.mean(normalized("DER (Dopamine)")) == pytest.approx(0.350, abs=5e-4)
    assert published["DER (paper)"]["Pong"] == -19.3 and published["DER (paper)"]["Freeway"] == 27.9


def test_probability_of_improvement() -> None:
    # closed forms: every run of x above every run of y; identical runs; one of two pairs won
    assert probability_of_improvement([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert probability_of_improvement([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert probability_of_improvement([2.0, 2.0], [2.0, 2.0]) == 0.5  # ties count half
    assert probability_of_improvement([1.0, 3.0], [2.0]) == 0.5
    # two tasks of very different scales: each task counts alike, whatever its scale
    x, y = np.array([[1.0, 1000.0], [2.0, 3000.0]]), np.array([[0.0, 2000.0], [5.0, 4000.0]])
    assert probability_of_improvement(x, y) == pytest.approx(((2 / 4) + (1 / 4)) / 2)
    # per task it is Mann-Whitney's U / (n m), ties included
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, size=7).astype(float), rng.integers(0, 6, size=5).astype(float)
    u = scipy_stats.mannwhitneyu(a, b).statistic
    assert probability_of_improvement(a, b) == pytest.approx(u / (a.size * b.size))
    assert probability_of_improvement(a, b) + probability_of_improvement(b, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(np.zeros((2, 3)), np.zeros((2, 2)))


def test_probability_of_improvement_interval() -> None:
    # x above y in every resample: a degenerate interval at 1
    assert probability_of_improvement_ci([5.0, 6.0, 7.0], [1.0, 2.0]) == (1.0, 1.0, 1.0)
    # two samples from one distribution: 0.5 inside the interval about 95% of the time
    rng = np.random.default_rng(2)
    covered = []
    for i in range(150):
        _, low, high = probability_of_improvement_ci(
            rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), reps=400, seed=i
        )
        covered.append(low <= 0.5 <= high)
    assert scipy_stats.binomtest(sum(covered), 150, 0.95).pvalue > 1e-3


def test_performance_profile() -> None:
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert performance_profile(scores, [-1.0, 0.0, 1.5, 3.0]).tolist() == [1.0, 0.75, 0.5, 0.0]


def test_human_normalized_scores() -> None:
    assert human_normalized("pong", -20.7) == pytest.approx(0.0)
    assert human_normalized("pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("breakout", 30.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no published human and random scores"):
        human_normalized("minatar_breakout", 1.0)
