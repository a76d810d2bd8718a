"""Atari 100k: data-efficient Rainbow (DER, van Hasselt et al. 2019) on Pong, Breakout, Freeway and
Boxing, beside SB3's DQN on the same budget and the published DER scores. Needs a GPU: one
Nature-CNN update at batch 32 takes tens of milliseconds on a CPU core, and DER makes one per agent
step (models go to the GPU when there is one, as SB3's ``device="auto"`` does).

The runs are a grid of ``python -m rainbow_ext.ablate`` (an Optuna study in ``--folder``; a rerun
keeps finished runs and, with ``--checkpoint-freq``, continues killed ones from their checkpoints).
Each trains for 100k agent steps (400k frames) on SB3's Atari path:

- a preset (default ``rainbow``): ``zoo_configs/rainbow_der.yml``'s ``atari`` entry;
- ``sb3-dqn``: ``stable_baselines3.DQN`` on the same schedule, ``benchmarks/configs/sb3_dqn_der.yml``
  (lr 1e-4, an update every step, target every 2,000 updates, learning starts 1,600, epsilon 1 -> 0.01
  over 2,500 steps), with SB3's Adam eps and its Nature-CNN head of 512 units.

At the end of training each run plays ``--eval-episodes`` whole games (a life loss does not end one)
with the noise off and epsilon 0.0 (SB3's deterministic ``predict``), on an env seeded apart from
training, each game cut at the entry's ``eval_max_steps``. Scores are raw game scores; the
human-normalized score is ``(score - random) / (human - random)`` with the scores of
``rainbow_ext/data/atari_human_random.csv``. The summary gives the IQM of the human-normalized scores
over every (game, seed) run, with a 95% stratified-bootstrap interval (Agarwal et al. 2021); the
grid's own report (``report.md``) adds P(rainbow > sb3-dqn). The training score (the mean of the last
10 training games, whole games) is tabled by fifths of the run, and ``--plot`` draws its curves into
``<folder>/atari100k.png``.

All runs start at once by default (``--jobs``, processes sharing the GPU): 4 games x 2 seeds x 2
contenders are 16 processes on a 16-core GPU machine. Start CUDA's MPS first
(``nvidia-cuda-mps-control -d``), or the processes take turns on the GPU.

    python benchmarks/atari100k.py --algos rainbow sb3-dqn --seeds 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from learning_curves import fifths_table, finished_runs, plot

from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.presets import PRESETS
from rainbow_ext.zoo.ablation import make_grid, prepare, run_ablation
from rainbow_ext.zoo.config import CONFIG_DIR
from rainbow_ext.zoo.stats import atari_human_random, human_normalized, stratified_bootstrap_ci

DER_CONFIG = CONFIG_DIR / "rainbow_der.yml"
SB3_DQN_DER_CONFIG = Path(__file__).parent / "configs" / "sb3_dqn_der.yml"
# van Hasselt et al. 2019, table of Atari 100k scores (data-efficient Rainbow)
PUBLISHED_DER = {"Pong": -19.3, "Breakout": 1.9, "Freeway": 27.9, "Boxing": 0.2}
WINDOW = 10  # training games per point of the curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(PUBLISHED_DER))
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], help="presets and sb3-dqn")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=None, help="agent steps (default: the config's 100k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=0, help="parallel runs sharing the device (0: all at once)")
    parser.add_argument("--checkpoint-freq", type=int, default=0, help="a resumable checkpoint every N steps")
    parser.add_argument("--folder", default="logs/benchmarks/atari100k", help="the grid's folder and study")
    parser.add_argument("--plot", action="store_true", help="training curves (score of the last 10 games)")
    args = parser.parse_args()

    confs = {a: str(DER_CONFIG) for a in args.algos if a in PRESETS}
    confs.update({"sb3-dqn": str(SB3_DQN_DER_CONFIG)} if "sb3-dqn" in args.algos else {})
    steps = args.steps or 100_000
    envs = [f"ALE/{game}-v5" for game in args.games]
    # one evaluation, at the end of training
    grid = make_grid(
        args.algos, envs, args.seeds, args.steps, steps, args.eval_episodes, [], confs, args.checkpoint_freq
    )
    folder = Path(args.folder)
    url, study = prepare(grid, folder, None, "atari100k")
    start = time.perf_counter()
    jobs = args.jobs or len(grid.points())
    if run_ablation(grid, folder, url, study, jobs=jobs) != 0:
        raise SystemExit("interrupted: rerun the same command to continue")
    wall = time.perf_counter() - start

    results = []
    for trial in study.get_trials(deepcopy=False):
        if "curve" in trial.user_attrs:
            game = trial.params["env"].removeprefix("ALE/").removesuffix("-v5")
            seconds = trial.user_attrs["seconds"]
            results.append(
                dict(algo=trial.params["variant"], game=game, seed=trial.params["seed"],
                     score=trial.user_attrs["curve"][-1][1], seconds=seconds, steps_per_s=steps / seconds)
            )  # fmt: skip
    results.sort(key=lambda r: (args.algos.index(r["algo"]), args.games.index(r["game"]), r["seed"]))
    for r in results:
        speed = f"{r['seconds']:.0f} s of training and evaluation, {r['steps_per_s']:.0f} steps/s"
        print(f"{r['algo']:>10} {r['game']:>10} seed {r['seed']}: score {r['score']:8.1f}, {speed}")
    print(f"\n{len(results)} runs in {wall / 60:.1f} minutes ({jobs} at a time)")

    print("\n| game | algo | score mean ± std | per seed | human-normalized | DER (published) |")
    print("|---|---|---|---|---|---|")
    for game in args.games:
        for algo in args.algos:
            scores = np.array([r["score"] for r in results if r["game"] == game and r["algo"] == algo])
            hns = float(human_normalized(atari_rom(f"ALE/{game}-v5"), scores.mean()))
            per_seed = ", ".join(f"{s:.1f}" for s in scores)
            published = PUBLISHED_DER.get(game, "-")
            print(
                f"| {game} | {algo} | {scores.mean():.1f} ± {scores.std():.1f} | {per_seed} | {hns:.3f} | {published} |"
            )
    print("\nHuman-normalized scores over every (game, seed) run; IQM with a 95% stratified-bootstrap interval:\n")
    print("| algo | IQM [95% CI] | mean | median |\n|---|---|---|---|")
    for algo in args.algos:
        table = np.array(  # [seeds, games]
            [
                [human_normalized(atari_rom(f"ALE/{g}-v5"), r["score"]) for g in args.games for r in results
                 if r["algo"] == algo and r["game"] == g and r["seed"] == s]
                for s in range(args.seeds)
            ]
        )  # fmt: skip
        value, low, high = stratified_bootstrap_ci(table)
        print(f"| {algo} | {value:.3f} [{low:.3f}, {high:.3f}] | {table.mean():.3f} | {np.median(table):.3f} |")
    print("\nDER published, 26 games: mean 0.285, median 0.161")
    runs = finished_runs(study)
    print(f"\nTraining score (mean of the last {WINDOW} games) by emulator frames:\n")
    print(fifths_table(runs, envs, args.algos, steps, WINDOW, unit=4))
    if args.plot:
        references = {env: (atari_human_random()[atari_rom(env)][0], "random play") for env in envs}
        path = plot(
            runs, envs, args.algos, steps, WINDOW, folder / "atari100k.png", references, unit=4,
            x_label="emulator frames",
        )  # fmt: skip
        print(f"\ncurves: {path}")


if __name__ == "__main__":
    main()
