"""Prioritized replay sampling cost beside SB3's uniform replay buffer, in one run.

For a buffer of 1,000,000 CartPole-sized transitions (4 floats) and batches of 32 and 256, prints the
median time per call of:
  (a) SB3 ``ReplayBuffer.sample``;
  (b) ``PrioritizedReplayBuffer.sample`` + ``update_priorities`` (numba sum tree);
  (c) the same buffer with a straightforward per-element Python sum tree;
  (d) the same buffer with a batch-vectorized NumPy sum tree (no compiled kernel),
and the ratios (b)/(a), (c)/(b) and (d)/(b).

    python benchmarks/per_sampling.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from rainbow_ext import PrioritizedReplayBuffer
from rainbow_ext.buffers.sum_tree import SumTree


class PythonSumTree(SumTree):
    """Per-element loops in plain Python: the straightforward implementation."""

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        tree = self.tree
        for leaf, value in zip(leaves.tolist(), values.tolist(), strict=True):
            node = leaf + self.capacity
            tree[node] = value
            node //= 2
            while node >= 1:
                tree[node] = tree[2 * node] + tree[2 * node + 1]
                node //= 2

    def find(self, targets: np.ndarray) -> np.ndarray:
        tree, out = self.tree, []
        for mass in targets.tolist():
            node = 1
            while node < self.capacity:
                left = 2 * node
                if mass < tree[left] or tree[left + 1] <= 0.0:
                    node = left
                else:
                    mass -= tree[left]
                    node = left + 1
            out.append(node - self.capacity)
        return np.array(out, dtype=np.int64)


class NumpySumTree(SumTree):
    """One NumPy operation per tree level over the whole batch: O(log N) array operations."""

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(leaves, dtype=np.int64) + self.capacity
        self.tree[nodes] = values
        while nodes[0] > 1:
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, targets: np.ndarray) -> np.ndarray:
        mass = np.array(targets, dtype=np.float64)
        nodes = np.ones(mass.shape[0], dtype=np.int64)
        while nodes[0] < self.capacity:  # every node of the batch is at the same depth
            left = 2 * nodes
            left_mass, right_mass = self.tree[left], self.tree[left + 1]
            go_right = (mass >= left_mass) & (right_mass > 0.0)
            mass -= np.where(go_right, left_mass, 0.0)
            nodes = left + go_right
        return nodes - self.capacity


def fill(buffer: ReplayBuffer, rng: np.random.Generator) -> None:
    buffer.observations[:] = rng.normal(size=buffer.observations.shape)
    buffer.next_observations[:] = rng.normal(size=buffer.next_observations.shape)
    buffer.rewards[:] = 1.0
    buffer.dones[:] = rng.random(buffer.dones.shape) < 0.02
    buffer.pos, buffer.full = 0, True


def median_us(calls_by_name: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict[str, float]:
    """Median time per call of each function, timed in interleaved rounds so that a change in the
    machine's load affects every variant alike."""
    per_call: dict[str, list[float]] = {name: [] for name in calls_by_name}
    for call in calls_by_name.values():
        call()  # warm up (and compile)
    for _ in range(repeats):
        for name, call in calls_by_name.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            per_call[name].append((time.perf_counter() - start) / calls)
    return {name: float(np.median(times)) * 1e6 for name, times in per_call.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    np.random.seed(0)
    obs_space, action_space = spaces.Box(-1, 1, shape=(4,), dtype=np.float32), spaces.Discrete(2)
    uniform = ReplayBuffer(args.capacity, obs_space, action_space, device="cpu")
    fill(uniform, rng)
    trees = {"numba": SumTree, "python": PythonSumTree, "numpy": NumpySumTree}
    buffers = {}
    for name, tree_class in trees.items():
        buffer = PrioritizedReplayBuffer(args.capacity, obs_space, action_space, device="cpu")
        fill(buffer, rng)
        buffer.tree = tree_class(args.capacity)
        buffer.tree.tree[:] = 0.0
        buffer.update_priorities(np.arange(args.capacity), rng.uniform(0, 10, size=args.capacity))
        buffers[name] = buffer

    def prioritized_step(buffer: PrioritizedReplayBuffer, batch_size: int) -> None:
        samples = buffer.sample(batch_size)
        buffer.update_priorities(samples.indices, np.random.uniform(0, 10, size=batch_size))

    print(f"capacity {args.capacity:,}, observation 4 x float32, median time per call over {args.repeats} repeats")
    print(
        "| batch | (a) SB3 ReplayBuffer.sample | (b) PER sample+update, numba | (c) Python sum tree "
        "| (d) NumPy sum tree | (b)/(a) | (c)/(b) | (d)/(b) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for batch_size in args.batch_sizes:
        calls = max(20, 6400 // batch_size)
        variants: dict[str, Callable[[], object]] = {"a": lambda n=batch_size: uniform.sample(n)}
        for key, name in (("b", "numba"), ("c", "python"), ("d", "numpy")):
            variants[key] = lambda buf=buffers[name], n=batch_size: prioritized_step(buf, n)
        times = median_us(variants, calls, args.repeats)
        a, b, c, d = (times[key] for key in "abcd")
        timings = " | ".join(f"{t:.0f} us" for t in (a, b, c, d))
        print(f"| {batch_size} | {timings} | {b / a:.2f} | {c / b:.1f} | {d / b:.1f} |")


if __name__ == "__main__":
    main()
