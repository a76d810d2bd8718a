"""Learning curves of an ablate grid (``rainbow_ext.zoo.ablation``), shared by ``minatar_curves.py`` and
``atari_curves.py``: the score of training episodes (each run's ``episodes.csv``; whole games on Atari)
against steps, as in the MinAtar paper and Dopamine's baselines, its tables and its plot.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rainbow_ext.zoo.runs import EPISODES_FILE
from rainbow_ext.zoo.stats import trailing_mean


@dataclass
class Run:
    """A finished run of the grid: its training episodes and its evaluation at the end."""

    algo: str
    env: str
    seed: int
    episodes: Path  # episodes.csv: timestep, return, length
    evaluation: np.ndarray  # the returns of the evaluation games at the end of training
    seconds: float  # training and evaluation, over every stretch of a resumed run

    def curve(self, at: np.ndarray, window: int) -> np.ndarray:
        """Mean return of the last ``window`` episodes finished by each step of ``at`` (NaN before the first)."""
        data = np.loadtxt(self.episodes, delimiter=",", skiprows=1, ndmin=2)
        return trailing_mean(data[:, 0], data[:, 1], at, window)

    def final(self, window: int) -> float:
        returns = np.loadtxt(self.episodes, delimiter=",", skiprows=1, ndmin=2)[:, 1]
        return float(returns[-window:].mean())


def finished_runs(study: Any) -> list[Run]:
    """The grid's finished runs, by algo, env and seed."""
    runs = []
    for trial in study.get_trials(deepcopy=False):
        if "curve" not in trial.user_attrs:
            continue
        run_dir = Path(trial.user_attrs["run_dir"])
        with np.load(run_dir / "evaluations.npz") as evaluations:
            last = np.asarray(evaluations["results"][-1], dtype=np.float64)
        runs.append(
            Run(trial.params["variant"], trial.params["env"], trial.params["seed"], run_dir / EPISODES_FILE,
                last, trial.user_attrs.get("seconds", float("nan")))
        )  # fmt: skip
    return sorted(runs, key=lambda r: (r.env, r.algo, r.seed))


def fifths_table(runs: list[Run], envs: list[str], algos: list[str], steps: int, window: int, unit: int = 1) -> str:
    """Markdown: the score (mean ± std over seeds) at each fifth of the run; ``unit`` converts steps to
    the column headings' unit (4 emulator frames per agent step on Atari)."""
    at = np.arange(1, 6) * steps / 5
    heads = [f"{unit * c / 1e6:g}M" if unit * steps >= 1e6 else f"{unit * c / 1e3:g}k" for c in at]
    lines = ["| env | algo | seeds | " + " | ".join(heads) + " |", "|---|---|---|" + "---|" * len(at)]
    for env in envs:
        for algo in algos:
            rows = [r for r in runs if r.env == env and r.algo == algo]
            if rows:
                curves = np.array([r.curve(at, window) for r in rows])
                cells = " | ".join(
                    "no game yet" if np.isnan(m) else f"{m:.2f} ± {sd:.2f}"
                    for m, sd in zip(curves.mean(0), curves.std(0), strict=True)
                )
                lines.append(f"| {env} | {algo} | {len(rows)} | {cells} |")
    return "\n".join(lines)


def plot(
    runs: list[Run],
    envs: list[str],
    algos: list[str],
    steps: int,
    window: int,
    path: Path,
    references: dict[str, tuple[float, str]],
    unit: int = 1,
    x_label: str = "environment steps",
) -> Path:
    """The curves (mean and min-max over seeds, one color per algo in every panel) of each env, with a
    dashed reference line per env (``references[env] = (score, label)``), into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = np.linspace(steps / 50, steps, 50)
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for color, algo in enumerate(algos):
            curves = np.array([r.curve(at, window) for r in runs if r.env == env and r.algo == algo])
            if len(curves) == 0:
                continue
            seeds = f"{len(curves)} seed" + ("s" if len(curves) > 1 else "")
            with np.errstate(all="ignore"), warnings.catch_warnings():  # NaN before a run's first episode
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = np.nanmean(curves, axis=0), np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
            ax.plot(unit * at, mean, color=f"C{color}", label=f"{algo} ({seeds})")
            ax.fill_between(unit * at, low, high, color=f"C{color}", alpha=0.2)
        if env in references:
            score, label = references[env]
            ax.axhline(score, color="gray", linestyle="--", label=label)
        ax.set(title=env, xlabel=x_label, ylabel=f"score (last {window} episodes)")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
