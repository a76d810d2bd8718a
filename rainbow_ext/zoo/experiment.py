"""One training run, as ``python -m rainbow_ext.train`` does it, from plain values.

The algorithm registry (every preset, and ``qrdqn`` as a baseline), :class:`RunConfig` (what a run
needs besides its model), :func:`resolve_run` (a config entry checked and merged with overrides),
:func:`build_model`, and :func:`prepare_run` / :func:`train_run`, which check everything before the
first write and then write the run folder and train. The commands, tune, ablate and the benchmarks
all go through these.
"""

from __future__ import annotations

import difflib
import inspect
import pickle
import sys
import time
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext.envs.make import env_family, make_env
from rainbow_ext.evaluation import EvalCallback
from rainbow_ext.presets import PRESETS, preset_flags
from rainbow_ext.rainbow import Rainbow
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.errors import UsageError

# What users of SB3 would run instead: sb3-contrib's QR-DQN and SB3's own DQN, each with rl-zoo3's
# hyperparameters in its own config file.
BASELINES = ("qrdqn", "sb3-dqn")
ALGOS = (*PRESETS, *BASELINES)
CONFIG_FILES = {"qrdqn": "qrdqn.yml", "sb3-dqn": "sb3_dqn.yml"}  # the presets': rainbow.yml


def algo_class(algo: str) -> type[BaseAlgorithm]:
    if algo == "qrdqn":
        from sb3_contrib import QRDQN

        return QRDQN
    if algo == "sb3-dqn":
        from stable_baselines3 import DQN

        return DQN
    return Rainbow


