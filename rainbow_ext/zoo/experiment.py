"""One training run, as ``python -m rainbow_ext.train`` does it, from plain values: :func:`prepare_run`
checks everything that can fail on bad input before the first write (the run resolved, or read from the
folder of the model it continues, and its model built or loaded); :func:`train_run` opens the run folder,
makes the callbacks, learns and saves. ``tune``, ``ablate`` and the benchmarks go through these too."""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.callbacks import RunCallbacks, make_callbacks
from rainbow_ext.zoo.errors import UsageError
from rainbow_ext.zoo.models import build_model, warn_if_no_update
from rainbow_ext.zoo.options import TrainOptions
from rainbow_ext.zoo.resolution import RunConfig, check_eval_max_steps, resolve_run, run_config_dict
from rainbow_ext.zoo.resume import resume_run


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
    eval_episodes = options.eval_episodes if options.eval_freq > 0 else None
    resume = resume_run(
        options.trained_agent, algo, env, params, conf_file, options.device, options.verbose, eval_episodes, **run_flags
    )
    if options.tensorboard_log is not None:
        resume.model.tensorboard_log = options.tensorboard_log
    return Session(resume.run, resume.model, options, resume.run_dir, resume.remaining, resume.seconds_before)


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


def train_run(session: Session) -> TrainResult:
    """Open the run folder (config.yml, args.yml, command.txt), make the callbacks, learn (with
    evaluations, checkpoints, tracking and a clean stop on SIGINT/SIGTERM), and save the model, the
    training episodes (episodes.csv) and, when stopped, the replay buffer."""
    resuming = session.run_dir is not None
    with runs.continuing(session.run_dir) if resuming else nullcontext():  # type: ignore[arg-type]
        return _train_in_folder(session, resuming)


def _train_in_folder(session: Session, resuming: bool) -> TrainResult:
    run, model, options = session.run, session.model, session.options
    run_dir, config = open_run_folder(session)
    callbacks = make_callbacks(run, model, options, run_dir, config, resuming, session.seconds_before)
    start = time.perf_counter()
    with callbacks.stop:
        model.learn(
            session.remaining,
            callback=callbacks.all,
            reset_num_timesteps=not resuming and options.trained_agent is None,
            tb_log_name=run.algo,
            progress_bar=options.progress_bar,
        )
    seconds = session.seconds_before + time.perf_counter() - start
    save_run(session, run_dir, callbacks)
    if callbacks.wandb_run is not None:
        callbacks.wandb_run.finish()
    for env in (model.get_env(), callbacks.eval_env):
        if env is not None:
            env.close()
    return TrainResult(model, run_dir, callbacks.stop.received, seconds)


def open_run_folder(session: Session) -> tuple[Path, dict[str, Any]]:
    """The run's folder, written for a new run (config.yml, args.yml) or extended for a continued one (its
    history), with the command line added; and the run's config record."""
    run, model, options = session.run, session.model, session.options
    if session.run_dir is not None:
        run_dir = session.run_dir
    elif options.run_dir is not None:
        run_dir = options.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = runs.new_run_dir(options.log_folder, run.algo, run.env)
    config = run_config_dict(run, model)
    if session.run_dir is None:
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
    return run_dir, config


def save_run(session: Session, run_dir: Path, callbacks: RunCallbacks) -> None:
    """The model, the training episodes and, when stopped, the replay buffer and a checkpoint to resume
    from; each file whole or absent (a SaveError names the files kept)."""
    run, model, options = session.run, session.model, session.options
    stop, checkpointer = callbacks.stop, callbacks.checkpointer
    path = runs.model_file(run_dir, run.env)
    try:
        runs.save_model(model, path)
        callbacks.episodes.save()
        if stop.received or options.save_replay_buffer:
            runs.save_replay_buffer(model, run_dir / runs.BUFFER_FILE)
        else:  # one an earlier stop left belongs to an earlier model
            (run_dir / runs.BUFFER_FILE).unlink(missing_ok=True)
        finished = model.num_timesteps >= run.n_timesteps
        if checkpointer is not None and stop.received and not finished:
            checkpointer.save()  # where it stopped, for a resume from the checkpoint
        elif checkpointer is not None or session.run_dir is not None:
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
            f"{run_dir / runs.BUFFER_FILE}. Continue with: "
            + shlex.join(["python", "-m", "rainbow_ext.train", "--algo", run.algo, "--env", run.env, "-i", str(path)])
        )
    else:
        print(f"saved {path} after {model.num_timesteps:,} steps")
