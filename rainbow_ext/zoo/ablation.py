"""Ablation grids of ``python -m rainbow_ext.ablate`` on Optuna: variants x envs x seeds.

Each (variant, env, seed) is a trial of an Optuna study whose grid is enqueued once; workers pop
waiting trials from the study's storage, which hands each one out once, and train them through
:func:`~rainbow_ext.zoo.experiment.train_run`, as ``python -m rainbow_ext.train`` does. The default
storage is a SQLite file in the ablation folder (no server); a shared PostgreSQL storage runs one grid
across machines. A rerun skips finished runs and restarts unfinished ones (a run killed on this machine
at once; on another machine once its heartbeat is older than the grace period).
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rainbow_ext.envs.make import check_env_id
from rainbow_ext.presets import PRESETS
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.algorithms import ALGOS
from rainbow_ext.zoo.errors import EXIT_FAILED, EXIT_INTERRUPTED, UsageError
from rainbow_ext.zoo.experiment import prepare_run, train_run
from rainbow_ext.zoo.options import TrainOptions
from rainbow_ext.zoo.resolution import resolve_run
from rainbow_ext.zoo.resume import resume_point
from rainbow_ext.zoo.studies import (
    create_or_join,
    failed_since,
    open_storage,
    recording_errors,
    report_failures,
    storage_url,
)

DEFAULT_VARIANTS = ("rainbow", *(name for name in PRESETS if name.startswith("rainbow-no-")), "dqn")
GRID_FILE = "grid.yml"


@dataclass
class Grid:
    """What an ablation runs; saved in its folder and study, compared on every rerun."""

    variants: list[str]
    envs: list[str]
    seeds: list[int]
    n_timesteps: int | None
    eval_freq: int
    eval_episodes: int
    params: list[str] = field(default_factory=list)
    conf_files: dict[str, str] = field(default_factory=dict)  # algo -> config file (default: the shipped one)
    checkpoint_freq: int = 0  # steps between a run's resumable checkpoints (0: a rerun starts it over)
    entry_params: list[str] = field(default_factory=list)  # replace config entries' values (preset rules apply)
    n_eval_envs: int = 1  # evaluation envs stepped together (the games are shared out among them, as SB3 does)

    def points(self) -> list[dict[str, Any]]:
        return [{"variant": v, "env": e, "seed": s} for v in self.variants for e in self.envs for s in self.seeds]

    def differences(self, other: dict[str, Any]) -> list[str]:
        """What differs from a saved grid (one saved before a field existed has that field's default)."""
        mine = asdict(self)
        theirs = {**asdict(Grid([], [], [], None, 0, 0)), **other}
        return [f"{key}: {theirs[key]!r} there, {mine[key]!r} here" for key in mine if theirs[key] != mine[key]]

    def added_seeds(self, other: dict[str, Any]) -> list[int]:
        """The seeds this grid adds to a saved one that is otherwise the same (a rerun with a larger
        ``--seeds`` grows the grid: finished runs are kept); empty for any other change."""
        differences = self.differences(other)
        if len(differences) != 1 or not differences[0].startswith("seeds:"):
            return []
        saved = set(other["seeds"])
        return [s for s in self.seeds if s not in saved] if saved < set(self.seeds) else []


def make_grid(
    variants: list[str],
    envs: list[str],
    seeds: int,
    n_timesteps: int | None,
    eval_freq: int,
    eval_episodes: int,
    params: list[str],
    conf_files: dict[str, str] | None = None,
    checkpoint_freq: int = 0,
    entry_params: list[str] | None = None,
    n_eval_envs: int = 1,
) -> Grid:
    """The grid, checked: known algos (presets or baselines) without repeats, existing envs, at least
    one seed, readable ``-params``, config files for algos of the grid that exist."""
    if not variants or any(not v for v in variants):
        raise UsageError(
            f"--variants names no variant or an empty one ({','.join(variants)!r}); valid: {', '.join(ALGOS)}"
        )
    unknown = [v for v in variants if v not in ALGOS]
    if unknown:
        raise UsageError(f"unknown variant(s) {unknown}; valid: {', '.join(ALGOS)}")
    if len(set(variants)) != len(variants):
        raise UsageError(f"variants repeat: {variants}")
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    for env_id in envs:
        check_env_id(env_id)
    cfg.parse_params(params)  # well-formed -params
    conf_files = dict(conf_files or {})
    for algo, path in conf_files.items():
        if algo not in variants:
            raise UsageError(f"a config file for {algo!r}, which is not a variant of the grid ({', '.join(variants)})")
        if not Path(path).is_file():
            raise UsageError(f"config file {path} (for {algo}) does not exist")
    if checkpoint_freq < 0:
        raise UsageError(f"--checkpoint-freq must be >= 0, got {checkpoint_freq}")
    if n_eval_envs < 1:
        raise UsageError(f"--n-eval-envs must be >= 1, got {n_eval_envs}")
    entry_params = list(entry_params or [])
    for variant in variants:  # every run's config resolves, before the first run
        for env_id in envs:
            run = resolve_run(
                variant,
                env_id,
                cfg.parse_params(params),
                conf_files.get(variant),
                n_timesteps=n_timesteps,
                entry_params=cfg.parse_params(entry_params),
            )
            if not 0 < eval_freq <= run.n_timesteps:  # a run's score is its last evaluation
                raise UsageError(
                    f"--eval-freq {eval_freq} with {run.n_timesteps:,} steps ({variant} on {env_id}): no evaluation "
                    "would run; give --eval-freq between 1 and the run's steps"
                )
    grid = Grid(variants, envs, list(range(seeds)), n_timesteps, eval_freq, eval_episodes, params, conf_files)
    grid.checkpoint_freq, grid.entry_params, grid.n_eval_envs = checkpoint_freq, entry_params, n_eval_envs
    return grid


def conf_file_map(given: list[str], variants: list[str]) -> dict[str, str]:
    """``-conf`` values (``ALGO=FILE``, or ``FILE`` for every preset of the grid) as algo -> file."""
    files: dict[str, str] = {}
    presets = [v for v in variants if v in PRESETS]
    for value in given:
        algo, sep, path = value.partition("=")
        if sep and algo in ALGOS:
            files[algo] = path
        elif presets:
            files.update(dict.fromkeys(presets, value))
        else:
            raise UsageError(f"-conf {value}: the grid has no preset for it; give ALGO=FILE for a baseline")
    return files


def open_study(url: str, name: str, grid: Grid) -> Any:
    """Create or load the study; a study holding a different grid is an error naming the difference."""
    study, _ = create_or_join(name, url)
    saved = study.user_attrs.get("grid")
    if saved is not None and grid.added_seeds(saved) and categorical_seeds(study):
        raise ValueError(
            f"study {name!r} in {url} was made before a grid could grow by seeds; "
            "run the added seeds in another folder (-f)"
        )
    if saved is not None and grid.added_seeds(saved):
        print(f"seeds {grid.added_seeds(saved)} added to the grid; its finished runs are kept")
    if saved is None or grid.added_seeds(saved):
        study.set_user_attr("grid", asdict(grid))
    elif grid.differences(saved):
        raise ValueError(f"study {name!r} in {url} holds a different grid: " + "; ".join(grid.differences(saved)))
    return study


def categorical_seeds(study: Any) -> bool:
    """Whether the study's trials hold their seed as a categorical parameter, as studies made before
    grids could grow do: Optuna refuses a second kind of distribution for one name, so their trials
    keep it, and a changed list of choices is refused too, so they cannot grow."""
    from optuna.distributions import CategoricalDistribution

    trials = study.get_trials(deepcopy=False)
    return any(isinstance(t.distributions.get("seed"), CategoricalDistribution) for t in trials)


def enqueue_missing(study: Any) -> int:
    """Enqueue every grid point that has no finished, running or waiting trial; fail trials that a
    dead process on this machine left running (so they are enqueued again)."""
    from optuna.trial import TrialState

    grid = Grid(**study.user_attrs["grid"])
    host = socket.gethostname()
    covered = set()
    for trial in study.get_trials(deepcopy=False):
        mine = trial.state == TrialState.RUNNING and trial.user_attrs.get("host") == host
        # A trial whose pid is not written yet is being claimed by a live worker (host and pid are two writes).
        pid = trial.user_attrs.get("pid")
        if mine and pid is not None and not runs.pid_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)
            continue
        if trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            point = grid_point(trial)
            covered.add((point.get("variant"), point.get("env"), point.get("seed")))
    missing = [p for p in grid.points() if (p["variant"], p["env"], p["seed"]) not in covered]
    for point in missing:
        study.enqueue_trial(point)  # copies enqueued by concurrent ablations are pruned by taken_elsewhere
    return len(missing)


