"""Ablations: ``python -m rainbow_ext.ablate --env MinAtar/Breakout-v1 --seeds 5 -n 500000 --jobs 2``.

Runs the grid variants x envs x seeds (default variants: rainbow, every rainbow-no-X, and dqn), each
run through the same code as ``python -m rainbow_ext.train``, then writes the results to the
ablation folder (``-f``, default ``logs/ablations/<study name>``):

- ``curves.csv``: every evaluation of every run (variant, env, seed, timestep, return);
- ``final_scores.csv`` and ``summary.csv``: the last evaluation of each run, and per variant and env
  the mean with a 95% Student-t interval and the interquartile mean (IQM) with a 95% stratified
  bootstrap interval (Agarwal et al. 2021), human-normalized as well for Atari games;
- ``curves.png`` (mean evaluation return per variant with its 95% interval band, one panel per env)
  and ``final_scores.png`` (IQM and interval per variant);
- ``report.md`` embedding the table and plots.

Each (variant, env, seed) is a trial of an Optuna study whose grid is enqueued once; workers pop
waiting trials from the study's storage, which hands each one out once. The default storage is a
SQLite file in the ablation folder (no server); ``--storage postgresql://...`` started on several
machines runs one grid across them. A rerun skips finished runs and restarts unfinished ones (a run
killed on this machine at once; on another machine once its heartbeat is older than the grace period).
"""

from __future__ import annotations

import argparse
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

from rainbow_ext import runs
from rainbow_ext.envs.make import check_env_id
from rainbow_ext.presets import PRESETS
from rainbow_ext.studies import open_storage

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

    def points(self) -> list[dict[str, Any]]:
        return [{"variant": v, "env": e, "seed": s} for v in self.variants for e in self.envs for s in self.seeds]

    def differences(self, other: dict[str, Any]) -> list[str]:
        mine = asdict(self)
        return [f"{key}: {other.get(key)!r} there, {mine[key]!r} here" for key in mine if other.get(key) != mine[key]]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rainbow_ext.ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", action="append", default=None, help="env id; repeat for several (default CartPole-v1)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated presets")
    p.add_argument("--seeds", type=int, default=5, help="runs per variant and env (seeds 0..N-1)")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="per run (default: the config's)")
    p.add_argument("--eval-freq", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes on this machine")
    p.add_argument("-f", "--folder", default=None, help="ablation folder (default logs/ablations/<study name>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the folder)")
    p.add_argument("--study-name", default="ablation")
    p.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE", help="for every run")
    p.add_argument("--report-only", action="store_true", help="write the results of the finished runs and stop")
    p.add_argument("--track", action="store_true", help="wandb runs grouped by variant, tagged with their flags")
    p.add_argument("--wandb-project-name", default="rainbow_ext-ablation")
    p.add_argument("--wandb-entity", default=None)
    return p


def check_args(args: argparse.Namespace) -> Grid:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in PRESETS]
    if unknown or not variants:
        raise ValueError(f"unknown variant(s) {unknown}; valid: {', '.join(PRESETS)}")
    if len(set(variants)) != len(variants):
        raise ValueError(f"variants repeat: {variants}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    envs = args.env or ["CartPole-v1"]
    for env_id in envs:
        check_env_id(env_id)
    return Grid(
        variants, envs, list(range(args.seeds)), args.n_timesteps, args.eval_freq, args.eval_episodes, args.hyperparams
    )


def storage_url(args: argparse.Namespace, folder: Path) -> str:
    return args.storage or f"sqlite:///{(folder / 'study.db').resolve()}"


def open_study(url: str, name: str, grid: Grid) -> Any:
    """Create or load the study; a study holding a different grid is an error naming the difference."""
    import optuna

    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize", load_if_exists=True)
    saved = study.user_attrs.get("grid")
    if saved is None:
        study.set_user_attr("grid", asdict(grid))
    elif grid.differences(saved):
        raise ValueError(f"study {name!r} in {url} holds a different grid: " + "; ".join(grid.differences(saved)))
    return study


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
        if mine and pid is not None and not pid_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)
            continue
        if trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            point = grid_point(trial)
            covered.add((point.get("variant"), point.get("env"), point.get("seed")))
    missing = [p for p in grid.points() if (p["variant"], p["env"], p["seed"]) not in covered]
    for point in missing:
        study.enqueue_trial(point)  # copies enqueued by concurrent ablations are pruned by taken_elsewhere
    return len(missing)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_folder(folder: Path, variant: str, env_id: str, seed: int) -> Path:
    return folder / "runs" / variant / runs.env_folder_name(env_id) / f"seed_{seed}"


