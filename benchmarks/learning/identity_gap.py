"""Which component costs SB3's identity test its score: every preset beside SB3's DQN, several seeds.

SB3's ``test_identity`` trains DQN on ``IdentityEnv(4)`` (reward 1 for repeating the observation, 100
steps a game) and asks 20 deterministic games for a mean of at least 90. Each run here uses the same
settings (``learning_starts=0``, ``gamma=0.4``, the budget and learning rate below); only the preset
differs. Prints a Markdown table for BENCHMARKS.md: mean and spread of the 20-game score over seeds,
the worst seed and how many seeds reach 90.

    python benchmarks/learning/identity_gap.py --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SB3_TEST = dict(learning_starts=0, gamma=0.4, learning_rate=2e-3)  # SB3's tests/test_identity.py for DQN
THRESHOLD = 90.0
# "<preset>+eps": the preset with SB3 DQN's epsilon-greedy schedule on top (noisy presets explore by
# their noise alone otherwise, as in the paper)
EPSILON = dict(exploration_fraction=0.1, exploration_initial_eps=1.0, exploration_final_eps=0.05)


def run(algo: str, seed: int, steps: int) -> dict[str, Any]:
    import torch as th
    from stable_baselines3 import DQN
    from stable_baselines3.common.envs import IdentityEnv
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rainbow_ext import Rainbow

    th.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Evaluation environment is not wrapped with a ``Monitor``")
    env = DummyVecEnv([lambda: IdentityEnv(4)])
    start = time.perf_counter()
    if algo == "sb3-dqn":
        model = DQN("MlpPolicy", env, seed=seed, **SB3_TEST)
    else:
        preset, _, extra = algo.partition("+")
        epsilon = EPSILON if extra == "eps" else {}
        model = Rainbow.from_preset(preset, "MlpPolicy", env, seed=seed, **SB3_TEST, **epsilon)
    model.learn(steps)
    scores, _ = evaluate_policy(model, env, n_eval_episodes=20, return_episode_rewards=True)
    return dict(algo=algo, seed=seed, score=float(np.mean(scores)), seconds=time.perf_counter() - start)


def main() -> None:
    from rainbow_ext import PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["sb3-dqn", *PRESETS, "noisy+eps", "rainbow+eps"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=1200, help="SB3's test budget")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/identity_gap.json")
    args = parser.parse_args()

    cases = [(algo, seed) for algo in args.algos for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, algo, seed, args.steps) for algo, seed in cases]
        results = [future.result() for future in futures]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(steps=args.steps, settings=SB3_TEST, runs=results), indent=1))

    print(f"IdentityEnv(4), {args.steps} steps, {args.seeds} seeds, 20 deterministic games per seed\n")
    print("| algo | score (mean ± std over seeds) | worst seed | seeds >= 90 |")
    print("|---|---|---|---|")
    for algo in args.algos:
        scores = np.array([r["score"] for r in results if r["algo"] == algo])
        print(
            f"| {algo} | {scores.mean():.1f} ± {scores.std(ddof=1) if len(scores) > 1 else 0:.1f} "
            f"| {scores.min():.1f} | {(scores >= THRESHOLD).sum()}/{len(scores)} |"
        )


if __name__ == "__main__":
    main()