def run_folder(folder: Path, variant: str, env_id: str, seed: int) -> Path:
    return folder / "runs" / variant / runs.env_folder_name(env_id) / f"seed_{seed}"


def objective(trial: Any, folder: Path, track: dict[str, Any] | None) -> float:
    """One run of the grid, through ``python -m rainbow_ext.train``'s code; an error is recorded on the
    trial (``error``) before the trial fails."""
    return recording_errors(trial, lambda: run_grid_point(trial, folder, track))


def run_grid_point(trial: Any, folder: Path, track: dict[str, Any] | None) -> float:
    import optuna

    trial.set_user_attr("host", socket.gethostname())  # first: a failure from here on is this machine's
    trial.set_user_attr("pid", os.getpid())
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    if not frozen.system_attrs.get("fixed_params") and not frozen.params:  # another worker took the last run first
        trial.set_user_attr("spare", True)
        raise optuna.TrialPruned("no waiting run left")
    grid = Grid(**trial.study.user_attrs["grid"])
    variant = trial.suggest_categorical("variant", grid.variants)
    env_id = trial.suggest_categorical("env", grid.envs)
    if categorical_seeds(trial.study):
        seed = trial.suggest_categorical("seed", grid.seeds)
    else:  # an int range, so that a grid grown by seeds keeps one distribution per name
        seed = trial.suggest_int("seed", min(grid.seeds), max(grid.seeds))
    if taken_elsewhere(trial, {"variant": variant, "env": env_id, "seed": seed}):
        trial.set_user_attr("duplicate", True)
        raise optuna.TrialPruned("this run is finished or claimed by another trial")
    run_dir = run_folder(folder, variant, env_id, seed)
    resume = resume_point(run_dir) if run_dir.exists() else None
    if run_dir.exists() and resume is None:
        shutil.rmtree(run_dir)  # an unfinished earlier attempt, without a checkpoint to continue from
    options = TrainOptions(
        log_folder=folder / "runs",
        run_dir=None if resume is not None else run_dir,
        trained_agent=resume,
        checkpoint_freq=grid.checkpoint_freq,
        verbose=0,
        eval_freq=grid.eval_freq,
        eval_episodes=grid.eval_episodes,
        n_eval_envs=grid.n_eval_envs,
        progress_bar=False,
        track=track is not None,
        wandb_project_name=(track or {}).get("project", "rainbow_ext-ablation"),
        wandb_entity=(track or {}).get("entity"),
        command=f"python -m rainbow_ext.ablate (study {trial.study.study_name!r}, trial {trial.number})",
        args={"variant": variant, "env": env_id, "seed": seed, **asdict(grid)},
    )
    conf_file = grid.conf_files.get(variant)
    params = {} if resume is not None else cfg.parse_params(grid.params)  # a resumed model holds them
    session = prepare_run(
        options,
        variant,
        env_id,
        params,
        conf_file,
        seed=seed,
        n_timesteps=grid.n_timesteps,
        entry_params=cfg.parse_params(grid.entry_params),
    )
    result = train_run(session)
    trial.set_user_attr("seconds", result.seconds)  # training and its evaluations, over every stretch
    if result.interrupted_by is not None:
        raise KeyboardInterrupt(result.interrupted_by)
    with np.load(run_dir / runs.EVALUATIONS_FILE) as data:
        curve = [[int(t), float(np.mean(r))] for t, r in zip(data["timesteps"], data["results"], strict=True)]
    trial.set_user_attr("curve", curve)
    trial.set_user_attr("run_dir", str(run_dir))
    return curve[-1][1]


