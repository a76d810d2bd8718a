"""Atari 100k: data-efficient Rainbow (DER, van Hasselt et al. 2019) on Pong, Breakout, Freeway and
Boxing, beside SB3's DQN on the same budget and the published DER scores. Needs a GPU (``--device
cuda``): one Nature-CNN update at batch 32 takes tens of milliseconds on a CPU core, and DER makes one
per agent step.

Each run trains for 100k agent steps (400k frames) with ``zoo_configs/rainbow_der.yml``'s ``atari``
entry, the same env for every contender (SB3's Atari path, ``--vec-env`` to change it):

- a preset (default ``rainbow``): the entry as it is;
- ``sb3-dqn``: ``stable_baselines3.DQN`` on the entry's schedule (lr 1e-4, an update every step,
  target every 2,000 updates, learning starts 1,600, epsilon 1 -> 0.01 over 2,500 steps), without
  Rainbow's keys, with SB3's Adam eps and its Nature-CNN head of 512 units.

It then plays ``--eval-episodes`` whole games (a life loss does not end one) with the noise off and
epsilon 0.0 (SB3's deterministic ``predict``), on an env seeded apart from training, each game cut at
the entry's ``eval_max_steps``. Scores are raw game scores; the human-normalized score is ``(score -
random) / (human - random)`` with the scores of ``rainbow_ext/data/atari_human_random.csv``. The
summary gives the IQM of the human-normalized scores over every (game, seed) run, with a 95%
stratified-bootstrap interval (Agarwal et al. 2021).

All runs start at once by default (``--workers``: processes sharing the GPU, one torch thread each):
4 games x 2 seeds x 2 contenders are 16 processes on a 16-core GPU machine.

    python benchmarks/atari100k.py --device cuda --algos rainbow sb3-dqn --seeds 0 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from rainbow_ext import Rainbow
from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.config import CONFIG_DIR
from rainbow_ext.zoo.stats import human_normalized, stratified_bootstrap_ci

DER_CONFIG = CONFIG_DIR / "rainbow_der.yml"
# van Hasselt et al. 2019, table of Atari 100k scores (data-efficient Rainbow)
PUBLISHED_DER = {"Pong": -19.3, "Breakout": 1.9, "Freeway": 27.9, "Boxing": 0.2}
# Rainbow's keys (components, C51, PER), not arguments of SB3's DQN
RAINBOW_ONLY = {
    *("double_q", "dueling", "noisy", "noisy_sigma0", "distributional", "n_atoms", "v_min", "v_max", "n_steps"),
    *("prioritized", "per_alpha", "per_beta0", "per_eps", "frame_storage", "cuda_graphs"),
}


def build(algo: str, game: str, seed: int, device: str, vec_env: str) -> tuple[Any, Any]:
    """The model and the resolved config entry of one run."""
    run_config = zoo_config("dqn" if algo == "sb3-dqn" else algo, f"ALE/{game}-v5", conf_file=DER_CONFIG)
    run_config.vec_env = vec_env
    env = run_config.make_env(seed=seed)
    if algo == "sb3-dqn":
        kwargs = {k: v for k, v in run_config.hyperparams.items() if k not in RAINBOW_ONLY}
        kwargs.pop("policy_kwargs", None)  # the entry's 256-unit head is DER's dueling streams
        return DQN(run_config.policy, env, seed=seed, device=device, verbose=0, **kwargs), run_config
    model = Rainbow(run_config.policy, env, seed=seed, device=device, verbose=0, **run_config.hyperparams)
    return model, run_config


def run(
    algo: str, game: str, seed: int, steps: int | None, eval_episodes: int, device: str, vec_env: str
) -> dict[str, Any]:
    th.set_num_threads(1)
    model, run_config = build(algo, game, seed, device, vec_env)
    budget = steps if steps is not None else run_config.n_timesteps
    start = time.perf_counter()
    model.learn(budget)
    seconds = time.perf_counter() - start
    # whole games: evaluate_policy counts Monitor's game ends, not lives
    eval_env = run_config.make_eval_env(n_envs=1, seed=10_000 + seed)
    scores, _ = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, return_episode_rewards=True)
    score = float(np.mean(scores))
    return dict(algo=algo, game=game, seed=seed, score=score, seconds=seconds, steps_per_s=budget / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(PUBLISHED_DER))
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], help="presets and sb3-dqn")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=None, help="agent steps (default: the config's 100k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=0, help="parallel runs sharing the device (0: all at once)")
    parser.add_argument("--vec-env", default="dummy", choices=["dummy", "subproc", "ale"])
    args = parser.parse_args()
    if args.device.startswith("cuda") and not th.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (Atari 100k on a CPU takes days; --device cpu forces it)")

    jobs = [
        (a, g, s, args.steps, args.eval_episodes, args.device, args.vec_env)
        for a in args.algos
        for g in args.games
        for s in args.seeds
    ]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers or len(jobs)) as pool:
        results = pool.starmap(run, jobs)
    wall = time.perf_counter() - start
    for r in results:
        speed = f"{r['seconds']:.0f} s of training, {r['steps_per_s']:.0f} steps/s"
        print(f"{r['algo']:>10} {r['game']:>10} seed {r['seed']}: score {r['score']:8.1f}, {speed}")
    print(f"\n{len(jobs)} runs in {wall / 60:.1f} minutes ({args.workers or len(jobs)} at a time on {args.device})")

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
                for s in args.seeds
            ]
        )  # fmt: skip
        value, low, high = stratified_bootstrap_ci(table)
        print(f"| {algo} | {value:.3f} [{low:.3f}, {high:.3f}] | {table.mean():.3f} | {np.median(table):.3f} |")
    print("\nDER published, 26 games: mean 0.285, median 0.161")


if __name__ == "__main__":
    main()