def check_algo(algo: str) -> None:
    if algo not in ALGOS:
        close = difflib.get_close_matches(algo, ALGOS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown algo {algo!r}{hint}; valid: {', '.join(ALGOS)}")


def default_config_file(algo: str) -> Path:
    return cfg.CONFIG_DIR / CONFIG_FILES.get(algo, "rainbow.yml")


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
    for count in ("buffer_size", "batch_size"):  # SB3 takes 0 (one slot; a division by zero), any algo
        if count in merged and merged[count] < 1:
            raise UsageError(f"{count} must be an integer >= 1, got {merged[count]!r}")
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
    return algo_class(run.algo)(  # type: ignore[call-arg]
        run.policy,
        env,
        seed=run.seed if seed is None else seed,
        device=device,
        verbose=verbose,
        tensorboard_log=tensorboard_log,
        **kwargs,
    )


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


@dataclass
class TrainOptions:
    """How a run is trained and recorded, besides its config (the train command's flags)."""

    log_folder: Path = Path("logs")
    run_dir: Path | None = None  # a new or empty folder for the run instead of <algo>/<env>_<n>
    trained_agent: Path | None = None  # -i: continue this model
    device: str = "auto"
    verbose: int = 1
    eval_freq: int = 10_000
    eval_episodes: int = 5
    n_eval_envs: int = 1
    save_freq: int = -1
    checkpoint_freq: int = 0  # a resumable checkpoint (runs.Checkpointer) every N steps; 0: none
    save_replay_buffer: bool = False
    tensorboard_log: str | None = None
    progress_bar: bool = True
    track: bool = False
    wandb_project_name: str = "rainbow_ext"
    wandb_entity: str | None = None
    command: str = ""  # the command line, appended to the run's command.txt
    args: dict[str, Any] = field(default_factory=dict)  # the command's arguments, written to args.yml


@dataclass
class Session:
    """A checked run, ready to write its folder and train."""

    run: RunConfig
    model: BaseAlgorithm
    options: TrainOptions
    run_dir: Path | None  # set when continuing a run in its own folder
    remaining: int
    seconds_before: float = 0.0  # training seconds of the run's earlier stretches (from its checkpoint)


class SaveError(OSError):
    """The end of a run could not be saved; the message names the whole files the run folder keeps."""


@dataclass
class TrainResult:
    model: BaseAlgorithm
    run_dir: Path
    interrupted_by: str | None  # the signal that stopped training early, if one did
    seconds: float  # training seconds over every stretch of the run (with a checkpoint to count from)


def prepare_run(
    options: TrainOptions,
    algo: str,
    env: str,
    params: Mapping[str, Any] | None = None,
    conf_file: str | Path | None = None,
    **run_flags: Any,
) -> Session:
    """Everything that can fail on bad input, before anything is written: the run (resolved, or
    read from the folder of the model ``options.trained_agent`` continues) and its model.
    ``run_flags`` are :func:`resolve_run`'s keyword arguments."""
    check_eval_max_steps(run_flags.get("eval_max_steps"))
    check_train_options(options)
    runs.check_writable(options.log_folder)
    if options.run_dir is not None:
        runs.check_writable(options.run_dir)
        if options.run_dir.exists() and any(options.run_dir.iterdir()):
            raise UsageError(f"--run-dir {options.run_dir} is not empty")
    if options.trained_agent is None:
        run = resolve_run(algo, env, params, conf_file, **run_flags)
        model = build_model(run, run.make_env(), options.device, options.verbose, options.tensorboard_log)
        warn_if_no_update(model, run.n_timesteps)
        return Session(run, model, options, run_dir=None, remaining=run.n_timesteps)

    path = options.trained_agent
    if not path.is_file():
        raise UsageError(f"-i {path}: no such file")
    run_dir = run_folder_of(path)
    if run_dir is not None:
        check_algo(algo)
        run = run_from_folder(run_dir, path, algo, env, **run_flags)
    else:
        run = resolve_run(algo, env, params, conf_file, **run_flags)
    model = load_trained_agent(path, run, run.make_env(), options, dict(params or {}))
    if options.tensorboard_log is not None:
        model.tensorboard_log = options.tensorboard_log
    remaining = run.n_timesteps - model.num_timesteps if run_dir is not None else run.n_timesteps
    if remaining < 1:
        raise UsageError(
            f"-i {path}: the model has {model.num_timesteps:,} steps, n_timesteps is {run.n_timesteps:,}: nothing "
            "left to train (raise -n)"
        )
    seconds_before = 0.0
    if run_dir is not None and options.eval_freq > 0:
        check_evaluation_history(run_dir, options.eval_episodes)
    if run_dir is not None:
        # the env's seeds go on from here, not from the run's first step again
        model.set_random_seed(run.seed + model.num_timesteps)
        if (path.parent / runs.META_FILE).exists():
            seconds_before = runs.checkpoint_seconds(path.parent)
    return Session(run, model, options, run_dir=run_dir, remaining=remaining, seconds_before=seconds_before)


def warn_if_no_update(model: BaseAlgorithm, n_timesteps: int) -> None:
    learning_starts = getattr(model, "learning_starts", 0)
    if learning_starts >= n_timesteps:
        warnings.warn(
            f"learning_starts ({learning_starts:,}) >= n_timesteps ({n_timesteps:,}): the run acts at random "
            "and makes no gradient step",
            stacklevel=3,
        )


def check_train_options(options: TrainOptions) -> None:
    """The flags of a run that no constructor sees: counts, and a device that exists here."""
    if options.eval_freq > 0:
        for name in ("eval_episodes", "n_eval_envs"):
            if getattr(options, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    check_device(options.device)


def check_device(device: str) -> None:
    """A torch device name that this machine has (SB3 would fall back to the CPU without a word)."""
    try:
        resolved = th.device(device) if device != "auto" else None
    except RuntimeError as error:
        raise UsageError(f"--device {device}: not a device name (cpu, cuda, cuda:1, mps, auto)") from error
    if resolved is None:
        return
    if resolved.type == "cuda" and not th.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device here")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= th.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {th.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not th.backends.mps.is_available():
        raise UsageError(f"--device {device}: no MPS device here")


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


def run_folder_of(model_path: Path) -> Path | None:
    """The run folder a model belongs to: its own folder (``<run>/<env>.zip``), or the run of the
    checkpoint that holds it (``<run>/checkpoint/model.zip``); None for a model outside a run."""
    for folder in (model_path.parent, model_path.parent.parent):
        if (folder / runs.CONFIG_FILE).exists():
            return folder
    return None


def resume_point(run_dir: Path) -> Path | None:
    """The model to continue the run in ``run_dir`` from (its checkpoint's), or None."""
    checkpoint = runs.latest_checkpoint(run_dir)
    return None if checkpoint is None else checkpoint / runs.MODEL_FILE


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


def load_trained_agent(
    path: Path, run: RunConfig, env: VecEnv, options: TrainOptions, overrides: dict[str, Any]
) -> BaseAlgorithm:
    kwargs = cfg.load_overrides(overrides, algo_class(run.algo))
    saved_as = saved_algorithm(path)
    expected = algo_class(run.algo)
    if saved_as is not None and algo_class(saved_as) is not expected:
        name = "a Rainbow (preset)" if saved_as == "rainbow" else f"a {saved_as}"
        raise UsageError(f"-i {path}: this file is {name} model, not {run.algo}; pass --algo accordingly")
    try:
        model = expected.load(path, env=env, device=options.device, verbose=options.verbose, **kwargs)
    except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as error:
        raise UsageError(f"-i {path}: not a readable {run.algo} model ({type(error).__name__}: {error})") from error
    buffer = path.parent / runs.BUFFER_FILE
    if not buffer.exists():
        warnings.warn(
            f"-i {path}: no replay buffer beside it ({buffer.name}); training goes on with an empty one", stacklevel=3
        )
    else:
        try:
            model.load_replay_buffer(buffer)  # type: ignore[attr-defined]
        except (EOFError, pickle.UnpicklingError, AssertionError, AttributeError, ValueError) as error:
            raise UsageError(f"-i: replay buffer {buffer} is not readable ({type(error).__name__}: {error})") from error
        print(f"loaded the replay buffer ({model.replay_buffer.size()} transitions) from {buffer}")  # type: ignore[attr-defined]
    return model


def saved_algorithm(path: Path) -> str | None:
    """The algo a model zip was saved from, read from its policy class's module: ``"rainbow"`` (any
    preset), ``"qrdqn"`` or ``"sb3-dqn"``; None when the file does not say."""
    data = runs.saved_model_data(path)
    if data is None:
        return None  # load() reports what is wrong with the file
    policy_class = data.get("policy_class")
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    families = {"rainbow_ext.": "rainbow", "sb3_contrib.qrdqn.": "qrdqn", "stable_baselines3.dqn.": "sb3-dqn"}
    return next((algo for prefix, algo in families.items() if module.startswith(prefix)), None)


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
        try:
            return path, algo_class(algo).load(path, device=device)
        except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as error:
            problems.append(f"{path} ({type(error).__name__}: {error})")
            print(f"warning: {problems[-1]} is not a readable {algo} model", file=sys.stderr)
    raise UsageError(f"no readable model: {'; '.join(problems)}")


def train_run(session: Session) -> TrainResult:
    """Write the run folder (config.yml, args.yml, command.txt), train with evaluations, checkpoints,
    tracking and a clean stop on SIGINT/SIGTERM, and save the model, the training episodes
    (episodes.csv) and, when stopped, the replay buffer."""
    run, model, options = session.run, session.model, session.options
    resuming = session.run_dir is not None
    if session.run_dir is not None:
        run_dir = session.run_dir
    elif options.run_dir is not None:
        run_dir = options.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = runs.new_run_dir(options.log_folder, run.algo, run.env)
    config = run_config_dict(run, model)
    if not resuming:
        runs.write_yaml(run_dir / runs.CONFIG_FILE, config)
        runs.write_yaml(run_dir / runs.ARGS_FILE, options.args)
    else:  # config.yml and args.yml keep how the run started; each continuation is added to its history
        step = {"from_step": model.num_timesteps, "command": options.command, "args": cfg.to_yaml_value(options.args)}
        runs.append_history(run_dir, step)
    with open(run_dir / runs.COMMAND_FILE, "a") as file:
        file.write(options.command + "\n")
    if model.tensorboard_log is None:
        model.tensorboard_log = str(run_dir / "tensorboard")
    print(f"run folder: {run_dir} ({run.algo} on {run.env}, {run.source})")

    stop = runs.StopOnSignal()
    episodes = runs.EpisodeLog(run_dir / runs.EPISODES_FILE)
    if resuming:
        assert options.trained_agent is not None
        earlier = options.trained_agent.parent / runs.EPISODES_FILE  # the checkpoint's, or the run's own
        episodes.restore(earlier if earlier.exists() else episodes.path, up_to=model.num_timesteps)
        if (options.trained_agent.parent / runs.META_FILE).exists():  # continued from a checkpoint
            runs.restore_best_model(options.trained_agent.parent, run_dir, model.num_timesteps)
        else:
            runs.drop_later_best_model(run_dir, model.num_timesteps)
    callbacks: list[BaseCallback] = [stop, episodes]
    checkpointer = None
    if options.checkpoint_freq > 0:
        checkpointer = runs.Checkpointer(
            run_dir, options.checkpoint_freq, run.n_timesteps, episodes, session.seconds_before
        )
        callbacks.append(checkpointer)
    eval_env = None
    if options.eval_freq > 0:
        eval_env = run.make_eval_env(n_envs=options.n_eval_envs, seed=run.seed + 10_000)
        evaluation = EvalCallback(
            eval_env,
            n_eval_episodes=options.eval_episodes,
            eval_freq=max(options.eval_freq // run.n_envs, 1),
            best_model_save_path=str(run_dir),
            log_path=str(run_dir),
            verbose=options.verbose,
        )
        if resuming:
            runs.restore_evaluations(evaluation, run_dir / runs.EVALUATIONS_FILE, up_to=model.num_timesteps)
            # SB3 evaluates every eval_freq calls of the callback: count on, so evaluations stay at the
            # same steps as in a run that never stopped
            evaluation.n_calls = model.num_timesteps // run.n_envs
        callbacks.append(evaluation)
    if options.save_freq > 0:
        callbacks.append(
            runs.WholeCheckpointCallback(max(options.save_freq // run.n_envs, 1), str(run_dir), name_prefix="rl_model")
        )
    wandb_run = None
    if options.track:
        from rainbow_ext.zoo.tracking import start_run

        tags = [run.algo, *(k for k, v in run.hyperparams.items() if v is True)]
        wandb_run, wandb_callback = start_run(
            config, run_dir, options.wandb_project_name, options.wandb_entity, group=run.algo, tags=tags
        )
        callbacks.append(wandb_callback)

    start = time.perf_counter()
    with stop:
        model.learn(
            session.remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=not resuming and options.trained_agent is None,
            tb_log_name=run.algo,
            progress_bar=options.progress_bar,
        )
    seconds = session.seconds_before + time.perf_counter() - start
    path = runs.model_file(run_dir, run.env)
    try:
        runs.save_model(model, path)
        episodes.save()
        if stop.received or options.save_replay_buffer:
            runs.save_replay_buffer(model, run_dir / runs.BUFFER_FILE)
        finished = model.num_timesteps >= run.n_timesteps
        if checkpointer is not None and stop.received and not finished:
            checkpointer.save()  # where it stopped, for a resume from the checkpoint
        elif checkpointer is not None or resuming:
            runs.remove_checkpoint(run_dir)  # finished: nothing to resume
    except OSError as error:  # a full disk, say: each file is whole or absent, and the earlier ones are kept
        kept = [p.name for p in (run_dir / runs.BEST_MODEL_FILE, run_dir / runs.CHECKPOINT_DIR, path) if p.exists()]
        kept += sorted(p.name for p in run_dir.glob("rl_model_*_steps.zip"))
        raise SaveError(
            f"could not save the run at step {model.num_timesteps:,} ({error.strerror or error}); its last whole files "
            f"in {run_dir}: {', '.join(kept) or 'none'}"
        ) from error
    if stop.received:
        print(
            f"{stop.received}: stopped at step {model.num_timesteps:,} of {run.n_timesteps:,}; saved {path} and "
            f"{run_dir / runs.BUFFER_FILE}. Continue with: python -m rainbow_ext.train --algo {run.algo} "
            f"--env {run.env} -i {path}"
        )
    else:
        print(f"saved {path} after {model.num_timesteps:,} steps")
    if wandb_run is not None:
        wandb_run.finish()
    for env in (model.get_env(), eval_env):
        if env is not None:
            env.close()
    return TrainResult(model, run_dir, stop.received, seconds)
