"""Atari env throughput: agent steps per second under random actions, 8 envs, side by side.

Contenders, each giving (n_envs, 4, 84, 84) uint8 observations of the same game:
  raw      ale-py's ``AtariVectorEnv`` (same-step autoreset), called directly;
  adapter  :class:`rainbow_ext.envs.AleVecEnv`, the SB3 VecEnv over it;
  dummy    SB3 ``DummyVecEnv`` of gymnasium ALE envs + ``AtariWrapper`` + ``VecFrameStack``;
  subproc  the same in SB3 ``SubprocVecEnv`` (one process per env).
Rounds alternate the contenders; the table gives each one's median over rounds, and the ratios
adapter/raw and adapter/subproc.

    python benchmarks/speed/atari_env_throughput.py --game ALE/Breakout-v5 --n-envs 8 --steps 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from ale_py import AtariVectorEnv

from rainbow_ext.envs import atari_rom, make_atari_vec_env


def raw_stepper(game: str, n_envs: int) -> tuple[Callable[[np.ndarray], object], Callable[[], None], int]:
    env = AtariVectorEnv(atari_rom(game), n_envs, autoreset_mode="SameStep", reward_clipping=False)
    env.reset(seed=0)
    return env.step, env.close, int(env.single_action_space.n)


def vec_stepper(game: str, n_envs: int, kind: str) -> tuple[Callable[[np.ndarray], object], Callable[[], None], int]:
    venv = make_atari_vec_env(game, n_envs, seed=0, vec_env=kind)  # type: ignore[arg-type]
    venv.reset()
    return venv.step, venv.close, int(venv.action_space.n)


def steps_per_second(step: Callable[[np.ndarray], object], n_actions: int, n_envs: int, steps: int) -> float:
    """Agent steps (env steps summed over envs) per second for ``steps`` agent steps."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, size=(steps // n_envs, n_envs))
    start = time.perf_counter()
    for row in actions:
        step(row)
    return len(actions) * n_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="ALE/Breakout-v5")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="agent steps per contender per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    steppers = {
        "raw": raw_stepper(args.game, args.n_envs),
        "adapter": vec_stepper(args.game, args.n_envs, "ale"),
        "dummy": vec_stepper(args.game, args.n_envs, "dummy"),
        "subproc": vec_stepper(args.game, args.n_envs, "subproc"),
    }
    results: dict[str, list[float]] = {name: [] for name in steppers}
    for step, _, n_actions in steppers.values():  # warm-up
        steps_per_second(step, n_actions, args.n_envs, args.n_envs * 20)
    for _ in range(args.rounds):
        for name, (step, _, n_actions) in steppers.items():
            results[name].append(steps_per_second(step, n_actions, args.n_envs, args.steps))
    for _, close, _ in steppers.values():
        close()

    print(f"{args.game}, {args.n_envs} envs, random actions, {args.steps} agent steps x {args.rounds} rounds")
    print(f"{'contender':10s} {'median steps/s':>15s}   rounds")
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:10s} {medians[name]:15,.0f}   " + " ".join(f"{v:,.0f}" for v in values))
    print(f"adapter/raw = {medians['adapter'] / medians['raw']:.2f}x (target >= 0.9)")
    print(f"adapter/subproc = {medians['adapter'] / medians['subproc']:.2f}x (target >= 1.5)")
    print(f"adapter/dummy = {medians['adapter'] / medians['dummy']:.2f}x")


if __name__ == "__main__":
    main()
