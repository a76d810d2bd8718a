"""Replay buffers, composed from three separate parts: prioritized sampling (``prioritized``, its sum
tree in ``sum_tree``), n-step transitions (``n_step``) and storage (SB3's arrays or dicts of arrays,
or ``frame_storage``'s deduplicated frames)."""

from rainbow_ext.buffers.frame_storage import FrameStackStorage, frame_stack_buffer
from rainbow_ext.buffers.n_step import DictNStepReplayBuffer, NStepSampling
from rainbow_ext.buffers.prioritized import (
    PrioritizedDictReplayBuffer,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferSamples,
    PrioritizedSampling,
)
from rainbow_ext.buffers.sum_tree import SumTree

__all__ = [
    "DictNStepReplayBuffer",
    "FrameStackStorage",
    "NStepSampling",
    "PrioritizedDictReplayBuffer",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "PrioritizedSampling",
    "SumTree",
    "frame_stack_buffer",
]
