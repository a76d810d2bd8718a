"""Transition streams for replay-storage tests: what SB3's OffPolicyAlgorithm would add to a buffer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

Transition = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]


class FlickerEnv(gym.Env):
    """Random (size, size, channels) uint8 frames; episodes terminate with probability 0.1 per step
    (and are truncated by the TimeLimit that :func:`frame_stack_vec_env` adds)."""

    action_space = spaces.Discrete(3)

    def __init__(self, channels: int = 1, size: int = 6) -> None:
        self.observation_space = spaces.Box(0, 255, shape=(size, size, channels), dtype=np.uint8)

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(1, 256, size=self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._frame(), float(action), bool(self.np_random.random() < 0.1), False, {}


def frame_stack_vec_env(
    n_envs: int, n_stack: int = 4, max_steps: int = 12, seed: int = 0, channels: int = 1
) -> VecTransposeImage:
    """SB3's own frame stacking: DummyVecEnv -> VecFrameStack -> VecTransposeImage, observations
    (n_stack * channels, size, size), with size 6 (16 for RGB, which SB3 would take for channel-first)."""
    size = 6 if channels == 1 else 16
    venv = DummyVecEnv([lambda: gym.wrappers.TimeLimit(FlickerEnv(channels, size), max_steps) for _ in range(n_envs)])
    venv.seed(seed)
    return VecTransposeImage(VecFrameStack(venv, n_stack))


def vec_env_stream(venv: Any, steps: int, seed: int = 0) -> Iterator[Transition]:
    """Random actions through ``venv``, added as OffPolicyAlgorithm._store_transition adds them
    (the next observation of an ended episode is its ``terminal_observation``)."""
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    for _ in range(steps):
        actions = rng.integers(0, venv.action_space.n, size=venv.num_envs)
        new_obs, rewards, dones, infos = venv.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done and infos[i].get("terminal_observation") is not None:
                next_obs[i] = infos[i]["terminal_observation"]
        yield obs, next_obs, actions.reshape(-1, 1), rewards, dones, infos
        obs = new_obs


def irregular_stream(n_envs: int, n_stack: int, steps: int, seed: int = 0) -> Iterator[Transition]:
    """Stacked streams with every irregularity storage must survive: first observations whose older
    frames are not zero, streams that go on after an episode end (life loss), next observations that
    are not the observation shifted by one frame, and truncations."""
    rng = np.random.default_rng(seed)
    shape = (n_stack, 3, 3)

    def fresh() -> np.ndarray:
        stack = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if rng.random() < 0.5:
            stack[:-1] = 0  # zero-padded, as after VecFrameStack's reset
        return stack

    obs = np.stack([fresh() for _ in range(n_envs)])
    for _ in range(steps):
        next_obs = np.concatenate([obs[:, 1:], rng.integers(0, 256, size=(n_envs, 1, 3, 3), dtype=np.uint8)], axis=1)
        irregular = rng.random(n_envs) < 0.05
        next_obs[irregular] = rng.integers(0, 256, size=(int(irregular.sum()), *shape), dtype=np.uint8)
        dones = rng.random(n_envs) < 0.15
        truncated = dones & (rng.random(n_envs) < 0.4)
        infos = [{"TimeLimit.truncated": bool(t)} for t in truncated]
        actions, rewards = rng.integers(0, 3, size=(n_envs, 1)), rng.normal(size=n_envs).astype(np.float32)
        yield obs, next_obs, actions, rewards, dones, infos
        new_obs = next_obs.copy()
        for i in np.flatnonzero(dones):
            if rng.random() < 0.7:  # a reset; otherwise the stream goes on (life loss)
                new_obs[i] = fresh()
        obs = new_obs
