"""MinAtar learning curves: Rainbow, SB3 DQN and sb3-contrib QR-DQN on the same schedule, several
seeds, next to the DQN curves of the MinAtar paper (Young & Tian 2019).

Every contender uses the MinAtar network (one 3x3 convolution with 16 channels, then 128 units) and
the ``minatar`` entry of its config file (``zoo_configs/rainbow.yml``, ``sb3_dqn.yml``, ``qrdqn.yml``:
buffer 100k, batch 32, learning starts 1,000, an update every 4 steps, target every 1,000, Adam lr
1e-4; Adam's eps is each library's default). Epsilon-greedy contenders anneal epsilon from 1 to 0.1
over the first 100k steps (Young & Tian; over the whole budget if it is shorter): the grid replaces
the entries' ``exploration_fraction``, and the presets' rules give it only to the variants that
explore with epsilon; Rainbow explores with noisy nets. The published DQN figures are a reference,
not the same schedule: Young & Tian update every step with RMSprop (lr 2.5e-4) from step 5,000.

The runs are a grid of ``python -m rainbow_ext.ablate`` (an Optuna study in ``--folder``): a rerun
keeps finished runs and continues killed ones from their last checkpoint (every ``--checkpoint-every``
steps: model, replay buffer, episodes). A resumed run's episode in progress ends at the checkpoint
(Rainbow stores it as a truncation) and its env and generators are reseeded with ``seed + step``; it
is not bit-identical to an uninterrupted one.

The score is the return of training episodes, as in the MinAtar paper: at each point, the mean
return of the last 100 finished episodes (each run's ``episodes.csv``). The summary table prints the
final score of every seed, and ``--plot`` draws the curves (mean and min-max over seeds) into
``<folder>/minatar.png``; ``--report-only`` prints the tables of the finished runs without running any.

    python benchmarks/learning/minatar_curves.py --games Breakout SpaceInvaders --algos rainbow sb3-dqn qrdqn --seeds 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from learning_curves import Run, fifths_table, finished_runs, plot

from rainbow_ext.zoo.ablation import make_grid, prepare, run_ablation

EXPLORATION_STEPS = 100_000
WINDOW = 100  # episodes per score
# Young & Tian 2019, DQN at 0.5M frames, read off their plots (approximate).
PUBLISHED_DQN = {"Breakout": 8.0, "SpaceInvaders": 30.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["Breakout", "SpaceInvaders"])
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn", "qrdqn"], help="presets or baselines")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs")
    parser.add_argument("--folder", default="logs/benchmarks/minatar", help="the grid's folder and study")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--report-only", action="store_true", help="tables and plot of the runs finished in --folder; run nothing"
    )
    parser.add_argument(
        "--export",
        metavar="DIR",
        help="also write each finished run to DIR (benchmarks/results/minatar): <game>-<algo>-seed<n>.csv with "
        "its episodes (step, return) and .json with its final score and wall time; never over another run's",
    )
    parser.add_argument("--machine", help="with --export: where the runs ran, recorded in each JSON")
    args = parser.parse_args()

    fraction = min(EXPLORATION_STEPS / args.steps, 1.0)
    envs = [f"MinAtar/{game}-v1" for game in args.games]
    grid = make_grid(
        args.algos,
        envs,
        args.seeds,
        args.steps,
        args.steps,  # one evaluation, at the end; the score is the training episodes'
        10,
        [],
        checkpoint_freq=args.checkpoint_every,
        entry_params=[f"exploration_fraction:{fraction}"],
    )
    out = Path(args.folder)
    url, study = prepare(grid, out, None, "minatar")
    if run_ablation(grid, out, url, study, jobs=args.jobs, report_only=args.report_only) != 0:
        raise SystemExit("interrupted: rerun the same command to continue")
    runs = finished_runs(study)
    if args.export:
        for path in export(runs, Path(args.export), args.steps, args.machine):
            print(f"wrote {path}")
    for r in runs:
        print(f"{r.env:>24} {r.algo:>18} seed {r.seed}: final {r.final(WINDOW):6.2f}, {r.seconds:.0f} s")
    print("\n| game | algo | final score, mean ± std | seed: final | published DQN | median wall time (s) |")
    print("|---|---|---|---|---|---|")
    for game, env in zip(args.games, envs, strict=True):
        for algo in args.algos:
            rows = [r for r in runs if r.env == env and r.algo == algo]
            if not rows:
                print(f"| {game} | {algo} | not run | | {PUBLISHED_DQN.get(game, '-')} | |")
                continue
            finals = np.array([r.final(WINDOW) for r in rows])
            per_seed = ", ".join(f"{r.seed}: {r.final(WINDOW):.2f}" for r in rows)
            print(
                f"| {game} | {algo} | {finals.mean():.2f} ± {finals.std():.2f} | {per_seed} | "
                f"{PUBLISHED_DQN.get(game, '-')} | {np.median([r.seconds for r in rows]):.0f} |"
            )
    print("\nScore (mean ± std over seeds) at each fifth of the run:\n")
    print(fifths_table(runs, envs, args.algos, args.steps, WINDOW))
    if args.plot:
        references = {
            env: (PUBLISHED_DQN[game], "paper DQN, 0.5M (own schedule)")
            for game, env in zip(args.games, envs, strict=True)
            if game in PUBLISHED_DQN
        }
        path = plot(runs, envs, args.algos, args.steps, WINDOW, out / "minatar.png", references)
        print(f"\ncurves: {path}")


def export(runs: list[Run], results: Path, steps: int, machine: str | None) -> list[Path]:
    """Each run's episodes and summary, in the format of the committed MinAtar results."""
    results.mkdir(parents=True, exist_ok=True)
    planned = []
    for r in runs:
        stem = f"{r.env.removeprefix('MinAtar/').removesuffix('-v1')}-{r.algo}-seed{r.seed}"
        planned.append((r, results / f"{stem}.csv", results / f"{stem}.json"))
    taken = [str(p) for _, csv, js in planned for p in (csv, js) if p.exists()]
    if taken:  # checked for every run before anything is written
        raise SystemExit(f"--export: would write over {', '.join(taken)}; move them away first")
    written = []
    for r, csv, js in planned:
        episodes = np.loadtxt(r.episodes, delimiter=",", skiprows=1, ndmin=2)
        csv.write_text("step,return\n" + "".join(f"{int(t)},{float(ret)}\n" for t, ret in episodes[:, :2]))
        summary = {"algo": r.algo, "game": csv.stem.split("-")[0], "seed": r.seed, "steps": steps,
                   "final": round(r.final(WINDOW), 2), "seconds": round(r.seconds)}  # fmt: skip
        if machine:
            summary["machine"] = machine
        js.write_text(json.dumps(summary))
        written += [csv, js]
    return written


if __name__ == "__main__":
    main()
