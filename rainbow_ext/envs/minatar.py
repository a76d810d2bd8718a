"""MinAtar (Young & Tian 2019): 10x10 miniatures of five Atari games, learnable on a CPU.

``minatar.gym.register_envs()`` registers ``MinAtar/<Game>-v0`` (all 6 actions) and ``-v1`` (the
game's minimal action set); observations are boolean ``(10, 10, channels)``, which SB3's policies do
not take as images. :class:`MinAtarObservation` makes them ``(channels, 10, 10)`` uint8 in {0, 1},
the input of the MinAtar network (:class:`~rainbow_ext.layers.MinAtarTrunk`, chosen by ``CnnPolicy``
for images this small).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rainbow_ext.envs.resolve import (
    MINATAR_PREFIX,
    register_minatar,
    registry_index,
    resolve_env_id,
    unknown_minatar_message,
)


def minatar_ids() -> list[str]:
    register_minatar()
    return list(registry_index().minatar_ids)


class MinAtarObservation(gym.ObservationWrapper):
    """Boolean ``(10, 10, C)`` observations -> channel-first uint8 ``(C, 10, 10)`` in {0, 1}."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and len(space.shape) == 3):
            raise ValueError(f"MinAtarObservation needs (height, width, channels) observations, got {space}")
        height, width, channels = space.shape
        self.observation_space = spaces.Box(0, 1, shape=(channels, height, width), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0), dtype=np.uint8)


def make_minatar_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id)`` for a MinAtar id, channel-first. An unknown id names the valid ones."""
    if not env_id.startswith(MINATAR_PREFIX):
        register_minatar()
        raise ValueError(unknown_minatar_message(env_id))
    resolve_env_id(env_id).check()
    return MinAtarObservation(gym.make(env_id, **kwargs))
