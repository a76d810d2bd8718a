"""Speed of the data-efficient Rainbow loop (one update per agent step, Atari): agent steps per second
of SB3's own ``learn``, for one process alone and for several processes sharing one GPU.

Each run builds the ``atari`` entry of ``zoo_configs/rainbow_der.yml`` on ``--env`` (Nature CNN,
batch 32, n = 20, prioritized replay, frame storage), learns through ``learning_starts`` and
``--warmup`` more steps (kernels, allocator, CUDA graph capture), then times ``--steps`` more agent
steps with one gradient step each. SB3 DQN runs the same schedule (learning rate, batch, train_freq 1,
target update every 2,000 steps, 1,600 learning starts) with its own defaults otherwise. With
``--procs N`` each contender runs N processes at once on the device, one torch thread each; the
table gives the median over processes and their sum.

    python benchmarks/der_speed.py --device cuda --procs 1 --contenders rainbow rainbow-eager sb3-dqn
    python benchmarks/der_speed.py --device cuda --procs 8 --contenders rainbow
    python benchmarks/der_speed.py --device cpu --steps 100 --warmup 20   # a dry run
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

import torch as th
from stable_baselines3 import DQN

from rainbow_ext import Rainbow
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.config import CONFIG_DIR

CONTENDERS = ["rainbow", "rainbow-eager", "sb3-dqn"]


def build(contender: str, env_id: str, device: str, buffer_size: int) -> Any:
    run_config = zoo_config("rainbow", env_id, conf_file=CONFIG_DIR / "rainbow_der.yml")
    hyperparams = {**run_config.hyperparams, "buffer_size": buffer_size}
    env = run_config.make_env(seed=0)
    if contender == "sb3-dqn":
        schedule = ("learning_rate", "batch_size", "learning_starts", "gamma", "target_update_interval", "train_freq")
        return DQN("CnnPolicy", env, device=device, seed=0, buffer_size=buffer_size,
                   **{k: hyperparams[k] for k in schedule})  # fmt: skip
    graphs = None if contender == "rainbow" else False
    return Rainbow(run_config.policy, env, device=device, seed=0, cuda_graphs=graphs, **hyperparams)


def steps_per_second(contender: str, env_id: str, device: str, steps: int, warmup: int) -> float:
    th.set_num_threads(1)
    model = build(contender, env_id, device, buffer_size=model_buffer(steps, warmup))
    model.learn(model.learning_starts + warmup)
    synchronize = th.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    synchronize()
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    synchronize()
    return steps / (time.perf_counter() - start)


def model_buffer(steps: int, warmup: int) -> int:
    return 1_600 + warmup + steps + 100  # every transition of the run: the speed of a 100k-step run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--steps", type=int, default=2_000, help="timed agent steps per process")
    parser.add_argument("--warmup", type=int, default=200, help="agent steps after learning starts, not timed")
    parser.add_argument("--procs", type=int, default=1, help="processes sharing the device, per contender")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not th.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; --device cpu for a dry run")

    name = th.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"\n{name}: {args.env}, DER schedule, {args.steps:,} timed steps per process, {args.procs} process(es)")
    print("| contender | processes | median steps/s per process | sum | per process |\n|---|---|---|---|---|")
    for contender in args.contenders:
        jobs = [(contender, args.env, args.device, args.steps, args.warmup)] * args.procs
        with mp.get_context("spawn").Pool(args.procs) as pool:
            rates = pool.starmap(steps_per_second, jobs)
        rounds = " ".join(f"{r:,.0f}" for r in rates)
        print(f"| {contender} | {args.procs} | {statistics.median(rates):,.0f} | {sum(rates):,.0f} | {rounds} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
