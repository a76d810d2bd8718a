"""CartPole-v1 learning benchmark: Rainbow (any preset) beside SB3's DQN, several seeds, one grid.

The runs are a grid of ``python -m rainbow_ext.ablate`` (an Optuna study in ``--folder``, resumable:
a rerun keeps finished runs): each algo with its shipped config entry (``sb3-dqn``: rl-zoo3's tuned
DQN), evaluated every ``--eval-freq`` steps on ``--eval-episodes`` deterministic episodes. Success: a
mean evaluation return >= 475 at some evaluation within the budget. Prints one line per run and a
summary table (Markdown) to paste into BENCHMARKS.md.

    python benchmarks/learning/cartpole.py --seeds 5 --jobs 2
    python benchmarks/learning/cartpole.py --algos rainbow sb3-dqn --conf rainbow=benchmarks/configs/cartpole_tuned.yml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rainbow_ext.zoo.ablation import conf_file_map, make_grid, prepare, run_ablation

ENV_ID = "CartPole-v1"
THRESHOLD = 475.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], help="presets or baselines")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-freq", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs")
    parser.add_argument("--conf", action="append", default=[], metavar="[ALGO=]FILE", help="as ablate's -conf")
    parser.add_argument("--folder", default="logs/benchmarks/cartpole", help="the grid's folder and study")
    args = parser.parse_args()

    grid = make_grid(
        args.algos,
        [ENV_ID],
        args.seeds,
        args.steps,
        args.eval_freq,
        args.eval_episodes,
        [],
        conf_file_map(args.conf, args.algos),
    )
    folder = Path(args.folder)
    url, study = prepare(grid, folder, None, "cartpole")
    if run_ablation(grid, folder, url, study, jobs=args.jobs) != 0:
        raise SystemExit("interrupted: rerun the same command to continue")

    results = []
    for trial in study.get_trials(deepcopy=False):
        if "curve" not in trial.user_attrs:
            continue
        steps, means = zip(*trial.user_attrs["curve"], strict=True)
        solved_at = next((t for t, m in zip(steps, means, strict=True) if m >= THRESHOLD), None)
        results.append(
            dict(
                algo=trial.params["variant"],
                seed=trial.params["seed"],
                best=max(means),
                final=means[-1],
                solved_at=solved_at,
                seconds=trial.user_attrs.get("seconds", float("nan")),
            )
        )
    results.sort(key=lambda r: (args.algos.index(r["algo"]), r["seed"]))
    for r in results:
        print(
            f"{r['algo']:>18} seed {r['seed']}: best eval {r['best']:6.1f}, final {r['final']:6.1f}, "
            f"first >= {THRESHOLD:.0f} at {r['solved_at']}, {r['seconds']:.0f} s",
            flush=True,
        )
    print(
        f"\n| algo | seeds solved (>= {THRESHOLD:.0f} by {args.steps}) | median steps to solve (all seeds) | "
        "best eval mean ± std | final eval mean ± std | median wall time (s) |"
    )
    print("|---|---|---|---|---|---|")
    for algo in args.algos:
        rows = [r for r in results if r["algo"] == algo]
        if not rows:
            continue
        solved = [r["solved_at"] for r in rows if r["solved_at"] is not None]
        best = np.array([r["best"] for r in rows])
        final = np.array([r["final"] for r in rows])
        # every seed counts: one that never reached the threshold took more than the budget
        steps_to_solve = [r["solved_at"] if r["solved_at"] is not None else np.inf for r in rows]
        median = np.median(steps_to_solve)
        median_solve = f"{median:,.0f}" if np.isfinite(median) else f"> {args.steps:,}"
        print(
            f"| {algo} | {len(solved)}/{len(rows)} | {median_solve} | {best.mean():.1f} ± {best.std():.1f} | "
            f"{final.mean():.1f} ± {final.std():.1f} | {np.median([r['seconds'] for r in rows]):.0f} |"
        )


if __name__ == "__main__":
    main()
