"""Continuing a run (``-i``): from a model in a run folder (its own ``<env>.zip``, or its checkpoint's), or
from a model file alone; everything checked before anything is written, and returned as one
:class:`Resume`."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.algorithms import algo_class, check_algo, foreign_model
from rainbow_ext.zoo.errors import UsageError
from rainbow_ext.zoo.models import UNREADABLE
from rainbow_ext.zoo.resolution import RunConfig, resolve_run

# a replay buffer saved this much before its model belongs to an earlier save (a stop saves the model first)
STALE_SECONDS = 2.0


@dataclass
class Resume:
    """A run continued from a model: its config, the model (with the replay buffer saved beside it), the
    run folder it belongs to (None for a model file alone: a new run folder is made), the steps left, and
    the training seconds of its earlier stretches (from a checkpoint; else 0)."""

    run: RunConfig
    model: BaseAlgorithm
    run_dir: Path | None
    remaining: int
    seconds_before: float = 0.0


def resume_run(
    path: Path,
    algo: str,
    env: str,
    params: Mapping[str, Any] | None,
    conf_file: str | Path | None,
    device: str,
    verbose: int,
    eval_episodes: int | None,
    **run_flags: Any,
) -> Resume:
    """The model at ``path`` and the run it continues: read from its run folder, or resolved as a new run
    for a model file alone. ``eval_episodes`` (None: no evaluations) must match the run's evaluation
    history."""
    path = model_to_continue(path)
    run_dir = run_folder_of(path)
    if run_dir is not None:
        check_algo(algo)
        runs.check_writable(run_dir)  # a read-only run folder: refused before anything is loaded
        holder = runs.lock_holder(run_dir / runs.LOCK_FILE)
        if holder is not None:
            raise UsageError(f"-i {path}: the run is being continued by process {holder}; wait for it to end")
        run = run_from_folder(run_dir, path, algo, env, **run_flags)
    else:
        run = resolve_run(algo, env, params, conf_file, **run_flags)
    model = load_trained_agent(path, run, run.make_env(), device, verbose, dict(params or {}))
    if run_dir is None:
        return Resume(run, model, None, run.n_timesteps)
    remaining = run.n_timesteps - model.num_timesteps
    if remaining < 1:
        raise UsageError(
            f"-i {path}: the model has {model.num_timesteps:,} steps, n_timesteps is {run.n_timesteps:,}: nothing "
            "left to train (raise -n)"
        )
    if eval_episodes is not None:
        check_evaluation_history(run_dir, eval_episodes)
    model.set_random_seed(run.seed + model.num_timesteps)  # the env's seeds go on from here, not from step 0
    seconds_before = runs.checkpoint_seconds(path.parent) if (path.parent / runs.META_FILE).exists() else 0.0
    return Resume(run, model, run_dir, remaining, seconds_before)


def model_to_continue(path: Path) -> Path:
    """The model file ``-i`` names: a model file, or a run folder's newest whole model (its checkpoint's,
    ``checkpoint.old``'s after a kill between the checkpoint's two renames, else its final model). A missing
    checkpoint model names the one the run has."""
    if path.is_dir():
        if not (path / runs.CONFIG_FILE).exists():
            raise UsageError(f"-i {path}: a folder, but not a run folder (no {runs.CONFIG_FILE})")
        found = resume_point(path)
        if found is None:
            env = runs.read_yaml(path / runs.CONFIG_FILE).get("env", "")
            found = runs.model_file(path, env)
        if not found.is_file():
            raise UsageError(f"-i {path}: the run folder holds no model to continue (no checkpoint, no {found.name})")
        print(f"continuing {path} from {found}")
        return found
    if not path.is_file():
        run = path.parent.parent if path.parent.name.startswith(runs.CHECKPOINT_DIR) else None
        whole = runs.latest_checkpoint(run) if run is not None else None
        if whole is not None:
            raise UsageError(
                f"-i {path}: no such file; the run's newest whole checkpoint is {whole / runs.MODEL_FILE} "
                f"(-i {run} finds it)"
            )
        raise UsageError(f"-i {path}: no such file")
    return path


def resume_point(run_dir: Path) -> Path | None:
    """The model to continue the run in ``run_dir`` from (its checkpoint's), or None."""
    checkpoint = runs.latest_checkpoint(run_dir)
    return None if checkpoint is None else checkpoint / runs.MODEL_FILE


def run_folder_of(model_path: Path) -> Path | None:
    """The run folder a model belongs to: its own folder (``<run>/<env>.zip``), or the run of the
    checkpoint that holds it (``<run>/checkpoint/model.zip``); None for a model outside a run."""
    for folder in (model_path.parent, model_path.parent.parent):
        if (folder / runs.CONFIG_FILE).exists():
            return folder
    return None


def run_from_folder(
    run_dir: Path,
    model_path: Path,
    algo: str,
    env: str,
    n_timesteps: int | None = None,
    vec_env: str = "dummy",
    eval_max_steps: int | None = None,
    **_: Any,
) -> RunConfig:
    """The RunConfig an earlier run saved, for ``-i`` (the flags given override its run keys)."""
    saved = runs.read_yaml(run_dir / runs.CONFIG_FILE)
    if saved.get("algo") != algo or saved.get("env") != env:
        raise UsageError(
            f"-i {model_path}: that run trained {saved.get('algo')} on {saved.get('env')}, "
            f"not {algo} on {env}; pass --algo {saved.get('algo')} --env {saved.get('env')}"
        )
    return RunConfig(
        algo=saved["algo"],
        env=saved["env"],
        seed=int(saved["seed"]),
        n_timesteps=n_timesteps if n_timesteps is not None else int(saved["n_timesteps"]),
        policy=saved["policy"],
        n_envs=int(saved["n_envs"]),
        vec_env=vec_env if vec_env != "dummy" else saved.get("vec_env", "dummy"),
        frame_stack=saved.get("frame_stack"),
        env_wrapper=saved.get("env_wrapper"),
        env_kwargs=saved.get("env_kwargs") or {},
        eval_max_steps=eval_max_steps if eval_max_steps is not None else saved.get("eval_max_steps"),
        hyperparams={},
        source=f"{run_dir / runs.CONFIG_FILE}",
    )


def check_evaluation_history(run_dir: Path, eval_episodes: int) -> None:
    """A run continues its evaluations.npz, whose rows have one score per evaluation episode."""
    path = run_dir / runs.EVALUATIONS_FILE
    if not path.exists():
        return
    try:
        with np.load(path) as data:
            results = data["results"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise UsageError(f"-i: {path} is not readable ({type(error).__name__}: {error}); move it away") from error
    if results.size and results.shape[1] != eval_episodes:
        raise UsageError(
            f"-i: {path} holds evaluations of {results.shape[1]} episodes; continue the run with "
            f"--eval-episodes {results.shape[1]}"
        )


def load_trained_agent(
    path: Path, run: RunConfig, env: VecEnv, device: str, verbose: int, overrides: dict[str, Any]
) -> BaseAlgorithm:
    """The model at ``path`` for ``run`` (its algo checked against the file), with ``overrides`` of its
    constructor arguments, and the replay buffer saved beside it."""
    kwargs = cfg.load_overrides(overrides, algo_class(run.algo))
    foreign = foreign_model(path, run.algo)
    if foreign is not None:
        raise UsageError(f"-i {path}: {foreign}")
    try:
        model = algo_class(run.algo).load(path, env=env, device=device, verbose=verbose, **kwargs)
    except UNREADABLE as error:
        raise UsageError(f"-i {path}: not a readable {run.algo} model ({type(error).__name__}: {error})") from error
    buffer = path.parent / runs.BUFFER_FILE
    if not buffer.exists():
        warnings.warn(
            f"-i {path}: no replay buffer beside it ({buffer.name}); training goes on with an empty one", stacklevel=3
        )
    elif buffer.stat().st_mtime < path.stat().st_mtime - STALE_SECONDS:
        # saved with a model before this one (a stop, then a continued run that finished): not this model's
        warnings.warn(
            f"-i {path}: {buffer} is older than the model (left by an earlier stop), not loaded; training goes "
            "on with an empty buffer (move the file away to silence this)",
            stacklevel=3,
        )
    else:
        try:
            model.load_replay_buffer(buffer)  # type: ignore[attr-defined]
        except (EOFError, pickle.UnpicklingError, AssertionError, AttributeError, ValueError) as error:
            raise UsageError(f"-i: replay buffer {buffer} is not readable ({type(error).__name__}: {error})") from error
        print(f"loaded the replay buffer ({model.replay_buffer.size()} transitions) from {buffer}")  # type: ignore[attr-defined]
    return model
