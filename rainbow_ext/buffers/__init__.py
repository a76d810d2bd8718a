"""Replay buffers: prioritized sampling (sum_tree), n-step accumulation (n_step), and the buffer
that composes them with SB3's storage (prioritized)."""

from rainbow_ext.buffers.prioritized import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from rainbow_ext.buffers.sum_tree import SumTree

__all__ = ["PrioritizedReplayBuffer", "PrioritizedReplayBufferSamples", "SumTree"]
