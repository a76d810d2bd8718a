"""CartPole-v1 learning benchmark: Rainbow (any preset) beside SB3's DQN, several seeds, one run.

Success criterion: a mean evaluation return >= 475 over 20 deterministic episodes at some evaluation
within 50k environment steps. Prints one line per run and a summary table (Markdown) to paste into
BENCHMARKS.md.

    python benchmarks/cartpole.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from rainbow_ext import Rainbow
from rainbow_ext.zoo import zoo_config

ENV_ID = "CartPole-v1"
THRESHOLD = 475.0

# rl-zoo3's tuned DQN hyperparameters for CartPole-v1 (hyperparams/dqn.yml).
DQN_ZOO: dict[str, Any] = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)


def run(algo: str, seed: int, steps: int, eval_freq: int, eval_episodes: int, conf: str | None) -> dict[str, Any]:
    th.set_num_threads(1)
    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    if algo == "sb3-dqn":
        model = DQN("MlpPolicy", env, seed=seed, **DQN_ZOO)
    else:
        # the CartPole-v1 entry of zoo_configs/rainbow.yml (or of --conf, e.g. a tune study's best.yml),
        # as `python -m rainbow_ext.train` uses it
        config = zoo_config(algo, ENV_ID, conf_file=conf)
        model = Rainbow(config.policy, env, seed=seed, **config.hyperparams)
    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=10_000 + seed)
    # EvalCallback keeps its per-evaluation results only when it has a log_path.
    log_path = tempfile.mkdtemp(prefix="cartpole-bench-")
    callback = EvalCallback(eval_env, n_eval_episodes=eval_episodes, eval_freq=eval_freq, log_path=log_path, verbose=0)
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    seconds = time.perf_counter() - start
    means = [float(np.mean(r)) for r in callback.evaluations_results]
    solved_at = next((t for t, m in zip(callback.evaluations_timesteps, means, strict=True) if m >= THRESHOLD), None)
    return dict(algo=algo, seed=seed, best=max(means), final=means[-1], solved_at=solved_at, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], help="presets, or sb3-dqn")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-freq", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    parser.add_argument("--conf", default=None, help="config file for the Rainbow presets (default: zoo_configs/)")
    args = parser.parse_args()

    jobs = [(a, s, args.steps, args.eval_freq, args.eval_episodes, args.conf) for a in args.algos for s in args.seeds]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = []
        for result in pool.starmap(run, jobs):
            results.append(result)
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
