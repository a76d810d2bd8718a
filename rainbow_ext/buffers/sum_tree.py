"""A sum tree over a fixed number of leaves, for sampling in proportion to priority.

The tree is K-ary (K = 8) and stored level by level in one flat float64 array: node j of level d
sits at ``offsets[d] + j`` and its children are nodes ``K j .. K j + K - 1`` of level d + 1; the last
level holds the leaves, and each level is padded with zeros to a multiple of K. Eight siblings of
8 bytes fill one 64-byte cache line, so a descent through a million leaves touches 7 levels instead
of a binary tree's 20, which is what a batch of random draws pays for in cache misses.

Batches are processed by compiled numba kernels in O(B log_K N). Sums are recomputed from the
children on every update, so float error does not accumulate.
"""

from __future__ import annotations

import numba
import numpy as np

BRANCHING = 8


@numba.njit(cache=True)
def _set_leaves(tree: np.ndarray, offsets: np.ndarray, leaves: np.ndarray, values: np.ndarray) -> None:
    depth = offsets.shape[0] - 1
    for k in range(leaves.shape[0]):
        node = leaves[k]
        tree[offsets[depth] + node] = values[k]
        for level in range(depth - 1, -1, -1):
            node //= BRANCHING
            first_child = offsets[level + 1] + BRANCHING * node
            total = 0.0
            for c in range(BRANCHING):
                total += tree[first_child + c]
            tree[offsets[level] + node] = total


@numba.njit(cache=True)
def _check_and_set(
    tree: np.ndarray,
    offsets: np.ndarray,
    n_valid: int,
    leaves: np.ndarray,
    priorities: np.ndarray,
    alpha: float,
    eps: float,
) -> int:
    """Set leaves to ``(priority + eps) ** alpha`` if every leaf is in [0, n_valid) and every priority
    is finite and >= 0; otherwise change nothing. Returns 0, or 1 (bad leaf) or 2 (bad priority)."""
    for k in range(leaves.shape[0]):
        if leaves[k] < 0 or leaves[k] >= n_valid:
            return 1
        if not (priorities[k] >= 0.0 and priorities[k] < np.inf):
            return 2
    _set_leaves(tree, offsets, leaves, (priorities + eps) ** alpha)
    return 0


@numba.njit(cache=True, inline="always")
def _descend(tree: np.ndarray, offsets: np.ndarray, mass: float) -> int:
    node = 0
    for level in range(1, offsets.shape[0]):
        first_child = offsets[level] + BRANCHING * node
        chosen = -1
        for c in range(BRANCHING):
            value = tree[first_child + c]
            # Only children with mass can be chosen: if float error leaves ``mass`` at or past the
            # children's sum, the last non-empty child is taken, never an empty slot past the filled part.
            if value > 0.0:
                chosen = c
                if mass < value:
                    break
                mass -= value
        node = BRANCHING * node + chosen
    return node


@numba.njit(cache=True)
def _find_leaves(tree: np.ndarray, offsets: np.ndarray, targets: np.ndarray) -> np.ndarray:
    leaves = np.empty(targets.shape[0], dtype=np.int64)
    for k in range(targets.shape[0]):
        leaves[k] = _descend(tree, offsets, targets[k])
    return leaves


@numba.njit(cache=True)
def _stratified_leaves(tree: np.ndarray, offsets: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = uniforms.shape[0]
    segment = tree[0] / n
    leaf_offset = offsets[offsets.shape[0] - 1]
    leaves = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    for k in range(n):
        leaves[k] = _descend(tree, offsets, (k + uniforms[k]) * segment)
        values[k] = tree[leaf_offset + leaves[k]]
    return leaves, values


class SumTree:
    """Leaf values ``v_i >= 0`` with O(log N) updates and draws of ``i`` with probability ``v_i / sum v``.

    :param size: number of leaves
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        # Level sizes from the leaves up, each padded to a multiple of K (the root level holds 1 node).
        sizes = [size]
        while sizes[-1] > 1:
            sizes.append(-(-sizes[-1] // BRANCHING))
        padded = [1] + [-(-n // BRANCHING) * BRANCHING for n in reversed(sizes[:-1])]
        self.offsets = np.concatenate([[0], np.cumsum(padded)[:-1]]).astype(np.int64)
        self.tree = np.zeros(int(sum(padded)), dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[0])

    def __getitem__(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[self.offsets[-1] + np.asarray(leaves)]

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set leaf values (the last one wins for repeated leaves). The caller checks the input."""
        _set_leaves(self.tree, self.offsets, np.asarray(leaves, dtype=np.int64), np.asarray(values, dtype=np.float64))

    def set_priorities(self, leaves: np.ndarray, priorities: np.ndarray, n_valid: int, alpha: float, eps: float) -> int:
        """Checked update of ``(priority + eps) ** alpha`` in one pass; 0 on success, else an error code
        (1: a leaf outside [0, n_valid), 2: a priority negative, NaN or infinite) and nothing changed."""
        return _check_and_set(self.tree, self.offsets, n_valid, leaves, priorities, alpha, eps)

    def sample_stratified(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One leaf from each of ``len(uniforms)`` equal segments of the total mass, at relative
        position ``uniforms[k]`` in [0, 1) within segment k; returns the leaves and their values."""
        return _stratified_leaves(self.tree, self.offsets, np.asarray(uniforms, dtype=np.float64))

    def find(self, targets: np.ndarray) -> np.ndarray:
        """Leaf whose prefix-sum interval ``[sum_{j<i} v_j, sum_{j<=i} v_j)`` holds each target mass."""
        return _find_leaves(self.tree, self.offsets, np.asarray(targets, dtype=np.float64))
