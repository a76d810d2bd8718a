"""n-step returns over windows of stored transitions (Sutton 1988; Hessel et al. 2018 use n = 3).

Kept apart from storage and sampling so they compose: :class:`NStepSampling` reads the windows from any
SB3 replay storage (arrays, dicts of arrays for Dict observations, frame storage) at the (time, env)
slots a sampler picked, and :func:`n_step_returns` does the arithmetic, SB3's ``NStepReplayBuffer``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


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


class NStepSampling:
    """Transitions ``(s_t, a_t, R, gamma^m, s_{t+m}, done)`` at given (time, env) slots, for a replay
    storage class that it is mixed in before and that sets ``n_steps`` and ``gamma``: SB3's
    ``NStepReplayBuffer`` (arrays) or :class:`DictNStepReplayBuffer` (dicts of arrays).

    With ``n_steps=1`` they are SB3's one-step transitions (``discounts`` is None: the learner applies
    gamma). With ``n_steps > 1``, ``R`` sums the rewards up to the window's first episode end
    (termination or truncation), and the newest time step ends every window that reaches it, as in
    SB3's ``NStepReplayBuffer``: its successor is not stored yet.
    """

    n_steps: int
    gamma: float
    buffer_size: int
    n_envs: int
    pos: int
    observations: Any
    next_observations: Any
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray

    def _get_samples(
        self, batch_inds: np.ndarray, env: VecNormalize | None = None, env_indices: np.ndarray | None = None
    ) -> ReplayBufferSamples | DictReplayBufferSamples:
        """``env_indices`` is drawn uniformly when omitted (SB3's behaviour, which draws it here)."""
        storage: Any = self  # the ReplayBuffer this is mixed into
        if env_indices is None:
            env_indices = np.random.randint(0, self.n_envs, size=batch_inds.shape)
        discounts = None
        if self.n_steps == 1:
            last = batch_inds
            returns = storage._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
        else:
            window = (batch_inds[:, None] + np.arange(self.n_steps)) % self.buffer_size
            env_column = env_indices[:, None]
            dones = self.dones[window, env_column]
            newest = window == (self.pos - 1) % self.buffer_size
            truncated = np.logical_or(self.timeouts[window, env_column], newest & np.logical_not(dones))
            returns, discounts, last_offsets = n_step_returns(
                storage._normalize_reward(self.rewards[window, env_column], env), dones, truncated, self.gamma
            )
            last = (batch_inds + last_offsets) % self.buffer_size
        final_dones = self.dones[last, env_indices] * (1.0 - self.timeouts[last, env_indices])
        observations = self._observations(self.observations, batch_inds, env_indices, env)
        next_observations = self._observations(self.next_observations, last, env_indices, env)
        samples = DictReplayBufferSamples if isinstance(observations, dict) else ReplayBufferSamples
        # Every array here is new (fancy indexing or arithmetic), so the tensors may share its memory:
        # SB3's ``to_torch`` would copy each one again (two stacks of frames per sample on Atari).
        return samples(
            observations=observations,  # type: ignore[arg-type]
            actions=storage.to_torch(self.actions[batch_inds, env_indices], copy=False),
            next_observations=next_observations,  # type: ignore[arg-type]
            dones=storage.to_torch(final_dones.reshape(-1, 1), copy=False),
            rewards=storage.to_torch(returns, copy=False),
            discounts=None if discounts is None else storage.to_torch(discounts, copy=False),
        )

    def _observations(
        self, stored: Any, rows: np.ndarray, envs: np.ndarray, env: VecNormalize | None
    ) -> th.Tensor | dict[str, th.Tensor]:
        """Observations at (rows, envs), normalized as the env does: an array, or a dict of them."""
        storage: Any = self
        if isinstance(stored, dict):
            gathered = storage._normalize_obs({key: value[rows, envs] for key, value in stored.items()}, env)
            return {key: storage.to_torch(value, copy=False) for key, value in gathered.items()}
        return storage.to_torch(storage._normalize_obs(stored[rows, envs], env), copy=False)


class DictNStepReplayBuffer(NStepSampling, DictReplayBuffer):  # type: ignore[misc]
    """SB3's ``DictReplayBuffer`` (Dict observations) with n-step returns, as ``NStepReplayBuffer``
    gives them for arrays: the n-step transitions of :class:`NStepSampling` over SB3's dict storage.

    :param n_steps: transitions summed into each return (3, SB3's ``NStepReplayBuffer`` default)
    :param gamma: discount of the return
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: Any,
        action_space: Any,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 3,
        gamma: float = 0.99,
    ) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 1:
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.n_steps = int(n_steps)
        self.gamma = gamma
