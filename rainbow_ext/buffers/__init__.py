"""Replay buffers: prioritized sampling (sum_tree), n-step accumulation (n_step), the buffer that
composes them with SB3's storage (prioritized), and frame-deduplicating storage (frame_storage)."""

from rainbow_ext.buffers.frame_storage import FrameStackStorage, frame_stack_buffer
from rainbow_ext.buffers.prioritized import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from rainbow_ext.buffers.sum_tree import SumTree

__all__ = [
    "FrameStackStorage",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "SumTree",
    "frame_stack_buffer",
]
