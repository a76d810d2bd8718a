"""Models of a run: built from its resolved config, found in its folder, loaded back."""

from __future__ import annotations

import pickle
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.algorithms import algo_class, check_algo, foreign_model
from rainbow_ext.zoo.errors import UsageError
from rainbow_ext.zoo.resolution import RunConfig

# what loading a damaged or foreign zip raises (SB3 asserts on an inner archive cut short)
UNREADABLE = (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError, AssertionError)


def build_model(
    run: RunConfig,
    env: VecEnv,
    device: str = "auto",
    verbose: int = 0,
    tensorboard_log: str | None = None,
    seed: int | None = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> BaseAlgorithm:
    """``algo_class(run.algo)(run.policy, env, **run.hyperparams)`` with the learning-rate schedule
    built (``hyperparams`` replaces the run's, e.g. a tuning trial's sample)."""
    kwargs = dict(run.hyperparams if hyperparams is None else hyperparams)
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = cfg.learning_rate_schedule(kwargs["learning_rate"])
    chosen = sorted(set(kwargs.get("policy_kwargs") or {}) & set(cfg.CLASS_KWARGS))
    try:
        model = algo_class(run.algo)(  # type: ignore[call-arg]
            run.policy,
            env,
            seed=run.seed if seed is None else seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            **kwargs,
        )
        if chosen:  # classes from the config: one forward pass on this env's observations before the run starts
            model.predict(model.observation_space.sample(), deterministic=True)
    except (TypeError, RuntimeError, NotImplementedError, AttributeError, AssertionError) as error:
        unknown_key = isinstance(error, TypeError) and "unexpected keyword argument" in str(error)
        if unknown_key and kwargs.get("policy_kwargs"):
            where = f"the entry {run.source} or -params"
            raise UsageError(f"policy_kwargs ({where}): {error}; the policy takes SB3's arguments") from error
        if not chosen:
            raise  # not the config's classes: a bug, with its traceback
        raise UsageError(
            f"the network cannot be built or run with policy_kwargs {chosen} from {run.source}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return model


def warn_if_no_update(model: BaseAlgorithm, n_timesteps: int) -> None:
    learning_starts = getattr(model, "learning_starts", 0)
    if learning_starts >= n_timesteps:
        warnings.warn(
            f"learning_starts ({learning_starts:,}) >= n_timesteps ({n_timesteps:,}): the run acts at random "
            "and makes no gradient step",
            stacklevel=3,
        )


def find_run_model(
    log_folder: Path, algo: str, env: str, exp_id: int = 0, load_last: bool = False
) -> tuple[Path, list[Path]]:
    """A run's folder (``<log_folder>/<algo>/<env>_<exp_id>``, the latest for 0) and its models to try
    in order: the best, then the final one (the final only, with ``load_last``)."""
    check_algo(algo)
    if exp_id > 0:
        run_dir = log_folder / algo / f"{runs.env_folder_name(env)}_{exp_id}"
        if not run_dir.is_dir():
            raise UsageError(f"no run folder {run_dir}")
    else:
        found = runs.latest_run_dir(log_folder, algo, env)
        if found is None:
            raise UsageError(f"no runs of {algo} on {env} under {log_folder / algo}")
        run_dir = found
    best, last = run_dir / runs.BEST_MODEL_FILE, runs.model_file(run_dir, env)
    candidates = [last] if load_last else [best, last]
    present = [path for path in candidates if path.is_file()]
    if not present:
        raise UsageError(f"no model in {run_dir} (looked for {', '.join(p.name for p in candidates)})")
    return run_dir, present


def load_first_readable(paths: list[Path], algo: str, device: str = "auto") -> tuple[Path, BaseAlgorithm]:
    """The first of ``paths`` that loads: a broken best model falls back to the final one, with a
    message naming it; a UsageError names every file that did not load."""
    problems = []
    for path in paths:
        foreign = foreign_model(path, algo) if path.is_file() else None
        if foreign is not None:
            problems.append(f"{path} ({foreign})")
            print(f"warning: {problems[-1]}", file=sys.stderr)
            continue
        try:
            return path, algo_class(algo).load(path, device=device)
        except UNREADABLE as error:
            problems.append(f"{path} ({type(error).__name__}: {error})")
            print(f"warning: {problems[-1]} is not a readable {algo} model", file=sys.stderr)
    raise UsageError(f"no readable model: {'; '.join(problems)}")