def objective(trial: Any, folder: Path, track: dict[str, Any] | None) -> float:
    """One run of the grid, through ``python -m rainbow_ext.train``'s code."""
    import optuna

    from rainbow_ext import train

    frozen = trial.storage.get_trial(trial._trial_id)
    if not frozen.system_attrs.get("fixed_params") and not frozen.params:  # another worker took the last run first
        trial.set_user_attr("spare", True)
        raise optuna.TrialPruned("no waiting run left")
    grid = Grid(**trial.study.user_attrs["grid"])
    variant = trial.suggest_categorical("variant", grid.variants)
    env_id = trial.suggest_categorical("env", grid.envs)
    seed = trial.suggest_categorical("seed", grid.seeds)
    if taken_elsewhere(trial, {"variant": variant, "env": env_id, "seed": seed}):
        trial.set_user_attr("duplicate", True)
        raise optuna.TrialPruned("this run is finished or claimed by another trial")
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    run_dir = run_folder(folder, variant, env_id, seed)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished earlier attempt
    argv = ["--algo", variant, "--env", env_id, "--seed", str(seed), "--eval-freq", str(grid.eval_freq)]
    argv += ["--eval-episodes", str(grid.eval_episodes), "-f", str(folder / "runs"), "--run-dir", str(run_dir)]
    argv += ["--no-progress-bar", "--verbose", "0"]
    if grid.n_timesteps is not None:
        argv += ["-n", str(grid.n_timesteps)]
    if grid.params:
        argv += ["-params", *grid.params]
    if track:
        argv += ["--track", "--wandb-project-name", track["project"]]
        argv += ["--wandb-entity", track["entity"]] if track.get("entity") else []
    args = train.parser().parse_args(argv)
    result = train.prepare(args).train(argv)
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


def worker(url: str, name: str, folder: str, track: dict[str, Any] | None, report_progress: bool = False) -> None:
    """Run waiting trials of the study until none is left."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    total = len(Grid(**study.user_attrs["grid"]).points())
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        # A run that raises is marked failed (and enqueued again by the next rerun); Ctrl-C stops the worker.
        study.optimize(lambda t: objective(t, Path(folder), track), n_trials=1, catch=(Exception,))
        if report_progress:
            done, running = progress(study)
            print(f"[{time.strftime('%H:%M:%S')}] {done}/{total} runs finished, {running} running", flush=True)


def run_workers(jobs: int, url: str, name: str, folder: Path, track: dict | None, study: Any, total: int) -> None:
    """``jobs`` worker processes on the storage, with the grid's progress printed as it changes."""
    context = mp.get_context("spawn")
    workers = [context.Process(target=worker, args=(url, name, str(folder), track)) for _ in range(jobs)]
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        grid = check_args(args)
        folder = Path(args.folder) if args.folder else Path("logs") / "ablations" / args.study_name
        runs.check_writable(folder)
        if (folder / GRID_FILE).exists():
            saved = runs.read_yaml(folder / GRID_FILE)
            if grid.differences(saved):
                raise ValueError(
                    f"{folder} holds a different ablation grid: {'; '.join(grid.differences(saved))}; "
                    "use another folder (-f) or the same arguments"
                )
        folder.mkdir(parents=True, exist_ok=True)
        url = storage_url(args, folder)
        study = open_study(url, args.study_name, grid)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runs.write_yaml(folder / GRID_FILE, asdict(grid))
    total = len(grid.points())

    if not args.report_only:
        missing = enqueue_missing(study)
        done, _ = progress(study)
        print(f"{total} runs in the grid: {done} finished, {missing} to run (storage {url})")
        track = {"project": args.wandb_project_name, "entity": args.wandb_entity} if args.track else None
        try:
            if args.jobs == 1:
                worker(url, args.study_name, str(folder), track, report_progress=True)  # in this process
            else:
                run_workers(args.jobs, url, args.study_name, folder, track, study, total)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to continue (finished runs are kept)", file=sys.stderr)
            return 130
        done, _ = progress(study)
        if done < total:
            print(f"{done}/{total} runs finished (others failed or run elsewhere); the report covers those")

    from rainbow_ext.ablation_report import write_report

    paths = write_report(study, folder)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
