"""Atari 100k: data-efficient Rainbow (DER, van Hasselt et al. 2019) on Pong, Breakout, Freeway and
Boxing, next to the published DER scores. Needs a GPU (``--device cuda``): one Nature-CNN update at
batch 32 takes tens of milliseconds on a CPU core, and DER makes one per agent step.

Each run trains ``--algo`` (default ``rainbow``) with ``zoo_configs/rainbow_der.yml`` for 100k agent
steps (400k frames), then plays ``--eval-episodes`` whole games (no life-loss episodes) with the
noise off, on an env seeded apart from training. Scores are raw game scores; the human-normalized
score is ``(score - random) / (human - random)`` with the random and human scores of
``rainbow_ext/data/atari_human_random.csv``.

    python benchmarks/atari100k.py --device cuda --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from rainbow_ext import Rainbow
from rainbow_ext.config import CONFIG_DIR
from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.stats import human_normalized, iqm
from rainbow_ext.train import zoo_config

DER_CONFIG = CONFIG_DIR / "rainbow_der.yml"
# van Hasselt et al. 2019, table of Atari 100k scores (data-efficient Rainbow)
PUBLISHED_DER = {"Pong": -19.3, "Breakout": 1.9, "Freeway": 27.9, "Boxing": 0.2}


def run(algo: str, game: str, seed: int, steps: int | None, eval_episodes: int, device: str) -> dict[str, Any]:
    th.set_num_threads(1)
    run_config = zoo_config(algo, f"ALE/{game}-v5", conf_file=DER_CONFIG)
    model = Rainbow(run_config.policy, run_config.make_env(seed=seed), seed=seed, device=device, verbose=0,
                    **run_config.hyperparams)  # fmt: skip
    budget = steps if steps is not None else run_config.n_timesteps
    start = time.perf_counter()
    model.learn(budget)
    seconds = time.perf_counter() - start
    # whole games: Monitor sits under the life-loss wrapper, so evaluate_policy counts games
    eval_env = run_config.make_env(seed=10_000 + seed)
    scores, _ = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, return_episode_rewards=True)
    score = float(np.mean(scores))
    return dict(game=game, seed=seed, score=score, seconds=seconds, steps_per_s=budget / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(PUBLISHED_DER))
    parser.add_argument("--algo", default="rainbow", help="a preset")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=None, help="agent steps (default: the config's 100k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (they share the device)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not th.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (Atari 100k on a CPU takes days; --device cpu forces it)")

    jobs = [(args.algo, g, s, args.steps, args.eval_episodes, args.device) for g in args.games for s in args.seeds]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run, jobs)
    for r in results:
        speed = f"{r['seconds']:.0f} s of training, {r['steps_per_s']:.0f} steps/s"
        print(f"{r['game']:>10} seed {r['seed']}: score {r['score']:8.1f}, {speed}")

    print("\n| game | score mean ± std | per seed | DER (published) | human-normalized |\n|---|---|---|---|---|")
    normalized = []
    for game in args.games:
        scores = np.array([r["score"] for r in results if r["game"] == game])
        hns = float(human_normalized(atari_rom(f"ALE/{game}-v5"), scores.mean()))
        normalized.append(hns)
        per_seed = ", ".join(f"{s:.1f}" for s in scores)
        published = PUBLISHED_DER.get(game, "-")
        print(f"| {game} | {scores.mean():.1f} ± {scores.std():.1f} | {per_seed} | {published} | {hns:.3f} |")
    hns_all = np.array(normalized)
    summary = f"mean {hns_all.mean():.3f}, median {np.median(hns_all):.3f}, IQM {iqm(hns_all):.3f}"
    print(f"\nhuman-normalized score over the games: {summary} (DER published, 26 games: mean 0.285, median 0.161)")


if __name__ == "__main__":
    main()