def grid_point(trial: Any) -> dict[str, Any]:
    """The grid point of a trial: its enqueued parameters (a running trial suggests them one by
    one, so its ``params`` can be partial), else its parameters (a retried trial is re-added with them)."""
    return trial.system_attrs.get("fixed_params") or trial.params


def taken_elsewhere(trial: Any, point: dict[str, Any]) -> bool:
    """True when another trial has this grid point finished, or is running or waiting for it with a
    lower number. Two ablations started at once on one storage may both enqueue a point; this rule
    lets exactly one of the copies run."""
    from optuna.trial import TrialState

    for other in trial.study.get_trials(deepcopy=False):
        if other.number == trial.number:
            continue
        if grid_point(other) != point:
            continue
        if other.state == TrialState.COMPLETE and "curve" in other.user_attrs:
            return True
        if other.state in (TrialState.RUNNING, TrialState.WAITING) and other.number < trial.number:
            return True
    return False


def worker(
    url: str,
    name: str,
    folder: str,
    track: dict[str, Any] | None,
    report_progress: bool = False,
    threads: int | None = None,
) -> None:
    """Run waiting trials of the study until none is left (with ``threads`` torch threads, when given)."""
    import optuna
    import torch as th
    from optuna.trial import TrialState

    if threads is not None:
        th.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    total = len(Grid(**study.user_attrs["grid"]).points())
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        # A run that raises is marked failed (and enqueued again by the next rerun); Ctrl-C stops the worker.
        try:
            study.optimize(lambda t: objective(t, Path(folder), track), n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            if not report_progress:  # a worker process: its run saved what it could; no traceback
                return
            raise
        if report_progress:
            done, running = progress(study)
            print(f"[{time.strftime('%H:%M:%S')}] {done}/{total} runs finished, {running} running", flush=True)


def run_workers(
    jobs: int, url: str, name: str, folder: Path, track: dict | None, study: Any, total: int, threads: int | None = None
) -> None:
    """``jobs`` worker processes on the storage, with the grid's progress printed as it changes. The
    cores are shared out among them unless ``threads`` says how many each takes (torch would give each
    process every core, and the processes' threads would then wait on each other)."""
    context = mp.get_context("spawn")
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    workers = [
        context.Process(target=worker, args=(url, name, str(folder), track, False, threads)) for _ in range(jobs)
    ]
    for process in workers:
        process.start()
    try:
        last = None
        while any(p.is_alive() for p in workers):
            state = progress(study)
            if state != last:
                now = time.strftime("%H:%M:%S")
                print(f"[{now}] {state[0]}/{total} runs finished, {state[1]} running", flush=True)
                last = state
            time.sleep(2)
    finally:
        for process in workers:  # on Ctrl-C the workers' runs save and stop by themselves
            process.join()


def progress(study: Any) -> tuple[int, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = sum(t.state == TrialState.COMPLETE and "curve" in t.user_attrs for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return done, running


def prepare(grid: Grid, folder: Path, storage: str | None, study_name: str) -> tuple[str, Any]:
    """Check the folder and open the study (a folder or study holding another grid is an error);
    returns the storage URL and the study."""
    runs.check_writable(folder)
    if (folder / GRID_FILE).exists():
        saved = runs.read_yaml(folder / GRID_FILE)
        if grid.differences(saved) and not grid.added_seeds(saved):
            raise UsageError(
                f"{folder} holds a different ablation grid: {'; '.join(grid.differences(saved))}; "
                "use another folder (-f) or the same arguments"
            )
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage, folder)
    return url, open_study(url, study_name, grid)


def run_ablation(
    grid: Grid,
    folder: Path,
    url: str,
    study: Any,
    jobs: int = 1,
    track: dict[str, Any] | None = None,
    report_only: bool = False,
    threads: int | None = None,
) -> int:
    """Run the grid's missing runs with ``jobs`` workers (each with ``threads`` torch threads; default: the
    cores shared out among them, or torch's own count for one worker), then write the report; the exit
    status."""
    runs.write_yaml(folder / GRID_FILE, asdict(grid))
    total = len(grid.points())
    started = datetime.datetime.now()  # trials of this call: started since, on this machine
    failed: list[Any] = []
    if not report_only:
        missing = enqueue_missing(study)
        done, _ = progress(study)
        print(f"{total} runs in the grid: {done} finished, {missing} to run (storage {url})")
        try:
            if jobs == 1:
                worker(url, study.study_name, str(folder), track, report_progress=True, threads=threads)  # here
            else:
                run_workers(jobs, url, study.study_name, folder, track, study, total, threads)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to continue (finished runs are kept)", file=sys.stderr)
            return EXIT_INTERRUPTED
        done, _ = progress(study)
        if done < total:
            print(f"{done}/{total} runs finished (others failed or run elsewhere); the report covers those")
        failed = failed_since(study, started, this_host=True)
        report_failures(failed, "run(s)")

    from rainbow_ext.zoo.ablation_report import write_report

    paths = write_report(study, folder)
    print("wrote " + ", ".join(str(p) for p in paths))
    return EXIT_FAILED if failed else 0
