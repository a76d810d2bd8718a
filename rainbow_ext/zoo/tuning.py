"""Hyperparameter studies of ``python -m rainbow_ext.tune``: rl-zoo3's optimize on Optuna.

Each trial samples from the search space of its algo (``tuning/rainbow.py`` for every preset, whose
component flags stay fixed; ``tuning/qrdqn.py``; ``tuning/dqn.py`` for SB3's DQN, which the other two
extend), trains on the config entry of the env with the sample merged in and ``-params`` over both,
evaluates ``n_evaluations`` times and reports each to the pruner; its value is the last evaluation's
mean return (averaged over ``seeds_per_trial`` seeds). Trials that diverge (NaN or infinite weights or
returns) are pruned, never best. The study lives in a local SQLite file by default, or in a shared
storage (PostgreSQL) that workers on several machines join; ``n_trials`` counts finished trials of the
whole study.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib.util
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rainbow_ext.domains import check_values
from rainbow_ext.evaluation import EvalCallback
from rainbow_ext.presets import PRESETS
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.algorithms import check_algo
from rainbow_ext.zoo.errors import EXIT_INTERRUPTED, UsageError
from rainbow_ext.zoo.experiment import check_device
from rainbow_ext.zoo.models import build_model
from rainbow_ext.zoo.resolution import RunConfig, resolve_run
from rainbow_ext.zoo.studies import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    create_or_join,
    failed_since,
    recording_errors,
    report_failures,
    storage_url,
)

TUNING_DIR = cfg.shipped_folder("rainbow_ext.tuning", "tuning")
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "halving", "hyperband", "none")
COUNTED = ("COMPLETE", "PRUNED")  # trial states that count toward --n-trials


@dataclass
class TuneOptions:
    """A study and how its trials run (the tune command's flags; ``params`` are ``-params``, parsed)."""

    algo: str = "rainbow"
    env: str = "CartPole-v1"
    n_trials: int = 100
    n_jobs: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str | None = None
    study_name: str | None = None
    n_startup_trials: int = 5
    n_evaluations: int = 10
    eval_episodes: int = 5
    seeds_per_trial: int = 1
    n_timesteps: int | None = None
    seed: int = 0
    folder: str | None = None
    conf_file: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    plot: bool = False
    track: bool = False
    wandb_project_name: str = "rainbow_ext-tuning"
    wandb_entity: str | None = None
    heartbeat_interval: int = HEARTBEAT_SECONDS
    grace_period: int = GRACE_SECONDS


def search_space_file(algo: str) -> Path:
    return TUNING_DIR / {"qrdqn": "qrdqn.py", "sb3-dqn": "dqn.py"}.get(algo, "rainbow.py")


def load_search_space(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rainbow_ext_tuning_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ValueError(f"no search space file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_sampler(name: str, n_startup: int, seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=n_startup, seed=seed, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.CmaEsSampler(n_startup_trials=n_startup, seed=seed, warn_independent_sampling=False)


def make_pruner(name: str, n_startup: int, n_evaluations: int) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup, n_warmup_steps=max(n_evaluations // 3, 0))
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(n_evaluations, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def merge(base: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """The sample over the config entry; nested mappings (policy_kwargs) are merged, not replaced."""
    merged = copy.deepcopy(base)
    for key, value in sampled.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ReportingEval(EvalCallback):
    """EvalCallback that reports each evaluation to the trial, prunes, and stops on divergence."""

    def __init__(self, trial: Any, step_offset: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.step_offset = step_offset
        self.pruned = False
        self.diverged = False
        self.means: list[float] = []  # EvalCallback keeps its own history only with a log_path

    def _on_step(self) -> bool:
        continue_training = super()._on_step()
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            weights = [p for p in self.model.policy.parameters()]
            if not math.isfinite(self.last_mean_reward) or not all(bool(p.isfinite().all()) for p in weights):
                self.diverged = True
                return False
            self.means.append(self.last_mean_reward)
            self.trial.report(self.last_mean_reward, self.step_offset + len(self.means))
            if self.trial.should_prune():
                self.pruned = True
                return False
        return continue_training


@dataclass
class TrialContext:
    """What every trial of a study reads: the resolved run, the command's options, the search space, the
    study's folder, and the ``-params`` values fixed for every trial."""

    run: RunConfig
    args: TuneOptions
    space: ModuleType
    folder: Path
    fixed: dict[str, Any]
    #: set by the first Ctrl-C (or SIGTERM): every running trial stops at its next step
    stop: threading.Event = field(default_factory=threading.Event)


def objective(trial: Any, context: TrialContext) -> float:
    """A trial's value; an error is recorded on the trial (``error``) before the trial fails."""
    return recording_errors(trial, lambda: trial_value(trial, context))


def trial_value(trial: Any, context: TrialContext) -> float:
    import optuna

    run, args = context.run, context.args
    if counted_trials(trial.study, before=trial.number) >= args.n_trials:
        trial.set_user_attr("surplus", True)  # another worker finished the last trial first
        raise optuna.TrialPruned("the study has its trials")
    stop_if_interrupted(trial, context)
    flags = {key: value for key, value in run.hyperparams.items() if key in PRESETS.get(run.algo, {})}
    sampled = context.space.sample(trial, flags)
    # a search space cannot leave the hyperparameters' domains (rainbow_ext.domains)
    check_values(sampled, f"the search space {Path(context.space.__file__).name}", UsageError)
    # the config entry, the sample over it, and -params over both (fixed for every trial)
    hyperparams = merge(merge(run.hyperparams, sampled), context.fixed)
    trial.set_user_attr("hyperparams", cfg.to_yaml_value(hyperparams))
    finals = []
    for index in range(args.seeds_per_trial):
        seed = args.seed + index
        final = train_one(trial, context, hyperparams, seed, index * args.n_evaluations)
        finals.append(final)
    value = float(np.mean(finals))
    if not math.isfinite(value):
        raise optuna.TrialPruned("diverged: non-finite return")
    return value


def train_one(trial: Any, context: TrialContext, hyperparams: dict[str, Any], seed: int, offset: int) -> float:
    """One seed of a trial: its final evaluation, reported to the pruner at every evaluation."""
    import optuna

    run, args = context.run, context.args
    env = run.make_env(seed=seed)
    eval_env = run.make_eval_env(n_envs=1, seed=seed + 10_000)
    try:
        model = build_model(run, env, args.device, verbose=0, seed=seed, hyperparams=hyperparams)
        callback = ReportingEval(
            trial,
            offset,
            eval_env=eval_env,
            n_eval_episodes=args.eval_episodes,
            eval_freq=max(run.n_timesteps // args.n_evaluations // run.n_envs, 1),
            deterministic=True,
            verbose=0,
        )
        callbacks: list[Any] = [callback]
        if args.track:
            from rainbow_ext.zoo.tracking import start_run

            trial_dir = context.folder / "trials" / f"trial_{trial.number}_seed_{seed}"
            trial_dir.mkdir(parents=True, exist_ok=True)
            wandb_run, wandb_callback = start_run(
                {"trial": trial.number, "seed": seed, "hyperparams": cfg.to_yaml_value(hyperparams)},
                trial_dir,
                args.wandb_project_name,
                args.wandb_entity,
                group=args.study_name,
                name=f"{args.study_name}-trial-{trial.number}-seed-{seed}",
            )
            callbacks.append(wandb_callback)
        callbacks.append(StopWhenSet(context.stop))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow on the way to a divergence
                model.learn(run.n_timesteps, callback=callbacks)
            stop_if_interrupted(trial, context)
        except (ValueError, AssertionError, RuntimeError) as error:  # NaN in a distribution, a torch error
            raise optuna.TrialPruned(f"diverged: {error}") from error
        finally:
            if args.track:
                wandb_run.finish()
        if callback.diverged:
            trial.set_user_attr("diverged", True)
            raise optuna.TrialPruned("diverged: non-finite weights or returns")
        if callback.pruned:
            raise optuna.TrialPruned(f"pruned at evaluation {len(callback.means)}")
        if not callback.means:
            raise ValueError("no evaluation ran: raise -n or lower --n-evaluations")
        return float(callback.last_mean_reward)
    finally:
        env.close()
        eval_env.close()


class StopWhenSet(BaseCallback):
    """Ends ``learn`` at the next step once ``stop`` is set (from the main thread's signal handler)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def _on_step(self) -> bool:
        return not self.stop.is_set()


def stop_if_interrupted(trial: Any, context: TrialContext) -> None:
    """A trial stopped by Ctrl-C ends pruned and marked ``interrupted`` (so that it does not count toward
    ``--n-trials``, and a rerun samples it again), never left RUNNING."""
    import optuna

    if context.stop.is_set():
        trial.set_user_attr("interrupted", True)
        raise optuna.TrialPruned("interrupted")


@contextmanager
def stopping_on_signals(stop: threading.Event, study: Any) -> Iterator[None]:
    """While trials run (in this thread or in ``--n-jobs`` threads): the first SIGINT or SIGTERM sets
    ``stop``, so that each running trial ends at its next environment step, and stops the study from
    starting new ones; later signals only say that it is stopping, so that a Ctrl-C repeated while the
    trials wind down cannot abort the process and leave trials RUNNING."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            print("still stopping: the running trials end at their next step", file=sys.stderr)
            return
        stop.set()
        print("stopping: the running trials end at their next step", file=sys.stderr)
        with suppress(RuntimeError):  # not inside optimize (before or after the trials)
            study.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # once stopping, later signals are ignored up to the exit: Python resets its own handlers while
            # it shuts down, and a signal then would kill the process with SIGINT's default action
            signal.signal(sig, signal.SIG_IGN if stop.is_set() else handler)


def counted_trials(study: Any, before: int | None = None) -> int:
    """Trials that count toward ``--n-trials``: finished ones (complete or pruned, surplus excluded),
    plus, with ``before``, those still running that started before trial number ``before``."""
    from optuna.trial import TrialState

    finished = tuple(TrialState[name] for name in COUNTED)
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus") or trial.user_attrs.get("interrupted"):
            continue
        if trial.state in finished or (
            before is not None and trial.state == TrialState.RUNNING and trial.number < before
        ):
            count += 1
    return count


def study_signature(run: RunConfig, space_file: Path, fixed: dict[str, Any]) -> dict[str, Any]:
    """What makes two studies the same search: algo, env, budget, the config entry, the ``-params``
    fixed for every trial and the search space's source."""
    return {
        "algo": run.algo,
        "env": run.env,
        "n_timesteps": run.n_timesteps,
        # the entry by its file's name and its resolved values, not by where the file lies
        "config": Path(run.source.split("[")[0]).name + run.source[run.source.find("[") :],
        "config_sha256": hashlib.sha256(
            json.dumps(cfg.to_yaml_value(resolved_run(run)), sort_keys=True).encode()
        ).hexdigest(),
        "params": cfg.to_yaml_value(fixed),
        "search_space": space_file.name,
        "search_space_sha256": hashlib.sha256(space_file.read_bytes()).hexdigest(),
    }


def resolved_run(run: RunConfig) -> dict[str, Any]:
    """What a trial starts from besides its sample: the resolved hyperparameters and run keys."""
    keys = ("policy", "n_envs", "frame_stack", "env_wrapper", "env_kwargs", "eval_max_steps")
    return {"hyperparams": run.hyperparams, **{key: getattr(run, key) for key in keys}}


def sampler_seed(args: TuneOptions, created: bool) -> int:
    """``--seed`` for the process that creates the study (reproducible); every process that joins one
    (a rerun, another worker, another machine) seeds from its host and process, so that workers and
    reruns sample different parameters. Creation is decided by the storage, so two workers that start
    at the same moment on a new study cannot both take ``--seed``."""
    if created:
        return args.seed
    key = f"{args.seed}:{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def open_study(args: TuneOptions, url: str, signature: dict[str, Any]) -> Any:
    """Create or join the study; one that searched differently (another entry or search space) is refused."""
    assert args.study_name is not None
    pruner = make_pruner(args.pruner, args.n_startup_trials, args.n_evaluations)
    study, created = create_or_join(args.study_name, url, pruner, args.heartbeat_interval, args.grace_period)
    saved = study.user_attrs.get("signature")
    if saved is None:
        study.set_user_attr("signature", signature)
    else:  # a key that an older study did not record is not compared
        diff = [f"{k}: {saved[k]!r} there, {v!r} here" for k, v in signature.items() if k in saved and saved[k] != v]
        if diff:
            raise ValueError(f"study {args.study_name!r} in {url} has a different search: {'; '.join(diff)}")
    study.sampler = make_sampler(args.sampler, args.n_startup_trials, sampler_seed(args, created))
    return study


def best_entry(study: Any, run: RunConfig) -> dict[str, Any]:
    """The best trial's hyperparameters as a zoo_configs entry for ``train -conf``."""
    best = study.best_trial
    entry: dict[str, Any] = {"n_timesteps": run.n_timesteps, "policy": run.policy}
    for key in ("n_envs", "frame_stack", "env_wrapper", "env_kwargs"):
        value = getattr(run, key)
        if value not in (None, {}, 1) or key == "n_envs":
            entry[key] = value
    flags = PRESETS.get(run.algo, {})
    for key, value in best.user_attrs["hyperparams"].items():
        # The preset sets its component switches; n is a tuned value, not a switch, when n-step is on
        # (apply_preset drops an entry's n_steps for presets without n-step returns).
        if key not in flags or (key == "n_steps" and cfg.n_step_on(flags)):
            entry[key] = value
    return {run.env: entry}


def write_plots(study: Any, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's matplotlib plots are marked experimental
        for name, plot in (
            ("optimization_history", ovm.plot_optimization_history),
            ("param_importances", ovm.plot_param_importances),
            ("parallel_coordinate", ovm.plot_parallel_coordinate),
        ):
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. importances of one trial
                print(f"--plot: no {name} ({error})")
                continue
            figure = axes.figure if hasattr(axes, "figure") else np.ravel(axes)[0].figure
            figure.tight_layout()
            runs.write_atomically(folder / f"{name}.png", lambda tmp, f=figure: f.savefig(tmp, dpi=110, format="png"))
            plt.close(figure)
            written.append(folder / f"{name}.png")
    return written


def prepare(args: TuneOptions) -> tuple[RunConfig, Path, str, Any, ModuleType]:
    """Everything that can fail on bad input, before the study's folder is written."""
    check_algo(args.algo)
    if args.n_trials < 1:
        raise ValueError(f"--n-trials must be >= 1, got {args.n_trials}")
    for name in ("n_jobs", "n_evaluations", "eval_episodes", "seeds_per_trial"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_device(args.device)
    run = resolve_run(args.algo, args.env, args.params, args.conf_file, n_timesteps=args.n_timesteps)
    run.make_env().close()  # the env exists and has discrete actions
    args.study_name = args.study_name or f"{args.algo}-{runs.env_folder_name(args.env)}"
    folder = Path(args.folder) if args.folder else Path("logs") / "tuning" / args.study_name
    runs.check_writable(folder)
    space_file = search_space_file(args.algo)
    space = load_search_space(space_file)
    url = storage_url(args.storage, folder)
    if args.storage is None:
        folder.mkdir(parents=True, exist_ok=True)
    fixed = {key: value for key, value in run.hyperparams.items() if key in args.params}  # -params, resolved
    study = open_study(args, url, study_signature(run, space_file, fixed))
    return run, folder, url, study, space


def run_study(args: TuneOptions, run: RunConfig, folder: Path, url: str, study: Any, space: ModuleType) -> int:
    """Run trials until the study has ``n_trials`` finished ones, then write the best entry. Exit
    status 1 when trials of this call failed (with a count and the first error), 130 on Ctrl-C."""
    import optuna

    started = datetime.datetime.now()  # trials of this call (and of workers beside it) started since
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    print(f"study {args.study_name!r} on {url}: {counted_trials(study)} of {args.n_trials} trials finished")
    fixed = {key: value for key, value in run.hyperparams.items() if key in args.params}  # -params, resolved
    context = TrialContext(run, args, space, folder, fixed)
    stop_at_total = optuna.study.MaxTrialsCallback(
        args.n_trials, states=tuple(optuna.trial.TrialState[s] for s in COUNTED)
    )
    try:
        if counted_trials(study) < args.n_trials:
            with stopping_on_signals(context.stop, study):
                study.optimize(
                    lambda trial: objective(trial, context),
                    n_trials=args.n_trials,
                    n_jobs=args.n_jobs,
                    # after each trial, in its thread (where Optuna lets a study stop): no new trial once stopping
                    callbacks=[stop_at_total, lambda study, _: study.stop() if context.stop.is_set() else None],
                    catch=(Exception,),  # a failed trial is counted and reported, the study goes on
                )
    except KeyboardInterrupt:  # before the trials started
        context.stop.set()
    if context.stop.is_set():
        print("interrupted: the study keeps its finished trials; rerun to continue", file=sys.stderr)
        report(study, run, folder, args)
        return EXIT_INTERRUPTED
    status = report(study, run, folder, args)
    return report_failures(failed_since(study, started), "trial(s)") or status


def report(study: Any, run: RunConfig, folder: Path, args: TuneOptions) -> int:
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    counted = [t for t in pruned if not (t.user_attrs.get("surplus") or t.user_attrs.get("interrupted"))]
    print(f"{len(completed)} complete, {len(counted)} pruned")
    if not completed:
        print("no complete trial yet: no best hyperparameters")
        return 0
    best = study.best_trial
    entry = best_entry(study, run)
    runs.write_yaml(folder / "best.yml", entry)
    print(f"best trial {best.number}: mean return {best.value:.2f}; entry written to {folder / 'best.yml'}")
    print(f"train it: python -m rainbow_ext.train --algo {run.algo} --env {run.env} -conf {folder / 'best.yml'}")
    if args.plot:
        for path in write_plots(study, folder):
            print(f"wrote {path}")
    return 0
