"""Gradient updates per second with the Nature CNN at batch 32, on Atari frames: SB3 DQN,
sb3-contrib QR-DQN and the Rainbow presets, side by side in one process on one device.

Each contender's replay buffer is filled with ``--fill`` random-action steps of Breakout (4 stacked
84x84 frames; Rainbow keeps them in its frame storage), then ``train(--updates, 32)`` is timed,
the device synchronized before and after; contenders alternate within each round and the table
gives the median over rounds. An update is everything ``train`` does for one batch: sampling, the
target computation, the loss, backward, the optimizer step (and for Rainbow noise sampling and
priority updates); target-network syncs, which SB3 does outside ``train``, are left out for all.
``rainbow`` runs with its default ``cuda_graphs=None`` (each step a replayed CUDA graph on a GPU),
``rainbow-eager`` with ``cuda_graphs=False``; on a CPU both are eager. ``rainbow-compiled`` (an experiment,
named only by ``--contenders``) also puts the loss terms through ``torch.compile``; the warm-up compiles.

    python benchmarks/gpu/gpu_updates.py --device cuda
    python benchmarks/gpu/gpu_updates.py --device cpu --updates 20 --rounds 3
    python benchmarks/gpu/gpu_updates.py --device cuda --contenders sb3-dqn rainbow rainbow-compiled
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch as th
from sb3_contrib import QRDQN
from stable_baselines3 import DQN

from rainbow_ext import Rainbow, preset_flags
from rainbow_ext.envs import make_atari_vec_env

CONTENDERS = ["sb3-dqn", "qrdqn", "dqn", "rainbow", "rainbow-eager"]
# An experiment, not a default contender: Rainbow's loss terms (three forward passes, the C51 target and
# the cross-entropy, and so their backward) through torch.compile, replayed inside the same CUDA graph.
EXPERIMENTS = ["rainbow-compiled"]


def build(contender: str, device: str, fill: int) -> Any:
    env = make_atari_vec_env("ALE/Breakout-v5", n_envs=1, seed=0)
    kwargs: dict[str, Any] = dict(
        buffer_size=fill + 1_000, learning_starts=fill, batch_size=32, seed=0, device=device, verbose=0
    )
    if contender in ("sb3-dqn", "qrdqn"):
        model = (DQN if contender == "sb3-dqn" else QRDQN)("CnnPolicy", env, **kwargs)
    elif contender == "rainbow-compiled":
        model = Rainbow("CnnPolicy", env, **preset_flags("rainbow"), **kwargs)
        model._categorical_terms = th.compile(model._categorical_terms, dynamic=False)  # type: ignore[method-assign]
    elif contender == "rainbow-eager":
        model = Rainbow("CnnPolicy", env, **preset_flags("rainbow"), cuda_graphs=False, **kwargs)
    else:
        model = Rainbow("CnnPolicy", env, **preset_flags(contender), **kwargs)
    model.learn(fill)  # random actions until learning_starts: fills the buffer, trains nothing
    return model


def updates_per_second(model: Any, updates: int, device: str) -> float:
    synchronize = th.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    synchronize()
    start = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=32)
    synchronize()
    return updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS + EXPERIMENTS)
    parser.add_argument("--fill", type=int, default=5_000, help="random steps in each buffer")
    parser.add_argument("--updates", type=int, default=500, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not th.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; --device cpu measures the CPU")
    th.set_num_threads(1 if args.device == "cpu" else th.get_num_threads())

    models = {c: build(c, args.device, args.fill) for c in args.contenders}
    for model in models.values():  # warm-up: kernels, allocator, optimizer state
        updates_per_second(model, 10, args.device)
    results: dict[str, list[float]] = {c: [] for c in args.contenders}
    for _ in range(args.rounds):
        for contender, model in models.items():
            results[contender].append(updates_per_second(model, args.updates, args.device))

    name = th.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {th.get_num_threads()} thread(s)"
    print(f"\n{name}: Nature CNN, batch 32, {args.updates} updates x {args.rounds} rounds")
    base = statistics.median(results["sb3-dqn"]) if "sb3-dqn" in results else None
    print("| contender | median updates/s | ratio to SB3 DQN | rounds |\n|---|---|---|---|")
    for contender, values in results.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}" if base else "-"
        print(f"| {contender} | {median:,.1f} | {ratio} | {' '.join(f'{v:,.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
