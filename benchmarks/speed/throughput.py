"""Training throughput side by side: environment steps per second of SB3 DQN, sb3-contrib QR-DQN and
Rainbow presets, in one process, contenders alternating, medians over rounds.

Settings: CartPole-v1 with each library's default MlpPolicy and batch 32 (train_freq 1 and 4), and
MinAtar Breakout-v1 with the MinAtar network (train_freq 4). Every contender gets the same
schedule (learning starts 1,000, buffer 100,000, one gradient step per train_freq steps, target
update every 1,000 steps), so the figures compare the cost of a step, not different schedules.
Ratios are to SB3 DQN; targets (CartPole, ``train_freq`` 4): preset ``dqn`` at >= 0.95x, ``rainbow`` at >= 0.8x.

    python benchmarks/speed/throughput.py --steps 20000 --rounds 3
    python benchmarks/speed/throughput.py --settings cartpole-tf4 --contenders sb3-dqn dqn rainbow --steps 5000
    python benchmarks/speed/throughput.py --settings cartpole-tf4 --contenders sb3-dqn dqn rainbow --per-call

``--per-call`` times the two parts of a step instead, after learning starts: ``predict`` on one
observation (noise on) and ``train(1, 32)``, medians over rounds of 500 calls, and counts the aten
ops each dispatches (forward and backward).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch as th
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from torch.utils._python_dispatch import TorchDispatchMode

from rainbow_ext import Rainbow, preset_flags
from rainbow_ext.envs import make_minatar_env
from rainbow_ext.layers import MinAtarTrunk

SETTINGS: dict[str, dict[str, Any]] = {
    "cartpole-tf1": {"env": "CartPole-v1", "train_freq": 1, "policy": "MlpPolicy"},
    "cartpole-tf4": {"env": "CartPole-v1", "train_freq": 4, "policy": "MlpPolicy"},
    "minatar-breakout-tf4": {"env": "MinAtar/Breakout-v1", "train_freq": 4, "policy": "CnnPolicy"},
}
CONTENDERS = [
    "sb3-dqn",
    "qrdqn",
    "dqn",
    "rainbow",
    "rainbow-no-double",
    "rainbow-no-dueling",
    "rainbow-no-noisy",
    "rainbow-no-c51",
    "rainbow-no-nstep",
    "rainbow-no-per",
]
COMMON = dict(learning_starts=1_000, buffer_size=100_000, batch_size=32, gradient_steps=1, target_update_interval=1_000)


def build(contender: str, setting: dict[str, Any], seed: int) -> Any:
    env: Any = make_minatar_env(setting["env"]) if setting["env"].startswith("MinAtar/") else setting["env"]
    kwargs = dict(COMMON, train_freq=setting["train_freq"], seed=seed, device="cpu", verbose=0)
    minatar = setting["env"].startswith("MinAtar/")
    if contender in ("sb3-dqn", "qrdqn"):
        cls = DQN if contender == "sb3-dqn" else QRDQN
        policy_kwargs = {"features_extractor_class": MinAtarTrunk, "net_arch": [128]} if minatar else None
        return cls("CnnPolicy" if minatar else "MlpPolicy", env, policy_kwargs=policy_kwargs, **kwargs)
    return Rainbow(setting["policy"], env, **preset_flags(contender), **kwargs)


def steps_per_second(contender: str, setting: dict[str, Any], steps: int, seed: int) -> float:
    model = build(contender, setting, seed)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


class OpCount(TorchDispatchMode):
    """Counts the aten ops dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


def per_call_ms(contender: str, setting: dict[str, Any], rounds: int) -> tuple[float, float, int, int]:
    model = build(contender, setting, seed=0)
    model.learn(COMMON["learning_starts"] + 500)
    obs = model.env.reset()
    with OpCount() as act_ops:
        model.predict(obs, deterministic=False)
    with OpCount() as train_ops:
        model.train(1, 32)
    times: dict[str, list[float]] = {"predict": [], "train": []}
    for _ in range(rounds):
        for name, call in (
            ("predict", lambda: model.predict(obs, deterministic=False)),
            ("train", lambda: model.train(1, 32)),
        ):
            start = time.perf_counter()
            for _ in range(500):
                call()
            times[name].append((time.perf_counter() - start) / 500 * 1e3)
    return statistics.median(times["predict"]), statistics.median(times["train"]), act_ops.ops, train_ops.ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-call", action="store_true", help="time predict and train(1) instead")
    args = parser.parse_args()
    th.set_num_threads(1)

    if args.per_call:
        for name in args.settings:
            print(f"\n{name}: ms per call, medians of {args.rounds} rounds of 500 calls")
            print("| contender | predict (1 obs) | train(1, 32) | aten ops: predict, train |\n|---|---|---|---|")
            for contender in args.contenders:
                act, train, act_ops, train_ops = per_call_ms(contender, SETTINGS[name], args.rounds)
                print(f"| {contender} | {act:.3f} | {train:.3f} | {act_ops}, {train_ops} |", flush=True)
        return

    for name in args.settings:
        setting = SETTINGS[name]
        results: dict[str, list[float]] = {c: [] for c in args.contenders}
        for round_ in range(args.rounds):
            for contender in args.contenders:  # alternating: drifts of the machine hit every contender
                results[contender].append(steps_per_second(contender, setting, args.steps, seed=round_))
        base = statistics.median(results["sb3-dqn"]) if "sb3-dqn" in results else None
        print(f"\n{name}: {setting['env']}, train_freq {setting['train_freq']}, {args.steps:,} steps x {args.rounds}")
        print("| contender | median steps/s | ratio to SB3 DQN | rounds |\n|---|---|---|---|")
        for contender, values in results.items():
            median = statistics.median(values)
            ratio = f"{median / base:.2f}" if base else "-"
            rounds = " ".join(f"{v:,.0f}" for v in values)
            print(f"| {contender} | {median:,.0f} | {ratio} | {rounds} |")


if __name__ == "__main__":
    main()
