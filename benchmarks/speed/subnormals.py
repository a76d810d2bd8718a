"""Subnormal floats in a long CPU run: the DER entry (``zoo_configs/rainbow_der.yml``) on one core, with
``flush_denormal`` off and then on, the milliseconds per agent step in each stretch of ``--stretch`` steps
after learning starts, and, at the end, the share of Adam's state that is subnormal (below 1.2e-38,
nonzero) and the time of one ``train(1)`` call.

Adam's moment estimates of weights whose gradient stays zero (dead ReLU units) decay geometrically into
the subnormal range, where each operation on them costs the CPU many times a normal one; with the mode
on, ``learn`` flushes them to zero. The two runs train one after the other, from the same seed.

    python benchmarks/speed/subnormals.py --steps 6000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch as th

from rainbow_ext import Rainbow
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.config import CONFIG_DIR


def subnormal_share(model: Rainbow) -> float:
    """The fraction of Adam's state (both moments of every parameter) that is subnormal."""
    tiny = th.finfo(th.float32).tiny
    states = [v for s in model.policy.optimizer.state.values() for v in s.values() if th.is_tensor(v) and v.ndim]
    subnormal = sum(int(((v != 0) & (v.abs() < tiny)).sum()) for v in states)
    return subnormal / sum(v.numel() for v in states)


def run(env_id: str, steps: int, stretch: int, flush: bool) -> tuple[list[float], float, float]:
    th.set_num_threads(1)
    config = zoo_config("rainbow", env_id, conf_file=CONFIG_DIR / "rainbow_der.yml")
    hyperparams = {**config.hyperparams, "flush_denormal": flush}
    model = Rainbow(config.policy, config.make_env(seed=0), seed=0, **hyperparams)
    model.learn(model.learning_starts)
    stretches = []
    for _ in range(steps // stretch):
        start = time.perf_counter()
        model.learn(stretch, reset_num_timesteps=False)
        stretches.append((time.perf_counter() - start) / stretch * 1e3)
    share = subnormal_share(model)
    th.set_flush_denormal(flush)
    calls = []
    for _ in range(100):
        start = time.perf_counter()
        model.train(1, model.batch_size)
        calls.append((time.perf_counter() - start) * 1e3)
    th.set_flush_denormal(False)
    return stretches, share, statistics.median(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--steps", type=int, default=6_000, help="agent steps after learning starts")
    parser.add_argument("--stretch", type=int, default=500)
    args = parser.parse_args()
    print(f"\n{args.env}, DER entry, one torch thread; ms per agent step in each stretch of {args.stretch} steps")
    print("| flush_denormal | per stretch | subnormal share of Adam's state | train(1) ms |\n|---|---|---|---|")
    for flush in (False, True):
        stretches, share, call = run(args.env, args.steps, args.stretch, flush)
        print(f"| {flush} | {' '.join(f'{s:.1f}' for s in stretches)} | {100 * share:.1f}% | {call:.1f} |", flush=True)


if __name__ == "__main__":
    main()
