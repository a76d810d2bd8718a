"""Speed of the data-efficient Rainbow loop (one update per agent step, Atari): agent steps per second
of SB3's own ``learn``, against SB3's DQN on the same schedule and network.

Each run builds the ``atari`` entry of ``zoo_configs/rainbow_der.yml`` on ``--env`` (DER's encoder,
256 hidden units, batch 32, n = 20, prioritized replay, frame storage), learns through
``learning_starts`` and ``--warmup`` more steps (kernels, allocator, CUDA graph capture), then times
``--steps`` more agent steps with one gradient step each. The SB3 DQN contenders run the same schedule
(learning rate, batch, train_freq 1, target update every 2,000 steps, 1,600 learning starts) on the same
network without Rainbow's components, SB3's defaults otherwise:

- ``sb3-dqn``: ``features_extractor_class=DataEfficientTrunk, net_arch=[256]`` (the same encoder class,
  which runs its convolutions as patch products on the CPU);
- ``sb3-dqn-conv``: the same layers as plain ``nn.Conv2d`` modules, as an SB3 user would write them.

On the CPU (``--rounds R``): one process per contender, one torch thread each, kept alive between rounds,
the SB3 DQN contenders in the same flush-to-zero mode as Rainbow's entry (``flush_denormal``; without it,
``--sb3-subnormals``, their steps slow down as their Adam state turns subnormal, see subnormals.py);
in each round the contenders run ``--steps`` steps one after another, never two at once, and the table
gives the median over rounds and its ratio to ``sb3-dqn``. With ``--profile`` each contender also
reports where one train call's time goes (``torch.profiler``, the top ops). ``--trunk`` times DER's
encoder alone: the patch products of ``DataEfficientTrunk`` against ``nn.Conv2d``.

On a GPU (``--procs N``): each contender runs N processes at once on the device; the table gives the
median over processes and their sum.

    python benchmarks/speed/der_speed.py --device cpu --rounds 5 --steps 1000
    python benchmarks/speed/der_speed.py --trunk --rounds 5                      # the encoder alone
    python benchmarks/speed/der_speed.py --device cuda --procs 1 --contenders rainbow rainbow-eager sb3-dqn
    python benchmarks/speed/der_speed.py --device cuda --procs 8 --contenders rainbow
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rainbow_ext import Rainbow

try:
    from rainbow_ext import DataEfficientTrunk
except ImportError:  # versions before DataEfficientTrunk: run with --encoder conv for the figures before it
    DataEfficientTrunk = None
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.config import CONFIG_DIR

CONTENDERS = ["rainbow", "rainbow-bf16", "rainbow-eager", "sb3-dqn", "sb3-dqn-conv"]
ENCODER = {"der": "DataEfficientTrunk", "conv": "ConvEncoder"}
SCHEDULE = ("learning_rate", "batch_size", "learning_starts", "gamma", "target_update_interval", "train_freq")


class ConvEncoder(BaseFeaturesExtractor):
    """DER's encoder as an SB3 user would write it: two ``nn.Conv2d`` layers (5x5, stride 5), flattened."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space, 576)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 5, stride=5), nn.ReLU(), nn.Conv2d(32, 64, 5, stride=5), nn.ReLU(), nn.Flatten()
        )

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.cnn(observations)


def build(contender: str, env_id: str, device: str, buffer_size: int, encoder: str = "der") -> Any:
    """A contender; ``encoder="conv"`` gives Rainbow (and ``sb3-dqn``) the plain ``nn.Conv2d`` encoder."""
    run_config = zoo_config("rainbow", env_id, conf_file=CONFIG_DIR / "rainbow_der.yml")
    hyperparams = {**run_config.hyperparams, "buffer_size": buffer_size}
    env = run_config.make_env(seed=0)
    trunk = ConvEncoder if encoder == "conv" or contender == "sb3-dqn-conv" else DataEfficientTrunk
    network = {"features_extractor_class": trunk, "net_arch": [256]}
    if contender.startswith("sb3-dqn"):
        return DQN("CnnPolicy", env, device=device, seed=0, buffer_size=buffer_size, policy_kwargs=network,
                   **{k: hyperparams[k] for k in SCHEDULE})  # fmt: skip
    graphs = False if contender == "rainbow-eager" else None
    if contender == "rainbow-bf16":
        network["features_extractor_kwargs"] = {"bfloat16": True}
    hyperparams["policy_kwargs"] = network
    return Rainbow(run_config.policy, env, device=device, seed=0, cuda_graphs=graphs, **hyperparams)


def model_buffer(steps: int, warmup: int, rounds: int = 1) -> int:
    return 1_600 + warmup + steps * rounds + 100  # every transition of the run: the speed of a 100k-step run


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


def serve(connection: Any, contender: str, args: argparse.Namespace) -> None:
    """A contender's process: build and warm up, then time ``steps`` agent steps at each request."""
    th.set_num_threads(1)
    steps, warmup = args.steps, args.warmup
    model = build(contender, args.env, "cpu", model_buffer(steps, warmup, args.rounds), args.encoder)
    if contender.startswith("sb3-dqn") and not args.sb3_subnormals:
        th.set_flush_denormal(True)  # the CPU mode Rainbow's DER entry trains in (flush_denormal)
    model.learn(model.learning_starts + warmup)
    connection.send("ready")
    while connection.recv() == "run":
        start = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        connection.send(steps / (time.perf_counter() - start))
    connection.send(train_profile(model) if args.profile else None)


