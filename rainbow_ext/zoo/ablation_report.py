"""Results of an ablation study: tidy CSVs, a table with interval estimates, plots and report.md.

Everything is read from the study's storage (each finished trial holds its evaluation curve), so the
report can be written on any machine that reaches the storage.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from rainbow_ext.envs.resolve import resolve_env_id
from rainbow_ext.zoo.runs import write_atomically
from rainbow_ext.zoo.stats import (
    human_normalized,
    iqm,
    mean_ci,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


def collect(study: Any) -> list[dict[str, Any]]:
    """Finished runs: variant, env, seed and curve ``[[timestep, mean return], ...]``."""
    from optuna.trial import TrialState

    finished = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "curve" in trial.user_attrs:
            finished.append({**trial.params, "curve": trial.user_attrs["curve"]})
    return sorted(finished, key=lambda r: (r["env"], r["variant"], r["seed"]))


def atari_game(env_id: str) -> str | None:
    """The ROM of an Atari id, None for any other family; an Atari id that does not exist is a ValueError."""
    resolved = resolve_env_id(env_id)
    if resolved.family != "atari":
        return None
    resolved.check()
    return resolved.rom


def summarize(finished: list[dict[str, Any]], variants: list[str], envs: list[str]) -> list[dict[str, Any]]:
    """Per env and variant (and, when every env is an Atari game, across them, human-normalized): the
    mean with a 95% t-interval and the IQM with a 95% stratified bootstrap interval of final returns."""
    rows = []
    for env_id in envs:
        game = atari_game(env_id)
        for variant in variants:
            finals = np.array([r["curve"][-1][1] for r in finished if r["env"] == env_id and r["variant"] == variant])
            if finals.size == 0:
                continue
            row = summary_row(env_id, variant, finals)
            if game is not None:
                normalized = summary_row(env_id, variant, np.asarray(human_normalized(game, finals)))
                row.update({f"hns_{k}": v for k, v in normalized.items() if k not in ("env", "variant", "runs")})
            rows.append(row)
    games = [atari_game(env_id) for env_id in envs]
    if len(envs) > 1 and all(games):
        for variant in variants:
            columns = []
            for env_id, game in zip(envs, games, strict=True):
                finals = [r["curve"][-1][1] for r in finished if r["env"] == env_id and r["variant"] == variant]
                columns.append(np.asarray(human_normalized(game, np.array(finals))))  # type: ignore[arg-type]
            if all(len(c) == len(columns[0]) and len(c) for c in columns):
                matrix = np.stack(columns, axis=1)  # [runs, games]: stratified over games
                row = summary_row("all (human-normalized)", variant, matrix)
                rows.append(row)
    return rows


REFERENCE = "rainbow"  # the variant the others are compared with


def improvements(finished: list[dict[str, Any]], variants: list[str], envs: list[str]) -> list[dict[str, Any]]:
    """P(rainbow > variant) of final returns, with a 95% stratified bootstrap interval, per env and,
    when every env has the same number of runs of both, over all envs (each env a task: the
    statistic compares runs within a task, so returns of different scales need no normalizing)."""
    if REFERENCE not in variants:
        return []

    def finals(variant: str, env_id: str) -> np.ndarray:
        return np.array([r["curve"][-1][1] for r in finished if r["env"] == env_id and r["variant"] == variant])

    rows = []
    for variant in (v for v in variants if v != REFERENCE):
        pairs = [(finals(REFERENCE, env_id), finals(variant, env_id)) for env_id in envs]
        tasks = [(env_id, x, y) for env_id, (x, y) in zip(envs, pairs, strict=True) if x.size and y.size]
        if len(envs) > 1 and len(tasks) == len(envs) and len({(x.size, y.size) for _, x, y in tasks}) == 1:
            x, y = (np.stack([t[i] for t in tasks], axis=1) for i in (1, 2))
            tasks.append((f"all ({len(envs)} envs)", x, y))
        for env_id, x, y in tasks:
            point, low, high = probability_of_improvement_ci(x, y)
            rows.append({"env": env_id, "variant": variant, "p_improvement": point, "ci_low": low, "ci_high": high})
    return rows


def summary_row(env_id: str, variant: str, scores: np.ndarray) -> dict[str, Any]:
    mean, mean_low, mean_high = mean_ci(scores.mean(axis=1) if scores.ndim == 2 else scores)
    point, iqm_low, iqm_high = stratified_bootstrap_ci(scores, iqm)
    return {
        "env": env_id,
        "variant": variant,
        "runs": int(scores.shape[0]),
        "mean": mean,
        "mean_ci_low": mean_low,
        "mean_ci_high": mean_high,
        "iqm": point,
        "iqm_ci_low": iqm_low,
        "iqm_ci_high": iqm_high,
    }


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def save_figure(fig: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def plot_curves(finished: list[dict[str, Any]], variants: list[str], envs: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for variant in variants:
            curves = [r["curve"] for r in finished if r["env"] == env_id and r["variant"] == variant]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            steps = np.array([point[0] for point in curves[0][:length]])
            values = np.array([[point[1] for point in c[:length]] for c in curves])  # [runs, evaluations]
            bands = np.array([mean_ci(values[:, j]) for j in range(length)])
            (line,) = ax.plot(steps, bands[:, 0], label=f"{variant} ({len(curves)})")
            ax.fill_between(steps, bands[:, 1], bands[:, 2], alpha=0.2, color=line.get_color())
        ax.set_title(env_id)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean evaluation return")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.suptitle("Mean evaluation return over seeds, 95% t-interval bands")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_finals(summary: list[dict[str, Any]], variants: list[str], envs: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*envs, *sorted({row["env"] for row in summary} - set(envs))]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.5 * len(variants) + 1.5), squeeze=False)
    for ax, env_id in zip(axes[0], panels, strict=True):
        rows = {row["variant"]: row for row in summary if row["env"] == env_id}
        names = [v for v in variants if v in rows]
        y = np.arange(len(names))[::-1]
        points = np.array([rows[v]["iqm"] for v in names])
        low = points - np.array([rows[v]["iqm_ci_low"] for v in names])
        high = np.array([rows[v]["iqm_ci_high"] for v in names]) - points
        ax.errorbar(points, y, xerr=[low, high], fmt="o", capsize=4)
        ax.set_yticks(y, names)
        ax.set_title(env_id)
        ax.set_xlabel("IQM of final return (95% stratified bootstrap)")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def markdown_table(summary: list[dict[str, Any]]) -> str:
    has_hns = any("hns_iqm" in row for row in summary)
    header = "| env | variant | runs | mean [95% CI] | IQM [95% CI] |" + (
        " IQM human-normalized [95% CI] |" if has_hns else ""
    )
    lines = [header, "|" + "---|" * (6 if has_hns else 5)]
    for row in summary:
        cells = [
            row["env"],
            row["variant"],
            str(row["runs"]),
            f"{row['mean']:.2f} [{row['mean_ci_low']:.2f}, {row['mean_ci_high']:.2f}]",
            f"{row['iqm']:.2f} [{row['iqm_ci_low']:.2f}, {row['iqm_ci_high']:.2f}]",
        ]
        if has_hns:
            hns = row.get("hns_iqm")
            cells.append(
                "" if hns is None else f"{hns:.3f} [{row['hns_iqm_ci_low']:.3f}, {row['hns_iqm_ci_high']:.3f}]"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(study: Any, folder: Path) -> list[Path]:
    grid = study.user_attrs["grid"]
    variants, envs = grid["variants"], grid["envs"]
    finished = collect(study)
    curves = [
        {"variant": r["variant"], "env": r["env"], "seed": r["seed"], "timestep": t, "return": v}
        for r in finished
        for t, v in r["curve"]
    ]
    write_csv(folder / "curves.csv", curves, ["variant", "env", "seed", "timestep", "return"])
    finals = []
    for r in finished:
        game = atari_game(r["env"])
        row = {"variant": r["variant"], "env": r["env"], "seed": r["seed"], "final_return": r["curve"][-1][1]}
        row["human_normalized"] = float(human_normalized(game, row["final_return"])) if game else ""
        finals.append(row)
    write_csv(folder / "final_scores.csv", finals, ["variant", "env", "seed", "final_return", "human_normalized"])
    summary = summarize(finished, variants, envs)
    fields = ["env", "variant", "runs", "mean", "mean_ci_low", "mean_ci_high", "iqm", "iqm_ci_low", "iqm_ci_high"]
    if any("hns_iqm" in row for row in summary):
        fields += ["hns_mean", "hns_mean_ci_low", "hns_mean_ci_high", "hns_iqm", "hns_iqm_ci_low", "hns_iqm_ci_high"]
    write_csv(folder / "summary.csv", summary, fields)
    improved = improvements(finished, variants, envs)
    write_csv(folder / "improvement.csv", improved, ["env", "variant", "p_improvement", "ci_low", "ci_high"])
    written = [folder / "curves.csv", folder / "final_scores.csv", folder / "summary.csv", folder / "improvement.csv"]
    if finished:
        plot_curves(finished, variants, envs, folder / "curves.png")
        plot_finals(summary, variants, envs, folder / "final_scores.png")
        written += [folder / "curves.png", folder / "final_scores.png"]
    report = report_lines(grid, len(finished), summary, improved)
    write_atomically(folder / "report.md", lambda tmp: tmp.write_text("\n".join(report)))
    written.append(folder / "report.md")
    return written


Rows = list[dict[str, Any]]


def report_lines(grid: dict[str, Any], finished: int, summary: Rows, improved: Rows) -> list[str]:
    """report.md: what the grid ran, the summary table, the probabilities of improvement and the plots."""
    variants, envs = grid["variants"], grid["envs"]
    total = len(variants) * len(envs) * len(grid["seeds"])
    report = [
        "# Ablation report",
        "",
        f"- Variants: {', '.join(variants)}",
        f"- Envs: {', '.join(envs)}",
        f"- Seeds: {', '.join(map(str, grid['seeds']))}; runs finished: {finished} of {total}",
        f"- Steps per run: {grid['n_timesteps'] or 'the config default'}; evaluation every {grid['eval_freq']:,} "
        f"steps, {grid['eval_episodes']} deterministic episodes",
        f"- Overrides: {' '.join(grid['params']) or 'none'}",
        "",
        "Final score of a run: its last evaluation's mean return. Mean with a 95% Student-t interval; IQM",
        "(mean of the middle 50% of runs) with a 95% percentile interval from 2,000 stratified bootstrap",
        "resamples (Agarwal et al. 2021). Atari scores are also human-normalized ((score - random) /",
        "(human - random), published Atari-57 scores).",
        "",
        markdown_table(summary),
        "",
    ]
    if improved:
        report += [
            f"Probability of improvement P({REFERENCE} > variant): the chance that a {REFERENCE} run beats a run of",
            "the variant on the same env, ties counting half (Agarwal et al. 2021), with a 95% stratified",
            "bootstrap interval. 0.5: no difference; above 0.5: the component helps.",
            "",
            "| env | variant | P(improvement) [95% CI] |",
            "|---|---|---|",
            *(
                f"| {r['env']} | {r['variant']} | {r['p_improvement']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] |"
                for r in improved
            ),
            "",
        ]
    if finished:
        report += ["![learning curves](curves.png)", "", "![final scores](final_scores.png)", ""]
    return report
