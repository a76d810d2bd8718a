"""The checks of Rainbow's arguments that involve more than one value (each value's own domain is in
:mod:`rainbow_ext.domains`), each raising a ValueError that names the arguments, their values and what
would work, before anything is built."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.her import HerReplayBuffer

from rainbow_ext.buffers.prioritized import PrioritizedSampling
from rainbow_ext.head_options import OPTION_NAMES


def check_cuda_graphs(cuda_graphs: bool | None, device: th.device) -> None:
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, got device={device}")


def check_memory_option(n_steps: int, optimize_memory_usage: bool) -> None:
    if optimize_memory_usage and n_steps > 1:
        raise ValueError("optimize_memory_usage=True needs n_steps=1: SB3's NStepReplayBuffer does not support it")


def check_munchausen(munchausen: bool, head_kind: str) -> None:
    """Munchausen applies to expected values and the quantile heads, not to C51."""
    if munchausen and head_kind == "c51":
        raise ValueError(
            "munchausen=True does not apply to the C51 head (distributional=True or 'c51'): Munchausen's target "
            "subtracts tau log pi(a'|s') from each next value and adds a bonus to the reward, which moves the "
            "target distribution off C51's fixed support, and the method defines no projection for it; use "
            "distributional=False, 'qr' or 'iqn'"
        )


def check_prioritized(prioritized: bool, replay_buffer_class: type | None) -> None:
    if prioritized and replay_buffer_class is not None and not issubclass(replay_buffer_class, PrioritizedSampling):
        if issubclass(replay_buffer_class, HerReplayBuffer):
            raise ValueError(
                "prioritized=True does not combine with HerReplayBuffer (hindsight relabelling samples its own "
                "transitions, without priorities): pass prioritized=False and n_steps=1"
            )
        raise ValueError(
            "prioritized=True needs a prioritized buffer (PrioritizedReplayBuffer, PrioritizedDictReplayBuffer), "
            f"got replay_buffer_class={replay_buffer_class.__name__}; or pass prioritized=False"
        )


def not_n_step_message(replay_buffer_class: type, n_steps: int) -> str:
    if issubclass(replay_buffer_class, HerReplayBuffer):
        return f"n_steps={n_steps} does not combine with HerReplayBuffer (it relabels one-step transitions): n_steps=1"
    return (
        f"n_steps={n_steps} needs an n-step replay buffer (NStepReplayBuffer, DictNStepReplayBuffer or a prioritized "
        f"one), got replay_buffer_class={replay_buffer_class.__name__}, which would ignore it; pass n_steps=1 "
        "(a model saved that way trained one-step returns: Rainbow.load(path, n_steps=1) loads it)"
    )


def check_storage_kind(replay_buffer_class: type | None, is_dict: bool, optimize_memory_usage: bool) -> None:
    """Dict observations need dict storage and array observations array storage; SB3 would fail deep
    inside the buffer (or assert) otherwise."""
    if replay_buffer_class is None:
        return
    if is_dict and not issubclass(replay_buffer_class, DictReplayBuffer):
        raise ValueError(
            f"Dict observations need a Dict replay buffer, got replay_buffer_class={replay_buffer_class.__name__}; "
            "use DictNStepReplayBuffer, PrioritizedDictReplayBuffer or SB3's DictReplayBuffer (or leave it unset)"
        )
    if not is_dict and issubclass(replay_buffer_class, DictReplayBuffer):
        raise ValueError(
            f"replay_buffer_class={replay_buffer_class.__name__} stores Dict observations, and these are not; "
            "use NStepReplayBuffer, PrioritizedReplayBuffer or SB3's ReplayBuffer (or leave it unset)"
        )
    if is_dict and optimize_memory_usage:
        raise ValueError("optimize_memory_usage=True is not available with Dict observations (SB3's Dict buffers)")


def merge_head_options(policy_kwargs: dict[str, Any] | None, head_options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(policy_kwargs or {})
    if "share_features_extractor" in merged:
        raise ValueError(
            "policy_kwargs['share_features_extractor'] does not apply to DQN policies (SB3's DQNPolicy does not take "
            "it either): it is an actor-critic option, and the online and target networks each need their own extractor"
        )
    for key in OPTION_NAMES:
        if key in merged and merged[key] != head_options[key]:
            raise ValueError(
                f"policy_kwargs[{key!r}]={merged[key]!r} conflicts with {key}={head_options[key]!r}; "
                f"pass {key} as a Rainbow argument only"
            )
    merged.update(head_options)
    return merged


def check_replay_buffer_kwargs(replay_buffer_kwargs: dict[str, Any] | None, n_steps: int, gamma: float) -> None:
    for key, value in (("n_steps", n_steps), ("gamma", gamma)):
        if replay_buffer_kwargs and key in replay_buffer_kwargs and replay_buffer_kwargs[key] != value:
            raise ValueError(
                f"replay_buffer_kwargs[{key!r}]={replay_buffer_kwargs[key]!r} conflicts with {key}={value!r}; "
                f"pass {key} as a Rainbow argument only"
            )
