"""A sum tree over a fixed number of leaves, for sampling in proportion to priority.

Binary tree in one flat float64 array: node 1 is the root, node k has children 2k and 2k + 1, and
leaf i sits at ``capacity + i`` (capacity is the size rounded up to a power of two; padding leaves
stay 0). Batches are processed by compiled numba kernels, O(B log N) for B leaves or draws. Sums are
recomputed from the children on every update, so float error does not accumulate.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _set_leaves(tree: np.ndarray, capacity: int, leaves: np.ndarray, values: np.ndarray) -> None:
    for k in range(leaves.shape[0]):
        node = leaves[k] + capacity
        tree[node] = values[k]
        node //= 2
        while node >= 1:
            tree[node] = tree[2 * node] + tree[2 * node + 1]
            node //= 2


@numba.njit(cache=True, inline="always")
def _descend(tree: np.ndarray, capacity: int, mass: float) -> int:
    node = 1
    while node < capacity:
        left = 2 * node
        # Never descend into an empty subtree: float error in ``mass`` could otherwise end on a
        # zero-priority leaf past the filled part of the buffer.
        if mass < tree[left] or tree[left + 1] <= 0.0:
            node = left
        else:
            mass -= tree[left]
            node = left + 1
    return node - capacity


@numba.njit(cache=True)
def _find_leaves(tree: np.ndarray, capacity: int, targets: np.ndarray) -> np.ndarray:
    leaves = np.empty(targets.shape[0], dtype=np.int64)
    for k in range(targets.shape[0]):
        leaves[k] = _descend(tree, capacity, targets[k])
    return leaves


@numba.njit(cache=True)
def _stratified_leaves(tree: np.ndarray, capacity: int, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = uniforms.shape[0]
    segment = tree[1] / n
    leaves = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    for k in range(n):
        leaves[k] = _descend(tree, capacity, (k + uniforms[k]) * segment)
        values[k] = tree[capacity + leaves[k]]
    return leaves, values


class SumTree:
    """Leaf values ``v_i >= 0`` with O(log N) updates and draws of ``i`` with probability ``v_i / sum v``.

    :param size: number of leaves
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.capacity = 1 << (size - 1).bit_length()
        self.tree = np.zeros(2 * self.capacity, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[self.capacity + np.asarray(leaves)]

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set leaf values (the last one wins for repeated leaves). The caller checks the input."""
        _set_leaves(self.tree, self.capacity, np.asarray(leaves, dtype=np.int64), np.asarray(values, dtype=np.float64))

    def sample_stratified(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One leaf from each of ``len(uniforms)`` equal segments of the total mass, at relative
        position ``uniforms[k]`` in [0, 1) within segment k; returns the leaves and their values."""
        return _stratified_leaves(self.tree, self.capacity, np.asarray(uniforms, dtype=np.float64))

    def find(self, targets: np.ndarray) -> np.ndarray:
        """Leaf whose prefix-sum interval ``[sum_{j<i} v_j, sum_{j<=i} v_j)`` holds each target mass."""
        return _find_leaves(self.tree, self.capacity, np.asarray(targets, dtype=np.float64))
