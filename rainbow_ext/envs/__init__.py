"""Environments: Atari through SB3's wrappers or ale-py's C++ vector env, and MinAtar."""

from rainbow_ext.envs.ale_vec_env import AleVecEnv
from rainbow_ext.envs.atari import atari_ids_by_game, atari_rom, is_atari_id, make_atari_vec_env, stack_frames
from rainbow_ext.envs.minatar import MinAtarObservation, make_minatar_env, minatar_ids, register_minatar

__all__ = [
    "AleVecEnv",
    "MinAtarObservation",
    "atari_ids_by_game",
    "atari_rom",
    "is_atari_id",
    "make_atari_vec_env",
    "make_minatar_env",
    "minatar_ids",
    "register_minatar",
    "stack_frames",
]
