"""n-step returns over windows of stored transitions (Sutton 1988; Hessel et al. 2018 use n = 3).

Kept apart from storage and sampling so any buffer can use it: it takes the gathered windows and
returns what the TD target needs. The arithmetic is SB3's ``NStepReplayBuffer``'s.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer


def n_step_returns(
    rewards: np.ndarray, dones: np.ndarray, truncated: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For windows ``[batch, n]`` starting at the sampled transition, sum rewards up to and including
    the first episode end (termination or truncation), ``R = sum_k gamma^k r_k``.

    :return: returns ``[batch, 1]``, bootstrap discounts ``gamma^m`` for the m steps summed
        ``[batch, 1]``, and the offset of the window's last step ``[batch]``
    """
    n_steps = rewards.shape[1]
    ends = np.logical_or(dones, truncated)
    last = np.where(ends.any(axis=1), ends.argmax(axis=1), n_steps - 1)
    mask = np.arange(n_steps).reshape(1, -1) <= last[:, None]
    discounts = gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)
    returns = (rewards * gamma ** np.arange(n_steps, dtype=np.float32).reshape(1, -1) * mask).sum(axis=1, keepdims=True)
    return returns, discounts, last


def end_stored_episodes(buffer: ReplayBuffer) -> None:
    """End every env's newest stored step as a truncation (``done`` and ``timeout``, SB3's encoding),
    unless its episode already ended there; its target then bootstraps from its stored next observation.

    For an env reset with the buffer kept (SB3's ``learn`` resets it when ``reset_num_timesteps`` is
    true or after ``load``; a loaded buffer): the cut episode's last steps would otherwise read the new
    episode's first steps as their n-step continuation, since SB3's rule guards only ``pos - 1``.
    With ``optimize_memory_usage`` the next observation is the following row, which the new episode
    overwrites, so the step ends as terminal instead (SB3's own choice, its issue #46).
    """
    if buffer.pos == 0 and not buffer.full:
        return
    newest = (buffer.pos - 1) % buffer.buffer_size
    running = buffer.dones[newest] == 0
    if not buffer.optimize_memory_usage:
        buffer.timeouts[newest] = np.where(running, 1.0, buffer.timeouts[newest])
    buffer.dones[newest] = np.where(running, 1.0, buffer.dones[newest])
