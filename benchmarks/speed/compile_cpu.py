"""What ``torch.compile`` would buy full Rainbow on the CPU: per-call time of the loss with its backward
pass, and of acting on one observation, eager against compiled, and the time compiling takes.

CartPole-v1, the default ``MlpPolicy`` (dueling streams of [64, 64], noisy, C51, Double DQN), batch
32, one torch thread; medians over rounds of ``--calls`` calls, after a warm-up. Compiling uses
inductor's C++ backend (a C++ compiler must be on the PATH); its cache is emptied first, so the
compile time is what a first run pays.

    python benchmarks/speed/compile_cpu.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

# a fresh inductor cache, set before torch is imported: the compile time a first run pays
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"

import torch as th

from rainbow_ext import Rainbow


def per_call_ms(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    fn()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    th.set_num_threads(1)

    model = Rainbow("MlpPolicy", "CartPole-v1", learning_starts=1_000, seed=0, device="cpu")
    model.learn(1_100)
    batch = model.replay_buffer.sample(32)
    obs = th.as_tensor(model.env.reset())

    def loss_and_backward(terms: Callable[..., Any]) -> None:
        losses, _, _ = terms(batch)
        (batch.weights * losses).mean().backward()

    rows = []
    eager = per_call_ms(lambda: loss_and_backward(model._categorical_terms), args.calls, args.rounds)
    start = time.perf_counter()
    compiled_terms = th.compile(model._categorical_terms)
    loss_and_backward(compiled_terms)
    compile_s = time.perf_counter() - start
    compiled = per_call_ms(lambda: loss_and_backward(compiled_terms), args.calls, args.rounds)
    rows.append(("loss + backward (batch 32)", eager, compiled, compile_s))

    with th.no_grad():
        eager = per_call_ms(lambda: model.q_net._predict(obs, deterministic=False), args.calls * 4, args.rounds)
        start = time.perf_counter()
        compiled_act = th.compile(model.q_net._predict)
        compiled_act(obs, deterministic=False)
        compile_s = time.perf_counter() - start
        compiled = per_call_ms(lambda: compiled_act(obs, deterministic=False), args.calls * 4, args.rounds)
    rows.append(("acting (1 observation)", eager, compiled, compile_s))

    print(f"\ntorch {th.__version__}, CPU, 1 thread; medians of {args.rounds} rounds")
    print("| what | eager ms/call | compiled ms/call | speed-up | compile time (s) |\n|---|---|---|---|---|")
    for what, eager, compiled, compile_s in rows:
        print(f"| {what} | {eager:.3f} | {compiled:.3f} | {eager / compiled:.2f}x | {compile_s:.1f} |")


if __name__ == "__main__":
    main()
