"""Prioritized replay sampling cost beside SB3's uniform replay buffer, in one run.

For a buffer of 1,000,000 CartPole-sized transitions (4 floats) and batches of 32 and 256, prints the
median time per call of:
  (a) SB3 ``ReplayBuffer.sample``;
  (b) ``PrioritizedReplayBuffer.sample`` + ``update_priorities`` (8-ary sum tree, numba kernels);
  (c) the same buffer with a straightforward per-element Python binary sum tree;
  (d) the same buffer with a batch-vectorized NumPy binary sum tree (no compiled kernel),
and the ratios (b)/(a), (c)/(b) and (d)/(b).

    python benchmarks/speed/per_sampling.py
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


class BinarySumTree:
    """Binary sum tree in one flat array: node 1 is the root, node k has children 2k and 2k + 1."""

    def __init__(self, size: int) -> None:
        self.capacity = 1 << (size - 1).bit_length()
        self.tree = np.zeros(2 * self.capacity)

    def fill(self, values: np.ndarray) -> None:
        self.tree[self.capacity : self.capacity + len(values)] = values
        for node in range(self.capacity - 1, 0, -1):
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]


class PythonSumTree(BinarySumTree):
    """Per-element loops in plain Python: the straightforward implementation."""

    def _descend(self, mass: float) -> int:
        tree, node = self.tree, 1
        while node < self.capacity:
            left = 2 * node
            if mass < tree[left] or tree[left + 1] <= 0.0:
                node = left
            else:
                mass -= tree[left]
                node = left + 1
        return node - self.capacity

    def sample_stratified(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        segment = self.tree[1] / len(uniforms)
        leaves = [self._descend((k + u) * segment) for k, u in enumerate(uniforms.tolist())]
        return np.array(leaves, dtype=np.int64), self.tree[self.capacity + np.array(leaves)]

    def set_priorities(self, leaves: np.ndarray, priorities: np.ndarray, n_valid: int, alpha: float, eps: float) -> int:
        pairs = list(zip(leaves.tolist(), priorities.tolist(), strict=True))
        if any(not 0 <= leaf < n_valid for leaf, _ in pairs):
            return 1
        if any(not 0.0 <= p < float("inf") for _, p in pairs):
            return 2
        tree = self.tree
        for leaf, priority in pairs:
            node = leaf + self.capacity
            tree[node] = (priority + eps) ** alpha
            node //= 2
            while node >= 1:
                tree[node] = tree[2 * node] + tree[2 * node + 1]
                node //= 2
        return 0


class NumpySumTree(BinarySumTree):
    """One NumPy operation per tree level over the whole batch: O(log N) array operations."""

    def sample_stratified(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mass = (np.arange(len(uniforms)) + uniforms) * (self.tree[1] / len(uniforms))
        nodes = np.ones(mass.shape[0], dtype=np.int64)
        while nodes[0] < self.capacity:  # every node of the batch is at the same depth
            left = 2 * nodes
            left_mass, right_mass = self.tree[left], self.tree[left + 1]
            go_right = (mass >= left_mass) & (right_mass > 0.0)
            mass -= np.where(go_right, left_mass, 0.0)
            nodes = left + go_right
        return nodes - self.capacity, self.tree[nodes]

    def set_priorities(self, leaves: np.ndarray, priorities: np.ndarray, n_valid: int, alpha: float, eps: float) -> int:
        if leaves.min() < 0 or leaves.max() >= n_valid:
            return 1
        if not (np.all(priorities >= 0.0) and np.all(priorities < np.inf)):
            return 2
        nodes = leaves + self.capacity
        self.tree[nodes] = (priorities + eps) ** alpha
        while nodes[0] > 1:
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
        return 0


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
        priorities = (rng.uniform(0, 10, size=args.capacity) + 1e-6) ** 0.5
        if isinstance(buffer.tree, SumTree):
            buffer.tree.update(np.arange(args.capacity), priorities)
        else:
            buffer.tree.fill(priorities)
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
