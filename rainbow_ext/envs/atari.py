"""Atari through SB3's standard path: gymnasium ALE ids, ``AtariWrapper``, ``VecFrameStack``.

:func:`make_atari_vec_env` builds either path, this one or ale-py's C++ vector env
(:class:`~rainbow_ext.envs.ale_vec_env.AleVecEnv`), with one set of options and one observation
layout: ``(n_envs, n_stack, 84, 84)`` uint8, channel-first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack, VecTransposeImage

from rainbow_ext.envs.ale_vec_env import AleVecEnv
from rainbow_ext.envs.resolve import atari_rom, register_ale, registry_index, resolve_env_id

VecEnvKind = Literal["dummy", "subproc", "ale"]
VEC_ENV_KINDS = ("dummy", "subproc", "ale")


def check_vec_env(vec_env: str, n_envs: int) -> None:
    """ValueErrors for a vec_env that is none of :data:`VEC_ENV_KINDS` and for fewer than one env."""
    if vec_env not in VEC_ENV_KINDS:
        raise ValueError(f"vec_env must be one of {VEC_ENV_KINDS}, got {vec_env!r}")
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")


def atari_ids_by_game() -> dict[str, list[str]]:
    """Every registered ALE gymnasium id, grouped by ROM name (``"breakout"``)."""
    register_ale()
    return {rom: list(ids) for rom, ids in registry_index().atari_games.items()}


def is_atari_id(env_id: str) -> bool:
    """True for ids that name an ALE game (registered or not, e.g. a misspelt version)."""
    return resolve_env_id(env_id).family == "atari"


def make_atari_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env: VecEnvKind = "dummy",
    n_stack: int = 4,
    *,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    terminal_on_life_loss: bool = True,
    clip_reward: bool = True,
    repeat_action_probability: float = 0.0,
    full_action_space: bool = False,
    max_episode_frames: int = 108_000,
    fire_on_life_loss: bool = True,
    monitor_dir: str | None = None,
    render_mode: str | None = None,
    video_folder: str | None = None,
) -> VecEnv:
    """Atari with frame stacking, observations ``(n_envs, n_stack, screen_size, screen_size)`` uint8.

    ``vec_env="dummy"`` or ``"subproc"``: SB3's path, gymnasium's ALE env (with ``frameskip=1``:
    skipping is AtariWrapper's) in ``Monitor``, ``AtariWrapper``, then ``VecFrameStack`` and
    ``VecTransposeImage``. ``vec_env="ale"``: ale-py's C++ vector env through
    :class:`~rainbow_ext.envs.AleVecEnv`. The options mean the same on both paths and default to
    SB3's ``AtariWrapper``'s; the Machado et al. (2018) protocol is ``repeat_action_probability=0.25,
    terminal_on_life_loss=False``.

    :param env_id: any ALE gymnasium id (``"ALE/Breakout-v5"``, ``"BreakoutNoFrameskip-v4"``) or ROM name
    :param repeat_action_probability: sticky actions, per emulator frame (ALE's own)
    :param max_episode_frames: episodes are truncated after this many emulator frames (30 minutes)
    :param fire_on_life_loss: press FIRE after a life loss in games whose action set has FIRE, so a
        greedy policy cannot stall a game that waits for it (Breakout). SB3's path does it in the reset
        that follows a life loss when ``terminal_on_life_loss`` (``FireResetEnv``), and otherwise
        through :class:`FireOnLifeLoss`; the ale path plays the first action after a life loss as FIRE.
        Off for the Machado et al. (2018) protocol (with ``terminal_on_life_loss=False``).
    :param render_mode: gymnasium's render mode (SB3's path only; ale-py's vector env does not render)
    :param video_folder: record every episode of the first env there (gymnasium's RecordVideo around
        the game itself, so a video shows a whole game); SB3's path only
    """
    check_vec_env(vec_env, n_envs)
    rom = atari_rom(env_id)
    if max_episode_frames < 1:
        raise ValueError(f"max_episode_frames must be >= 1, got {max_episode_frames}")
    if vec_env == "ale":
        if render_mode is not None or video_folder is not None:
            raise ValueError("ale-py's vector env does not render; use vec_env='dummy' to record videos")
        venv: VecEnv = AleVecEnv(
            rom,
            n_envs,
            n_stack=n_stack,
            noop_max=noop_max,
            frame_skip=frame_skip,
            screen_size=screen_size,
            episodic_life=terminal_on_life_loss,
            clip_reward=clip_reward,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            max_episode_frames=max_episode_frames,
            fire_on_life_loss=fire_on_life_loss,
        )
        venv.seed(seed)
        return venv

    if terminal_on_life_loss and not fire_on_life_loss:
        raise ValueError(
            "on SB3's path, AtariWrapper presses FIRE after every life loss when terminal_on_life_loss=True "
            "(FireResetEnv); for fire_on_life_loss=False use vec_env='ale' or terminal_on_life_loss=False"
        )
    gym_id = env_id if env_id in gym.registry else atari_ids_by_game()[rom][0]
    env_kwargs: dict[str, Any] = dict(
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=full_action_space,
        max_num_frames_per_episode=max_episode_frames,
        render_mode=render_mode,
    )
    wrapper_kwargs = dict(
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        terminal_on_life_loss=terminal_on_life_loss,
        clip_reward=clip_reward,
    )
    if video_folder is not None:
        env_kwargs["render_mode"] = "rgb_array"
    fire_wrapper = fire_on_life_loss and not terminal_on_life_loss

    def wrap(env: gym.Env, **kwargs: Any) -> gym.Env:
        env = AtariWrapper(env, **kwargs)
        return FireOnLifeLoss(env) if fire_wrapper and "FIRE" in env.unwrapped.get_action_meanings() else env

    venv = make_vec_env(
        record_video(gym_id, video_folder, env_kwargs) if video_folder is not None else gym_id,
        n_envs=n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        wrapper_class=wrap,
        wrapper_kwargs=wrapper_kwargs,
        env_kwargs=None if video_folder is not None else env_kwargs,
        vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv,
    )
    return stack_frames(venv, n_stack)


class FireOnLifeLoss(gym.Wrapper):
    """Plays the first action after a life loss as FIRE (games such as Breakout wait for it to serve).

    For SB3's path when a life loss is not an episode end; with ``terminal_on_life_loss`` SB3's
    ``FireResetEnv`` presses FIRE in the reset that follows it instead. The ale path's rule."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.fire = env.unwrapped.get_action_meanings().index("FIRE")  # type: ignore[attr-defined]
        self.lives = 0
        self.fire_next = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        self.fire_next = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self.fire if self.fire_next else action)
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        self.fire_next = lives < self.lives and not (terminated or truncated)
        self.lives = lives
        return obs, reward, terminated, truncated, info


def record_video(
    env_id: str | Callable[..., gym.Env], video_folder: str, env_kwargs: dict[str, Any]
) -> Callable[[], gym.Env]:
    """An env factory that records every episode to ``video_folder`` (gymnasium's RecordVideo, MP4)."""

    def make() -> gym.Env:
        env = gym.make(env_id, **env_kwargs) if isinstance(env_id, str) else env_id(**env_kwargs)
        return gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda _: True, disable_logger=True)

    return make


def stack_frames(venv: VecEnv, n_stack: int) -> VecEnv:
    """SB3's ``VecFrameStack`` over image observations, channel-first: ``(n_stack * C, H, W)``.
    Observations that are not images are refused (stacking them is no frame stack)."""
    space = venv.observation_space
    if not (isinstance(space, spaces.Box) and is_image_space(space, check_channels=True)):
        raise ValueError(
            f"frame stacking needs image observations (uint8, height x width x channels), got {space}; "
            "drop frame_stack for this env"
        )
    if not isinstance(n_stack, int) or n_stack < 1:
        raise ValueError(f"frame_stack must be an integer >= 1, got {n_stack!r}")
    channels_first = is_image_space_channels_first(space)
    stacked = VecFrameStack(venv, n_stack, channels_order="first" if channels_first else "last")
    return stacked if channels_first else VecTransposeImage(stacked)
