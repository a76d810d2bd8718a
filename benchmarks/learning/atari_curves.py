"""Atari learning curves: Rainbow with ``zoo_configs/rainbow.yml``'s ``atari`` entry beside SB3's DQN
with rl-zoo3's Atari DQN settings, on the same env, for a few hundred thousand agent steps or more.

Both learn on SB3's Atari path (``AtariWrapper``, 4-frame stacks, frame skip 4, no sticky actions, a
life loss ends the agent's episode, rewards clipped), one env each. The contenders:

- ``rainbow``: the ``rainbow`` preset with the ``atari`` entry (Hessel et al. 2018's settings: Adam lr
  6.25e-5, n = 3, 51 atoms on [-10, 10], target every 8,000 steps, learning starts 20,000, noisy nets,
  1M transitions in frame storage);
- ``sb3-dqn``: ``stable_baselines3.DQN`` with ``zoo_configs/sb3_dqn.yml``'s ``atari`` entry, rl-zoo3's
  (buffer 100k, Adam lr 1e-4, learning starts 100,000, target every 1,000 steps, epsilon 1 -> 0.01 over
  the first 10% of the run). As with ``rl_zoo3 train -n``, the schedule spans the budget given here.

The runs are a grid of ``python -m rainbow_ext.ablate`` (an Optuna study in ``--folder``): a rerun keeps
finished runs and continues killed ones from their last checkpoint (every ``--checkpoint-every`` steps:
model, replay buffer, episodes).

The score is the game score of training games (Dopamine's and the MinAtar paper's measure; each
run's ``episodes.csv`` counts whole games, not lives): at each point, the mean score of the last
``--window`` finished games, against emulator frames (4 per agent step). After training, each run plays
``--eval-episodes`` whole games with the noise off and epsilon 0, each cut at the entry's
``eval_max_steps`` (10,000 agent steps).

    python benchmarks/learning/atari_curves.py --games Pong --algos rainbow sb3-dqn --steps 500000 --plot
"""

from __future__ import annotations

import argparse
from pathlib import Path

from learning_curves import fifths_table, finished_runs, plot

from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.zoo.ablation import make_grid, prepare, run_ablation
from rainbow_ext.zoo.stats import atari_human_random

FRAMES_PER_STEP = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["Pong"], help="ALE game names (ALE/<game>-v5)")
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], help="presets or baselines")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=500_000, help="agent steps per run (4 frames each)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (the cores are shared out among them)")
    parser.add_argument("--window", type=int, default=20, help="games per point of the curve")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy games after training")
    parser.add_argument("--folder", default="logs/benchmarks/atari-curves", help="the grid's folder and study")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--report-only", action="store_true", help="tables and plot of the runs finished in --folder; run nothing"
    )
    args = parser.parse_args()
    for name in ("steps", "jobs", "window", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    envs = [f"ALE/{game}-v5" for game in args.games]
    grid = make_grid(
        args.algos,
        envs,
        args.seeds,
        args.steps,
        args.steps,  # one evaluation, at the end; the curve is the training games'
        args.eval_episodes,
        [],
        checkpoint_freq=args.checkpoint_every,
    )
    folder = Path(args.folder)
    url, study = prepare(grid, folder, None, "atari-curves")
    if run_ablation(grid, folder, url, study, jobs=args.jobs, report_only=args.report_only) != 0:
        raise SystemExit("interrupted: rerun the same command to continue")

    runs = finished_runs(study)
    random_play = {env: atari_human_random()[atari_rom(env)][0] for env in envs}
    print("\n| game | algo | seed | training score (last games) | evaluation, mean ± std | wall time |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        ev = r.evaluation
        print(
            f"| {r.env} | {r.algo} | {r.seed} | {r.final(args.window):.1f} | {ev.mean():.1f} ± {ev.std():.1f} "
            f"| {r.seconds / 3600:.2f} h |"
        )
    print(f"\nScore (mean of the last {args.window} training games) by emulator frames:\n")
    print(fifths_table(runs, envs, args.algos, args.steps, args.window, unit=FRAMES_PER_STEP))
    print("\nRandom play: " + ", ".join(f"{env} {score:.1f}" for env, score in random_play.items()))
    if args.plot:
        references = {env: (score, "random play") for env, score in random_play.items()}
        path = plot(
            runs, envs, args.algos, args.steps, args.window, folder / "atari_curves.png", references,
            unit=FRAMES_PER_STEP, x_label="emulator frames",
        )  # fmt: skip
        print(f"\ncurves: {path}")


if __name__ == "__main__":
    main()
