"""Probe environments with known values (after Andy Jones, "Debugging RL, Without the Agonizing Pain").

Each isolates one part of the learner: value fitting, observation dependence, bootstrapping through
the discount, action dependence, and observation-action interaction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class _Probe(gym.Env):
    n_actions = 1

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_actions)
        self._obs = 0.0

    def _observation(self) -> np.ndarray:
        return np.array([self._obs], dtype=np.float32)


class ConstantReward(_Probe):
    """Probe 1: one action, constant observation, reward 1, one step. V = 1."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._observation(), {}

    def step(self, action: int):
        return self._observation(), 1.0, True, False, {}


class ObservedReward(_Probe):
    """Probe 2: observation +1 or -1 at random, reward equal to it, one step. V(o) = o."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs = float(self.np_random.choice([-1.0, 1.0]))
        return self._observation(), {}

    def step(self, action: int):
        return self._observation(), self._obs, True, False, {}


class TwoStep(_Probe):
    """Probe 3: observation 0 then 1, reward 1 only at the end of the second step.
    V(0) = gamma, V(1) = 1."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs = 0.0
        return self._observation(), {}

    def step(self, action: int):
        if self._obs == 0.0:
            self._obs = 1.0
            return self._observation(), 0.0, False, False, {}
        return self._observation(), 1.0, True, False, {}


class ActionReward(_Probe):
    """Probe 4: two actions, constant observation, reward -1 for action 0 and +1 for action 1.
    Q(., 0) = -1, Q(., 1) = 1."""

    n_actions = 2

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._observation(), {}

    def step(self, action: int):
        return self._observation(), 1.0 if action == 1 else -1.0, True, False, {}


class MatchObservation(_Probe):
    """Probe 5: observation 0 or 1 at random, two actions, reward +1 when the action equals the
    observation and -1 otherwise. Q(o, o) = 1, Q(o, 1 - o) = -1."""

    n_actions = 2

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs = float(self.np_random.integers(2))
        return self._observation(), {}

    def step(self, action: int):
        return self._observation(), 1.0 if action == int(self._obs) else -1.0, True, False, {}


class Chain(_Probe):
    """Probe 6: four steps with observations 0, 1/3, 2/3, 1 and reward 1 only at the end.
    V(k / 3) = gamma^(3 - k): with n = 3 the first state bootstraps from the last after gamma^3."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._step = 0
        return self._chain_observation(), {}

    def _chain_observation(self) -> np.ndarray:
        return np.array([self._step / 3], dtype=np.float32)

    def step(self, action: int):
        self._step += 1
        if self._step == 4:
            return self._chain_observation(), 1.0, True, False, {}
        return self._chain_observation(), 0.0, False, False, {}


def expected_q(probe: type[_Probe], gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Observations to query, ``[k, 1]``, and their true Q-values, ``[k, n_actions]``."""
    if probe is ConstantReward:
        return np.array([[0.0]]), np.array([[1.0]])
    if probe is ObservedReward:
        return np.array([[-1.0], [1.0]]), np.array([[-1.0], [1.0]])
    if probe is TwoStep:
        return np.array([[0.0], [1.0]]), np.array([[gamma], [1.0]])
    if probe is ActionReward:
        return np.array([[0.0]]), np.array([[-1.0, 1.0]])
    if probe is MatchObservation:
        return np.array([[0.0], [1.0]]), np.array([[1.0, -1.0], [-1.0, 1.0]])
    if probe is Chain:
        return np.array([[0.0], [1 / 3], [2 / 3], [1.0]]), np.array([[gamma**3], [gamma**2], [gamma], [1.0]])
    raise KeyError(probe)


PROBES = [ConstantReward, ObservedReward, TwoStep, ActionReward, MatchObservation, Chain]


# The pixel probe (tests/test_pixel_probe.py, tests/test_data_efficient.py)
GAMMA = 0.8  # values 0.51, 0.64, 0.8, 1: a network blind to the frames is off by 0.2 or more
SIZE = 36  # the Nature convolutions' smallest input


class PixelChain(gym.Env):
    """Four steps with reward 1 at the end; step k shows a bright 12x12 block in the k-th quarter of
    the frame (column 9k), on a dark frame. The agent's two actions change nothing."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, shape=(SIZE, SIZE, 1), dtype=np.uint8)
        self.action_space = spaces.Discrete(2)
        self._step = 0

    def _frame(self) -> np.ndarray:
        frame = np.full((SIZE, SIZE, 1), 20, dtype=np.uint8)
        frame[12:24, 9 * self._step : 9 * self._step + 9] = 230
        return frame

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._step = 0
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._step += 1
        done = self._step == 4
        return self._frame(), float(done), done, False, {}


def munchausen_q(q_star: np.ndarray, tau: float, alpha: float, l0: float) -> np.ndarray:
    """The fixed point of Munchausen's operator (Vieillard et al. 2020) on a one-step probe whose rows of true
    values ``q_star`` are its rewards: ``q(a) = r(a) + alpha * clip(tau log pi(a), l0, 0)`` with ``pi =
    softmax(q / tau)``, by iteration (a contraction: the bonus changes by at most alpha times the change
    of q). With one action, ``log pi = 0`` and the soft value is the value: Q* is the fixed point of any
    probe, one step or more."""
    q = q_star.astype(np.float64).copy()
    if q.shape[1] == 1:
        return q
    for _ in range(500):
        advantage = q - q.max(axis=1, keepdims=True)
        log_pi = advantage - tau * np.log(np.exp(advantage / tau).sum(axis=1, keepdims=True))
        q = q_star + alpha * np.clip(log_pi, l0, 0.0)
    return q
