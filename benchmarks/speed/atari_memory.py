"""Replay memory for Atari observations (4, 84, 84) uint8: bytes per transition and measured RSS.

Prints the bytes per transition of
  (a) SB3 ``ReplayBuffer`` (observations and next observations in full),
  (b) SB3 ``ReplayBuffer(optimize_memory_usage=True)`` (next observations shared; no timeouts),
  (c) ``PrioritizedReplayBuffer`` with frame storage (what ``Rainbow`` uses on Atari),
from ``nbytes`` (SB3's arrays are never filled, so nothing of (a) or (b) is allocated), then fills
a buffer of ``--capacity`` transitions of (c) with a frame-stacked stream (episodes of about
``--episode`` steps, 8 envs) and reports the growth of the process's resident memory. Last, the
median time of ``sample(32)`` from that buffer (which rebuilds 64 stacks from single frames) beside
SB3's ``ReplayBuffer.sample(32)`` from a filled buffer of ``--sb3-capacity`` transitions.

    python benchmarks/speed/atari_memory.py                  # 1M transitions, about 7 GB of RAM
    python benchmarks/speed/atari_memory.py --capacity 100000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from rainbow_ext import PrioritizedReplayBuffer
from rainbow_ext.buffers.frame_storage import frame_stack_buffer

OBS = spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
ACT = spaces.Discrete(18)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def sb3_bytes_per_transition(**kwargs: Any) -> float:
    size = 1000
    buffer = ReplayBuffer(size, OBS, ACT, device="cpu", **kwargs)
    arrays = [buffer.observations, buffer.actions, buffer.rewards, buffer.dones, buffer.timeouts]
    if not buffer.optimize_memory_usage:
        arrays.append(buffer.next_observations)
    return sum(a.nbytes for a in arrays) / size


def ours_bytes(buffer: PrioritizedReplayBuffer) -> int:
    arrays = [buffer.actions, buffer.rewards, buffer.dones, buffer.timeouts, buffer.tree.tree]
    return buffer.frame_storage.nbytes + sum(a.nbytes for a in arrays)  # type: ignore[attr-defined]


def fill(buffer: ReplayBuffer, n_envs: int, episode: int, seed: int = 0) -> None:
    """One buffer's worth of VecFrameStack-like transitions (zero-padded first stacks, an episode
    end every ``episode`` steps per env on average)."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(64, 84, 84), dtype=np.uint8)  # frames to draw from
    obs = np.zeros((n_envs, 4, 84, 84), dtype=np.uint8)
    obs[:, -1] = pool[rng.integers(0, 64, size=n_envs)]
    actions = np.zeros((n_envs, 1), dtype=np.int64)
    rewards = np.zeros(n_envs, dtype=np.float32)
    for _ in range(buffer.buffer_size):
        next_obs = np.concatenate([obs[:, 1:], pool[rng.integers(0, 64, size=n_envs)][:, None]], axis=1)
        dones = rng.random(n_envs) < 1.0 / episode
        buffer.add(obs, next_obs, actions, rewards, dones, [{} for _ in range(n_envs)])
        obs = next_obs
        for i in np.flatnonzero(dones):
            obs[i] = 0
            obs[i, -1] = pool[rng.integers(0, 64)]


def median_sample_seconds(buffer: ReplayBuffer, batch_size: int = 32, calls: int = 2000) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        buffer.sample(batch_size)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions (all envs together)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--episode", type=int, default=2000, help="mean episode length in agent steps")
    parser.add_argument("--sb3-capacity", type=int, default=100_000, help="SB3 buffer for the sampling time")
    args = parser.parse_args()

    plain = sb3_bytes_per_transition()
    optimized = sb3_bytes_per_transition(optimize_memory_usage=True, handle_timeout_termination=False)
    before = rss_bytes()
    buffer = frame_stack_buffer(
        PrioritizedReplayBuffer, args.capacity, OBS, ACT, 4, device="cpu", n_envs=args.n_envs, n_steps=3
    )
    start = time.perf_counter()
    fill(buffer, args.n_envs, args.episode)
    seconds = time.perf_counter() - start
    grown = rss_bytes() - before
    ours = ours_bytes(buffer) / args.capacity
    ours_sample = median_sample_seconds(buffer)
    del buffer
    sb3_buffer = ReplayBuffer(args.sb3_capacity, OBS, ACT, device="cpu", n_envs=args.n_envs)
    fill(sb3_buffer, args.n_envs, args.episode)
    sb3_sample = median_sample_seconds(sb3_buffer)

    print(f"capacity {args.capacity:,} transitions of (4, 84, 84) uint8, {args.n_envs} envs, episodes ~{args.episode}")
    print(f"{'buffer':58s} {'bytes/transition':>16s} {'1M transitions':>15s}")
    rows = [
        ("(a) SB3 ReplayBuffer", plain),
        ("(b) SB3 ReplayBuffer, optimize_memory_usage (no timeouts)", optimized),
        ("(c) PrioritizedReplayBuffer + frame storage", ours),
    ]
    for name, per in rows:
        print(f"{name:58s} {per:16,.0f} {per * 1e6 / 1e9:13.1f} GB")
    print(f"(a)/(c) = {plain / ours:.2f}x, (b)/(c) = {optimized / ours:.2f}x")
    print(
        f"measured: resident memory grew by {grown / 1e9:.2f} GB ({grown / args.capacity:,.0f} bytes/transition) "
        f"while filling {args.capacity:,} transitions in {seconds:.0f} s ({args.capacity / seconds:,.0f} transitions/s)"
    )
    print(
        f"sample(32), median of 2000 calls: ours (prioritized, 3-step, {args.capacity:,}) {ours_sample * 1e6:,.0f} us, "
        f"SB3 ReplayBuffer ({args.sb3_capacity:,}) {sb3_sample * 1e6:,.0f} us, ratio {ours_sample / sb3_sample:.2f}x"
    )


if __name__ == "__main__":
    main()
