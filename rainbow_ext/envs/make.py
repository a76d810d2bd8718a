"""One entry point from an env id and a config entry to a VecEnv, for train, enjoy, ablate and tune."""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from rainbow_ext.classes import import_object
from rainbow_ext.envs.atari import check_vec_env, make_atari_vec_env, record_video, stack_frames
from rainbow_ext.envs.minatar import make_minatar_env
from rainbow_ext.envs.resolve import EnvFamily, resolve_env_id


def env_family(env_id: str) -> EnvFamily | None:
    """``"atari"`` for ALE ids and ROM names, ``"minatar"`` for ``MinAtar/...``, else None."""
    return resolve_env_id(env_id).family


def check_env_id(env_id: str) -> None:
    """A ValueError for an env id that does not exist, naming the closest ones."""
    resolve_env_id(env_id).check()


def _wrapper_class(env_wrapper: Any) -> Any:
    """rl-zoo3's ``env_wrapper``: an import path, a list of them, or ``{path: kwargs}`` mappings."""

    items = env_wrapper if isinstance(env_wrapper, list) else [env_wrapper]
    wrappers = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            ((path, kwargs),) = item.items()
        elif isinstance(item, str):
            path, kwargs = item, {}
        else:
            raise ValueError(f"env_wrapper entries must be import paths or {{path: kwargs}}, got {item!r}")
        wrappers.append((import_object(path, "env_wrapper", "gymnasium.Wrapper"), kwargs or {}))

    def wrap(env: gym.Env) -> gym.Env:
        for cls, kwargs in wrappers:
            env = cls(env, **kwargs)
        return env

    return wrap


def make_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env: str = "dummy",
    frame_stack: int | None = None,
    env_wrapper: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    video_folder: str | None = None,
    max_episode_steps: int | None = None,
) -> VecEnv:
    """The VecEnv for ``env_id``: Atari through :func:`make_atari_vec_env` (``env_kwargs`` are its
    options, ``frame_stack`` its ``n_stack``), MinAtar channel-first, any other gymnasium id through
    SB3's ``make_vec_env`` (with ``env_wrapper`` and, for images, ``frame_stack``). Episodes are
    recorded by SB3's ``Monitor``; with ``video_folder`` every episode is filmed (around the base env,
    so a video is a whole game). ``max_episode_steps`` cuts episodes (Atari: whole games) after that
    many agent steps, as a truncation, below any limit of their own. Errors are ValueErrors that name
    the problem."""
    check_vec_env(vec_env, n_envs)
    resolved = resolve_env_id(env_id)
    resolved.check()
    family = resolved.family
    env_kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
        raise ValueError(f"max_episode_steps must be an integer >= 1, got {max_episode_steps!r}")
    if family != "atari" and vec_env == "ale":
        raise ValueError(f"vec_env 'ale' runs Atari games only, not {env_id!r}; use 'dummy' or 'subproc'")
    if family == "atari":
        if env_wrapper is not None:
            raise ValueError("Atari envs get AtariWrapper (or ale-py's equivalent) already: drop env_wrapper")
        n_stack = 4 if frame_stack is None else frame_stack
        if max_episode_steps is not None:  # ALE counts emulator frames
            frames = max_episode_steps * int(env_kwargs.get("frame_skip", 4))
            env_kwargs["max_episode_frames"] = min(frames, int(env_kwargs.get("max_episode_frames", frames)))
        try:
            venv = make_atari_vec_env(
                env_id, n_envs, seed, vec_env, n_stack, render_mode=render_mode, video_folder=video_folder, **env_kwargs
            )
        except TypeError as error:  # an unknown option in env_kwargs
            raise ValueError(f"env_kwargs for Atari: {error}") from error
    else:
        make_one = make_minatar_env if family == "minatar" else gym.make
        kwargs = {**env_kwargs, **({"render_mode": render_mode} if render_mode else {})}
        if max_episode_steps is not None:
            limit = gym.spec(env_id).max_episode_steps
            kwargs["max_episode_steps"] = max_episode_steps if limit is None else min(limit, max_episode_steps)
        wrap = _wrapper_class(env_wrapper) if env_wrapper is not None else None
        if video_folder is not None:
            base = partial(make_one, env_id)
            make = record_video(base, video_folder, {**kwargs, "render_mode": "rgb_array"})
        else:
            make = partial(make_one, env_id, **kwargs)
        venv = make_vec_env(
            make,
            n_envs=n_envs,
            seed=seed,
            wrapper_class=wrap,
            vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv,
        )
        if frame_stack:
            venv = stack_frames(venv, frame_stack)
    if not isinstance(venv.action_space, spaces.Discrete):
        space = venv.action_space
        venv.close()
        raise ValueError(f"{env_id} has a {type(space).__name__} action space ({space}); this needs Discrete actions")
    return venv
