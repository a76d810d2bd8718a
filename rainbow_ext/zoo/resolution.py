"""A run resolved from its config: :class:`RunConfig` (what a run needs besides its model) and
:func:`resolve_run`, a config entry checked and merged with a preset and overrides, as every command
resolves it; and the record of a run's configuration written to its folder."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext.classes import ConfigError
from rainbow_ext.domains import check_values
from rainbow_ext.envs.make import env_family, make_env
from rainbow_ext.presets import PRESETS, preset_flags
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.algorithms import algo_class, check_algo, default_config_file
from rainbow_ext.zoo.errors import UsageError


@dataclass
class RunConfig:
    """What a run needs besides the model: written to the run folder as config.yml."""

    algo: str
    env: str
    seed: int
    n_timesteps: int
    policy: str
    n_envs: int = 1
    vec_env: str = "dummy"
    frame_stack: int | None = None  # observations stacked by the env (rl-zoo3's key)
    env_wrapper: Any = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_max_steps: int | None = None  # evaluation episodes (Atari: games) end after this many agent steps
    hyperparams: dict[str, Any] = field(default_factory=dict)  # constructor arguments, as given
    source: str = ""

    def make_env(
        self, n_envs: int | None = None, seed: int | None = None, max_episode_steps: int | None = None
    ) -> VecEnv:
        return make_env(
            self.env,
            n_envs=self.n_envs if n_envs is None else n_envs,
            seed=self.seed if seed is None else seed,
            vec_env=self.vec_env,
            frame_stack=self.frame_stack,
            env_wrapper=self.env_wrapper,
            env_kwargs=self.env_kwargs,
            max_episode_steps=max_episode_steps,
        )

    def make_eval_env(self, n_envs: int, seed: int) -> VecEnv:
        """The env evaluations play, with episodes cut at ``eval_max_steps``."""
        return self.make_env(n_envs=n_envs, seed=seed, max_episode_steps=self.eval_max_steps)


def resolve_run(
    algo: str,
    env: str,
    params: Mapping[str, Any] | None = None,
    conf_file: str | Path | None = None,
    *,
    seed: int = 0,
    n_timesteps: int | None = None,
    n_envs: int | None = None,
    vec_env: str = "dummy",
    eval_max_steps: int | None = None,
    entry_params: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The config entry of ``algo`` on ``env`` (from ``conf_file``, default the shipped zoo config),
    checked and merged with the preset's flags and the overrides ``params`` (``-params``, parsed)
    by :func:`~rainbow_ext.zoo.config.apply_preset`. Keyword arguments given (not None) override the
    entry's run keys, as the command's flags do. ``entry_params`` replace values of the entry itself,
    so the preset's rules apply to them as to the entry (a grid's epsilon schedule, say, reaches only
    the variants that explore with epsilon)."""
    check_algo(algo)
    path = Path(conf_file) if conf_file is not None else default_config_file(algo)
    entries = cfg.load_entries(path)
    key, entry = cfg.select_entry(entries, env, env_family(env))
    entry = {**entry, **(entry_params or {})}
    flags = preset_flags(algo) if algo in PRESETS else {}
    source = f"{path.name}[{key!r}]"
    overrides = dict(params or {})
    cfg.check_keys(entry, algo_class(algo), source)
    cfg.check_keys(overrides, algo_class(algo), "-params")
    merged = cfg.apply_preset(flags, entry, overrides, source)
    # every value in its domain (rainbow_ext.domains), for any algo, named with where it was given
    for name, value in merged.items():
        where = "-params" if name in overrides else source if name in entry else f"the preset {algo!r}"
        check_values({name: value}, where, ConfigError)
    run_keys = {k: merged.pop(k) for k in cfg.RUN_KEYS if k in merged}
    n_envs = n_envs if n_envs is not None else int(run_keys.get("n_envs", 1))
    n_timesteps = n_timesteps if n_timesteps is not None else int(run_keys.get("n_timesteps", 100_000))
    if n_timesteps < 1:
        raise UsageError(f"n_timesteps must be >= 1, got {n_timesteps}")
    eval_max_steps = eval_max_steps if eval_max_steps is not None else run_keys.get("eval_max_steps")
    check_eval_max_steps(eval_max_steps)
    return RunConfig(
        algo=algo,
        env=env,
        seed=seed,
        n_timesteps=n_timesteps,
        policy=run_keys.get("policy", "MlpPolicy"),
        n_envs=n_envs,
        vec_env=vec_env,
        frame_stack=run_keys.get("frame_stack"),
        env_wrapper=run_keys.get("env_wrapper"),
        env_kwargs=run_keys.get("env_kwargs", {}),
        eval_max_steps=eval_max_steps,
        hyperparams=merged,
        source=f"{path}[{key!r}]",
    )


def zoo_config(algo: str, env_id: str, *params: str, conf_file: str | Path | None = None) -> RunConfig:
    """:func:`resolve_run` with ``-params``-style ``key:value`` strings: the run as the command
    would train it, ``Rainbow(run.policy, env, **run.hyperparams)``."""
    return resolve_run(algo, env_id, cfg.parse_params(list(params)), conf_file)


def check_eval_max_steps(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"eval_max_steps must be an integer >= 1 (agent steps per evaluation episode), got {value!r}")


def used_hyperparams(model: BaseAlgorithm, run: RunConfig) -> dict[str, Any]:
    """Every constructor argument as the model holds it (component flags included)."""
    used: dict[str, Any] = {}
    for name in inspect.signature(type(model).__init__).parameters:
        if name in cfg.COMMAND_ARGS or name == "policy_kwargs":
            continue
        value = getattr(model, name, getattr(model, f"_{name}", None))
        if name == "learning_rate" and callable(value):
            value = run.hyperparams.get("learning_rate", repr(value))  # the schedule as written, lin_...
        if name == "train_freq" and hasattr(value, "unit"):
            value = [value.frequency, value.unit.value]
        used[name] = cfg.to_yaml_value(value)
    used["policy_kwargs"] = cfg.to_yaml_value(model.policy_kwargs)
    return used


def run_config_dict(run: RunConfig, model: BaseAlgorithm) -> dict[str, Any]:
    return {
        "algo": run.algo,
        "env": run.env,
        "seed": run.seed,
        "n_timesteps": run.n_timesteps,
        "policy": run.policy,
        "n_envs": run.n_envs,
        "vec_env": run.vec_env,
        "frame_stack": run.frame_stack,
        "env_wrapper": run.env_wrapper,
        "env_kwargs": cfg.to_yaml_value(run.env_kwargs),
        "eval_max_steps": run.eval_max_steps,
        "source": run.source,
        "hyperparams": used_hyperparams(model, run),
    }
