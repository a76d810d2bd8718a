"""Which replay buffer Rainbow builds for its flags and observations: prioritized sampling (array or dict
storage), SB3's n-step buffer or the Dict one SB3 lacks, frame storage behind any of them; and the n-step
buffers given ``n_steps`` and ``gamma`` whoever chose them."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer

from rainbow_ext.arguments import check_storage_kind, not_n_step_message
from rainbow_ext.buffers.frame_storage import check_frame_stack, stacked_frames
from rainbow_ext.buffers.n_step import DictNStepReplayBuffer
from rainbow_ext.buffers.prioritized import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer

# Buffers that take n_steps and gamma and return n-step transitions (discounts with each sample).
N_STEP_BUFFERS = (NStepReplayBuffer, DictNStepReplayBuffer)


def replay_buffer_choice(
    buffer_class: type | None,
    buffer_kwargs: dict[str, Any],
    is_dict: bool,
    prioritized: bool,
    per_kwargs: dict[str, Any],
    n_steps: int,
    gamma: float,
    frame_storage: bool,
    optimize_memory_usage: bool,
) -> tuple[type | None, dict[str, Any]]:
    """The buffer class and its kwargs (None: SB3 chooses, as for its DQN). A class given that cannot
    serve (the wrong storage kind, or one that would ignore ``n_steps > 1``) is a ValueError."""
    if prioritized:
        buffer_class = buffer_class or (PrioritizedDictReplayBuffer if is_dict else PrioritizedReplayBuffer)
        buffer_kwargs = {**buffer_kwargs, **per_kwargs}
    elif is_dict and n_steps > 1 and buffer_class is None:
        buffer_class = DictNStepReplayBuffer  # SB3 has no n-step buffer for Dict observations
    check_storage_kind(buffer_class, is_dict, optimize_memory_usage)
    if frame_storage and buffer_class is None:
        # SB3's own choice, made here because frame storage is built around the class
        buffer_class = NStepReplayBuffer if n_steps > 1 else ReplayBuffer
    if buffer_class is not None and issubclass(buffer_class, N_STEP_BUFFERS):
        # SB3 forwards n_steps and gamma only when it picks the buffer class itself, and otherwise
        # warns "n_steps is ignored", even when reloading a model whose buffer class it chose.
        # Any n-step buffer gets them here, without the misleading warning.
        buffer_kwargs = {**buffer_kwargs, "n_steps": n_steps, "gamma": gamma}
    elif buffer_class is not None and n_steps > 1:
        raise ValueError(not_n_step_message(buffer_class, n_steps))
    return buffer_class, buffer_kwargs


def frames_to_store(
    frame_storage: bool | None, env: Any, observation_space: spaces.Space, optimize_memory_usage: bool
) -> int:
    """Frames per observation for frame storage, from ``frame_storage`` and the env (0: off)."""
    if frame_storage is False:
        return 0
    n_stack = stacked_frames(env) if env is not None else None
    if frame_storage is None:
        usable = n_stack is not None and n_stack > 1 and not optimize_memory_usage
        return n_stack if usable else 0  # type: ignore[return-value]
    if n_stack is None:
        raise ValueError(
            "frame_storage=True needs an env that stacks image frames (VecFrameStack, or AleVecEnv from "
            f"rainbow_ext.envs), got observations {observation_space}"
        )
    check_frame_stack(observation_space, n_stack)
    return n_stack


def total_memory() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def observation_bytes(space: spaces.Space) -> int:
    if isinstance(space, spaces.Dict):
        return sum(observation_bytes(sub) for sub in space.spaces.values())
    return int(np.prod(space.shape or (1,))) * np.dtype(space.dtype or np.float32).itemsize


def check_replay_fits(buffer_size: int, observation_space: spaces.Space, frame_stack: int) -> None:
    """A ValueError before any array is allocated when even the smallest layout of ``buffer_size``
    transitions (one copy of each observation; one frame of it with frame storage) exceeds the machine's
    memory: SB3 would otherwise allocate until it fails, or warn and swap."""
    memory = total_memory()
    if memory is None:
        return
    per_transition = observation_bytes(observation_space) // max(frame_stack, 1)
    needed = buffer_size * per_transition
    if needed > memory:
        raise ValueError(
            f"buffer_size={buffer_size} needs at least {needed / 2**30:.1f} GiB for its observations "
            f"({per_transition} bytes a transition), more than this machine's {memory / 2**30:.1f} GiB of memory"
        )
