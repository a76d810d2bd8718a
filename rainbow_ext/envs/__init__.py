"""Environments: Atari through SB3's wrappers or ale-py's C++ vector env, and MinAtar."""

from rainbow_ext.envs.ale_vec_env import AleVecEnv
from rainbow_ext.envs.atari import atari_ids_by_game, atari_rom, is_atari_id, make_atari_vec_env, stack_frames
from rainbow_ext.envs.minatar import MinAtarObservation, make_minatar_env, minatar_ids, register_minatar
from rainbow_ext.envs.resolve import EnvResolution, resolve_env_id

__all__ = [
    "AleVecEnv",
    "EnvResolution",
    "MinAtarObservation",
    "atari_ids_by_game",
    "atari_rom",
    "is_atari_id",
    "make_atari_vec_env",
    "make_minatar_env",
    "minatar_ids",
    "register_minatar",
    "resolve_env_id",
    "stack_frames",
]