def train_profile(model: Any, calls: int = 100) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            model.train(1, model.batch_size)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def trunk_times(rounds: int, calls: int = 200, batch: int = 32) -> None:
    """DER's encoder on one core, batch 32 of uint8 84x84x4 frames: ``DataEfficientTrunk``'s patch
    products against the same layers as ``nn.Conv2d`` (``ConvEncoder``), forward without gradients and
    forward plus backward, each including the conversion of the uint8 batch; medians over rounds."""
    th.set_num_threads(1)
    space = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")
    trunk, conv = DataEfficientTrunk(space), ConvEncoder(space)
    images = th.randint(0, 256, (batch, 4, 84, 84), dtype=th.uint8)

    def patches() -> th.Tensor:
        return trunk.features(trunk.prepare(images, 255.0))

    def convolutions() -> th.Tensor:
        return conv(images.float() / 255.0)

    def timed(forward: Any, backward: bool) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            with th.set_grad_enabled(backward):
                out = forward()
                if backward:
                    out.sum().backward()
        return (time.perf_counter() - start) / calls * 1e3

    results: dict[tuple[str, bool], list[float]] = {}
    for _ in range(rounds):
        for backward in (False, True):
            for name, forward in (("patch products", patches), ("Conv2d", convolutions)):
                results.setdefault((name, backward), []).append(timed(forward, backward))
    print(f"\nDER's encoder, batch {batch}, one torch thread, ms per call (median of {rounds} rounds of {calls})")
    print("| implementation | forward, no gradients | forward and backward |\n|---|---|---|")
    for name in ("patch products", "Conv2d"):
        cells = " | ".join(f"{statistics.median(results[(name, b)]):.2f}" for b in (False, True))
        print(f"| {name} | {cells} |")


def alternate(args: argparse.Namespace) -> None:
    context = mp.get_context("spawn")
    workers = {}
    for contender in args.contenders:
        mine, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, contender, args))
        process.start()
        workers[contender] = (mine, process)
        assert mine.recv() == "ready"  # built and warmed up one at a time: nothing else runs meanwhile
    rates: dict[str, list[float]] = {c: [] for c in args.contenders}
    for _ in range(args.rounds):
        for contender, (connection, _) in workers.items():
            connection.send("run")
            rates[contender].append(connection.recv())
    profiles = {}
    for contender, (connection, process) in workers.items():
        connection.send("stop")
        profiles[contender] = connection.recv()
        process.join()
    baselines = [b for b in ("sb3-dqn", "sb3-dqn-conv") if b in rates]
    print(f"\nCPU, one torch thread: {args.env}, DER schedule, {args.rounds} rounds of {args.steps:,} agent steps, "
          f"{ENCODER[args.encoder]} in rainbow and sb3-dqn; vs X: median over rounds of the round's ratio")  # fmt: skip
    print("| contender | median steps/s | ms per agent step | " + "".join(f"vs {b} | " for b in baselines) + "rounds |")
    print("|---" * (4 + len(baselines)) + "|")
    for contender, values in rates.items():
        median = statistics.median(values)
        # per round: the contenders ran one after another, so a round's ratio cancels what drifted between rounds
        ratios = [statistics.median(v / b for v, b in zip(values, rates[base], strict=True)) for base in baselines]
        cells = "".join(f"{r:.2f}x | " for r in ratios)
        rounds = " ".join(f"{v:.1f}" for v in values)
        print(f"| {contender} | {median:.1f} | {1e3 / median:.1f} | {cells}{rounds} |")
    for contender, table in profiles.items():
        if table:
            print(f"\n{contender}: one train(1) call, top ops (torch.profiler)\n{table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--contenders", nargs="+", default=None, choices=CONTENDERS)
    parser.add_argument("--steps", type=int, default=2_000, help="timed agent steps per process (per round)")
    parser.add_argument("--warmup", type=int, default=200, help="agent steps after learning starts, not timed")
    parser.add_argument("--procs", type=int, default=1, help="GPU: processes sharing the device, per contender")
    parser.add_argument("--rounds", type=int, default=5, help="CPU: alternating rounds")
    parser.add_argument("--profile", action="store_true", help="CPU: top ops of one train call per contender")
    encoders = "CPU: DataEfficientTrunk (der), or the plain nn.Conv2d encoder (conv), in rainbow and sb3-dqn"
    parser.add_argument("--encoder", choices=list(ENCODER), default="der", help=encoders)
    parser.add_argument("--trunk", action="store_true", help="CPU: time DER's encoder alone (patches vs Conv2d)")
    parser.add_argument(
        "--sb3-subnormals", action="store_true", help="CPU: SB3 DQN without the flush-to-zero mode Rainbow's entry has"
    )
    args = parser.parse_args()
    if args.trunk:
        trunk_times(args.rounds)
        return
    if args.device.startswith("cuda") and not th.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; --device cpu")
    if args.device == "cpu":
        args.contenders = args.contenders or ["rainbow", "sb3-dqn", "sb3-dqn-conv"]
        if "rainbow-bf16" in args.contenders and (args.encoder == "conv" or DataEfficientTrunk is None):
            parser.error("rainbow-bf16 is DataEfficientTrunk(bfloat16=True): not with --encoder conv")
        alternate(args)
        return
    args.contenders = args.contenders or ["rainbow", "rainbow-eager", "sb3-dqn"]
    name = th.cuda.get_device_name()
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
