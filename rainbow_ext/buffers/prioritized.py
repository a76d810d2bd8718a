"""Prioritized experience replay (Schaul et al. 2016, proportional variant): the sampling, mixed into
SB3's storage with n-step transitions, for arrays and for Dict observations."""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from rainbow_ext.buffers.n_step import DictNStepReplayBuffer, NStepSampling
from rainbow_ext.buffers.sum_tree import SumTree


@numba.njit(cache=True)
def _slots_and_weights(
    leaves: np.ndarray, values: np.ndarray, n_envs: int, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, env) of each flat slot, and importance weights normalised by the batch maximum:
    w_i = (N P(i))^-beta / max_j (N P(j))^-beta = (min_j v_j / v_i)^beta (N and the total cancel)."""
    n = leaves.shape[0]
    smallest = values.min()
    times = np.empty(n, dtype=np.int64)
    envs = np.empty(n, dtype=np.int64)
    weights = np.empty(n, dtype=np.float32)
    for k in range(n):
        times[k] = leaves[k] // n_envs
        envs[k] = leaves[k] % n_envs
        weights[k] = (smallest / values[k]) ** beta
    return times, envs, weights


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` fields (same names and order; observations are dicts of tensors for
    Dict observations) plus ``weights`` and ``indices``. (A NamedTuple cannot gain fields by subclassing,
    so the fields are repeated.)"""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    next_observations: th.Tensor | TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    #: importance-sampling weights ``(N P(i))^-beta / max_j (N P(j))^-beta`` over the batch, ``[batch]``
    weights: th.Tensor
    #: flat slot indices ``time * n_envs + env``, for :meth:`PrioritizedReplayBuffer.update_priorities`
    indices: np.ndarray


class PrioritizedSampling:
    """Proportional prioritized sampling over every (time, env) slot of the replay storage class that
    it is mixed in before, which gathers the transitions (:class:`~rainbow_ext.buffers.n_step.NStepSampling`).

    One sum tree holds a priority for each of the ``buffer_size`` slots (``buffer_size / n_envs``
    time steps of ``n_envs`` envs), so multi-env training samples across envs in proportion to
    priority. A batch of B is drawn stratified: one draw in each of B equal segments of the total
    priority mass. Stored values are ``(priority + eps) ** alpha`` (Schaul et al. 2016, eq. 1); new
    transitions enter at the largest priority seen so far.

    :param alpha: prioritization exponent in [0, 1] (0: uniform); Rainbow uses 0.5
    :param beta: importance-sampling exponent in [0, 1]; Rainbow anneals it from 0.4 to 1
    :param eps: added to every priority so that no slot has zero probability

    It passes ``n_steps`` and ``gamma`` on, so the storage below it is an n-step one (which gathers
    one-step transitions with ``n_steps=1``).
    """

    buffer_size: int
    n_envs: int
    pos: int

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        alpha: float = 0.5,
        beta: float = 0.4,
        eps: float = 1e-6,
    ) -> None:
        check_unit_interval("alpha", alpha)
        check_unit_interval("beta", beta)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        super().__init__(  # type: ignore[call-arg]
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
            n_steps=n_steps,
            gamma=gamma,
        )
        self.alpha = alpha
        self._beta = beta
        self.eps = eps
        self.max_priority = 1.0
        self.tree = SumTree(self.buffer_size * self.n_envs)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        check_unit_interval("beta", value)
        self._beta = value

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        storage: Any = self
        slot = self.pos
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[misc]
        # The slot's old priority (after wrap-around) is replaced: new transitions start at the max.
        leaves = slot * self.n_envs + np.arange(self.n_envs)
        self.tree.set_priorities(
            leaves, np.full(self.n_envs, self.max_priority), storage.size() * self.n_envs, self.alpha, self.eps
        )

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedReplayBufferSamples:
        storage: Any = self
        if storage.size() == 0:
            raise ValueError(f"cannot sample from an empty {type(self).__name__}")
        # Stratified: one draw in each of batch_size equal segments of the priority mass.
        leaves, values = self.tree.sample_stratified(np.random.random(batch_size))
        time_indices, env_indices, weights = _slots_and_weights(leaves, values, self.n_envs, self.beta)
        samples = storage._get_samples(time_indices, env=env, env_indices=env_indices)
        return PrioritizedReplayBufferSamples(*samples, weights=storage.to_torch(weights, copy=False), indices=leaves)

    def update_priorities(self, indices: np.ndarray | th.Tensor, priorities: np.ndarray | th.Tensor) -> None:
        """Set the priorities of sampled slots (``samples.indices``), typically |TD error| or the C51
        loss. Checked before anything changes: a ValueError leaves the buffer as it was."""
        storage: Any = self
        indices = _as_numpy(indices)
        priorities = _as_numpy(priorities).astype(np.float64, copy=False)
        if indices.ndim != 1 or priorities.shape != indices.shape:
            raise ValueError(
                f"indices and priorities must be 1-D of equal length, got shapes {indices.shape} and {priorities.shape}"
            )
        if not indices.size:
            return
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
        n_transitions = storage.size() * self.n_envs
        status = self.tree.set_priorities(
            indices.astype(np.int64, copy=False), priorities, n_transitions, self.alpha, self.eps
        )
        if status == 1:
            raise ValueError(
                f"indices out of range: must lie in [0, {n_transitions}) (the filled slots), "
                f"got min {indices.min()} and max {indices.max()}"
            )
        if status == 2:
            raise ValueError(
                f"priorities must be finite and >= 0, got NaN, infinite or negative values: {priorities[:8]}..."
            )
        self.max_priority = max(self.max_priority, float(priorities.max()))


class PrioritizedReplayBuffer(PrioritizedSampling, NStepSampling, NStepReplayBuffer):  # type: ignore[misc]
    """Prioritized replay (:class:`PrioritizedSampling`) of n-step transitions
    (:class:`~rainbow_ext.buffers.n_step.NStepSampling`) stored in SB3's ``NStepReplayBuffer`` arrays.

    With ``n_steps=1`` transitions are plain one-step transitions; with ``n_steps > 1`` they carry
    SB3's truncation-aware n-step returns and discounts.

    Used by SB3's plain ``DQN`` (``replay_buffer_class=PrioritizedReplayBuffer``), it samples by
    priority but DQN neither applies the weights nor updates priorities, so every slot keeps the
    initial priority and sampling stays uniform; ``Rainbow(prioritized=True)`` does both.
    """


class PrioritizedDictReplayBuffer(PrioritizedSampling, DictNStepReplayBuffer):  # type: ignore[misc]
    """:class:`PrioritizedReplayBuffer` for Dict observations: the same sampling and n-step
    transitions over SB3's ``DictReplayBuffer`` storage."""


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def _as_numpy(x: np.ndarray | th.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, th.Tensor) else np.asarray(x)
