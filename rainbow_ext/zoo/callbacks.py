"""The callbacks of a run, as ``train`` makes them: a clean stop on SIGINT/SIGTERM, the log of training
episodes, resumable checkpoints, evaluations (continued from an earlier stretch), SB3 checkpoints and
Weights & Biases tracking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext.evaluation import EvalCallback
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.options import TrainOptions
from rainbow_ext.zoo.resolution import RunConfig


@dataclass
class RunCallbacks:
    """What ``learn`` is called with (``all``), and the parts the run reads afterwards."""

    all: CallbackList
    stop: runs.StopOnSignal
    episodes: runs.EpisodeLog
    checkpointer: runs.Checkpointer | None
    eval_env: VecEnv | None
    wandb_run: Any


def make_callbacks(
    run: RunConfig,
    model: BaseAlgorithm,
    options: TrainOptions,
    run_dir: Path,
    config: dict[str, Any],
    resuming: bool,
    seconds_before: float,
) -> RunCallbacks:
    """The run's callbacks; a run continued in its folder (``resuming``) continues its training episodes,
    best model and evaluations from the step its model has."""
    stop = runs.StopOnSignal()
    episodes = runs.EpisodeLog(run_dir / runs.EPISODES_FILE)
    if resuming:
        restore_stretch(options, run_dir, model, episodes)
    callbacks: list[BaseCallback] = [stop, episodes]
    checkpointer = None
    if options.checkpoint_freq > 0:
        checkpointer = runs.Checkpointer(run_dir, options.checkpoint_freq, run.n_timesteps, episodes, seconds_before)
        callbacks.append(checkpointer)
    eval_env = None
    if options.eval_freq > 0:
        eval_env = run.make_eval_env(n_envs=options.n_eval_envs, seed=run.seed + 10_000)
        callbacks.append(evaluations(run, model, options, run_dir, eval_env, resuming))
    if options.save_freq > 0:
        every = max(options.save_freq // run.n_envs, 1)
        callbacks.append(runs.WholeCheckpointCallback(every, str(run_dir), name_prefix="rl_model"))
    wandb_run = None
    if options.track:
        from rainbow_ext.zoo.tracking import start_run

        tags = [run.algo, *(k for k, v in run.hyperparams.items() if v is True)]
        wandb_run, wandb_callback = start_run(
            config, run_dir, options.wandb_project_name, options.wandb_entity, group=run.algo, tags=tags
        )
        callbacks.append(wandb_callback)
    return RunCallbacks(CallbackList(callbacks), stop, episodes, checkpointer, eval_env, wandb_run)


def restore_stretch(options: TrainOptions, run_dir: Path, model: BaseAlgorithm, episodes: runs.EpisodeLog) -> None:
    """The training episodes and best model of the run up to the step the continued model has."""
    assert options.trained_agent is not None
    earlier = options.trained_agent.parent / runs.EPISODES_FILE  # the checkpoint's, or the run's own
    episodes.restore(earlier if earlier.exists() else episodes.path, up_to=model.num_timesteps)
    if (options.trained_agent.parent / runs.META_FILE).exists():  # continued from a checkpoint
        runs.restore_best_model(options.trained_agent.parent, run_dir, model.num_timesteps)
    else:
        runs.drop_later_best_model(run_dir, model.num_timesteps)


def evaluations(
    run: RunConfig, model: BaseAlgorithm, options: TrainOptions, run_dir: Path, eval_env: VecEnv, resuming: bool
) -> EvalCallback:
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
    return evaluation
