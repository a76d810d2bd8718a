"""MinAtar learning curves: Rainbow, SB3 DQN and sb3-contrib QR-DQN on the same schedule, several
seeds, next to the DQN curves of the MinAtar paper (Young & Tian 2019).

Every contender uses the MinAtar network (one 3x3 convolution with 16 channels, then 128 units) and
the ``minatar`` entry of ``zoo_configs/`` (buffer 100k, batch 32, learning starts 1,000, an update
every 4 steps, target every 1,000, Adam lr 1e-4; Adam's eps is each library's default). Epsilon-greedy
contenders anneal epsilon from 1 to 0.1 over the first 100k steps (Young & Tian; over the whole
budget if it is shorter); Rainbow explores with noisy nets. The published DQN figures are a reference,
not the same schedule: Young & Tian update every step with RMSprop (lr 2.5e-4) from step 5,000.

The score is the return of training episodes, as in the MinAtar paper: at each checkpoint, the mean
return of the last 100 finished episodes. Each run's episodes go to ``<out>/<game>-<algo>-seed<k>.csv``
(columns: step, return) with a ``.json`` summary; the summary table prints the final score of every
seed, and ``--plot`` draws the curves (mean and min-max over seeds) into ``<out>/minatar.png``.
``--resume`` keeps the finished runs in ``--out``, so the grid can be filled a few runs at a time;
``--report-only`` prints the tables (and ``--plot``) of the finished runs without running any.

A run saves a checkpoint every ``--checkpoint-every`` steps (model, replay buffer, episodes so far)
under ``<out>/checkpoints``, and ``--resume`` continues a killed run from its last checkpoint. The
episode in progress at the checkpoint ends there (Rainbow stores it as a truncation, so no n-step
window crosses it), and the env and the random generators are reseeded with ``seed + num_timesteps``;
the run is not bit-identical to an uninterrupted one. The summary lists the steps it resumed at.
A checkpoint belongs to the code and config that wrote it: delete ``<out>/checkpoints`` after a change.

    python benchmarks/minatar_curves.py --games Breakout SpaceInvaders --algos rainbow sb3-dqn qrdqn --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from rainbow_ext import PRESETS, preset_flags
from rainbow_ext.zoo import build_model, zoo_config
from rainbow_ext.zoo.config import explores_with_epsilon

EXPLORATION_STEPS = 100_000
WINDOW = 100  # episodes per score
# Young & Tian 2019, DQN at 0.5M frames, read off their plots (approximate).
PUBLISHED_DQN = {"Breakout": 8.0, "SpaceInvaders": 30.0}


class EpisodeLog(BaseCallback):
    """Records (step, return) of every finished training episode (SB3's Monitor ``episode`` info)."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.episodes.append((self.num_timesteps, float(info["episode"]["r"])))
        return True


def build(algo: str, env_id: str, seed: int, steps: int) -> Any:
    """The algo's config entry as the train command reads it (``sb3-dqn``: SB3's DQN on the MinAtar
    network and Rainbow's schedule; ``qrdqn``: its own file), with epsilon annealed over 100k steps
    wherever the algo explores with epsilon."""
    fraction = f"exploration_fraction:{min(EXPLORATION_STEPS / steps, 1.0)}"
    explores = algo not in PRESETS or explores_with_epsilon(preset_flags(algo))
    run = zoo_config(algo, env_id, *([fraction] if explores else []))
    return build_model(run, run.make_env(seed=seed), seed=seed)


class Checkpointer(BaseCallback):
    """Saves the run every ``every`` steps into ``path``, as a rollout starts (the previous one stored
    and trained on, so a resumed run repeats nothing); written beside it and swapped in, so a kill
    mid-save keeps the previous checkpoint."""

    def __init__(self, path: Path, every: int, steps: int, log: EpisodeLog, state: dict[str, Any]) -> None:
        super().__init__()
        self.path, self.every, self.steps, self.log, self.state = path, every, steps, log, state
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps < self.state["saved_at"] + self.every or self.num_timesteps >= self.steps:
            return
        fresh = self.path.with_name(self.path.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        self.model.save(fresh / "model.zip")
        self.model.save_replay_buffer(fresh / "replay_buffer.pkl")
        write_episodes(fresh / "episodes.csv", self.log.episodes)
        seconds = self.state["seconds"] + time.perf_counter() - self.start
        meta = {**self.state, "saved_at": self.num_timesteps, "seconds": seconds}
        (fresh / "meta.json").write_text(json.dumps(meta))
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():  # else .old, if there, is the only whole checkpoint
            shutil.rmtree(old, ignore_errors=True)
            self.path.rename(old)
        fresh.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)
        self.state["saved_at"] = self.num_timesteps


def latest_checkpoint(path: Path) -> Path | None:
    """The checkpoint in ``path``, or the one a kill between the two renames left as ``.old``."""
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / "meta.json").exists():
            return candidate
    return None


def remove_checkpoint(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".old"), path.with_name(path.name + ".new")):
        shutil.rmtree(leftover, ignore_errors=True)


def write_episodes(path: Path, episodes: list[tuple[int, float]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["step", "return"])
        writer.writerows(episodes)


def read_episodes(path: Path) -> list[tuple[int, float]]:
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return [(int(step), float(ret)) for step, ret in data]


def learn_with_checkpoints(
    model: Any,
    log: EpisodeLog,
    seed: int,
    steps: int,
    ckpt: Path | None,
    every: int,
    resume: bool,
    name: str,
    callbacks: tuple[BaseCallback, ...] = (),
) -> tuple[Any, dict[str, Any], float]:
    """Train ``model`` to ``steps`` steps, saving a checkpoint into ``ckpt`` every ``every`` steps and,
    with ``resume``, continuing from the one found there. Returns the model (a loaded one after a
    resume), the run's state (``resumed_at``) and the training seconds over every part of the run."""
    state: dict[str, Any] = {"saved_at": 0, "seconds": 0.0, "resumed_at": []}
    if ckpt is not None and not resume:  # a fresh run: an earlier run's checkpoint is not its own
        remove_checkpoint(ckpt)
    saved = latest_checkpoint(ckpt) if ckpt is not None else None
    if saved is not None:
        env, cls, device = model.get_env(), type(model), model.device
        del model
        model = cls.load(saved / "model.zip", env=env, device=device)
        model.load_replay_buffer(saved / "replay_buffer.pkl")
        # load() drops _last_obs, so learn() resets the new env; Rainbow's learn() then ends the stored
        # episode as a truncation (end_stored_episodes). DQN and QR-DQN (one-step) need no such end.
        model.set_random_seed(seed + model.num_timesteps)  # not a replay of the run's first steps
        log.episodes = read_episodes(saved / "episodes.csv")
        state = json.loads((saved / "meta.json").read_text())
        state["resumed_at"] = [*state["resumed_at"], model.num_timesteps]
        print(f"{name}: resumed at step {model.num_timesteps}", flush=True)
    every_callback: list[BaseCallback] = [log, *callbacks]
    if ckpt is not None:
        every_callback.append(Checkpointer(ckpt, every, steps, log, state))
    start = time.perf_counter()
    model.learn(steps - model.num_timesteps, callback=every_callback, reset_num_timesteps=saved is None)
    return model, state, state["seconds"] + time.perf_counter() - start


def run(
    algo: str,
    game: str,
    seed: int,
    steps: int,
    out: str,
    every: int = 0,
    resume: bool = False,
) -> dict[str, Any]:
    th.set_num_threads(1)
    env_id = f"MinAtar/{game}-v1"
    log = EpisodeLog()
    ckpt = Path(out) / "checkpoints" / f"{game}-{algo}-seed{seed}-{steps}" if every > 0 else None
    name = f"{game} {algo} seed {seed}"
    model = build(algo, env_id, seed, steps)
    _, state, seconds = learn_with_checkpoints(model, log, seed, steps, ckpt, every, resume, name)
    path = Path(out) / f"{game}-{algo}-seed{seed}.csv"
    write_episodes(path, log.episodes)
    final = float(np.mean([r for _, r in log.episodes][-WINDOW:]))
    result = dict(algo=algo, game=game, seed=seed, steps=steps, final=final, seconds=seconds)
    if state["resumed_at"]:
        result["resumed_at"] = state["resumed_at"]
    path.with_suffix(".json").write_text(json.dumps(result))  # written last: marks the run as finished
    if ckpt is not None:
        remove_checkpoint(ckpt)
    return {**result, "path": path}


def finished(algo: str, game: str, seed: int, steps: int, out: str) -> dict[str, Any] | None:
    """A run already in ``out`` with the same budget (for --resume), else None."""
    path = Path(out) / f"{game}-{algo}-seed{seed}.csv"
    summary = path.with_suffix(".json")
    if not summary.exists():
        return None
    result = json.loads(summary.read_text())
    return {**result, "path": path} if result["steps"] == steps else None


def run_jobs(
    run_fn: Callable[..., dict[str, Any]], jobs: list[tuple], out: Path, resume: bool, report_only: bool, workers: int
) -> list[dict[str, Any]]:
    """Results of every job ``(algo, game, seed, steps, out, ...)``: finished runs found in ``out`` (with
    ``resume`` or ``report_only``) and, unless ``report_only``, the rest run ``workers`` at a time."""
    keep = resume or report_only
    done = [r for r in (finished(*job[:5]) for job in jobs) if r is not None] if keep else []
    todo = [job for job in jobs if not any((r["algo"], r["game"], r["seed"]) == job[:3] for r in done)]
    if report_only:
        print(f"{len(done)} finished runs in {out}; not run: {len(todo)}", flush=True)
        return done
    print(f"{len(todo)} runs to do, {len(done)} already in {out}", flush=True)
    with mp.get_context("spawn").Pool(workers) as pool:
        return done + pool.starmap(run_fn, todo)


def curve(path: Path, checkpoints: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Mean return of the last ``window`` episodes finished by each checkpoint (NaN before the first)."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    steps, returns = data[:, 0], data[:, 1]
    values = []
    for checkpoint in checkpoints:
        done = returns[steps <= checkpoint]
        values.append(done[-window:].mean() if len(done) else np.nan)
    return np.array(values)


def plot(results: list[dict[str, Any]], games: list[str], algos: list[str], steps: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = np.linspace(steps / 50, steps, 50)
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games, strict=True):
        for color, algo in enumerate(algos):  # one color per algo in every panel
            runs = [r for r in results if r["game"] == game and r["algo"] == algo]
            curves = np.array([curve(r["path"], checkpoints) for r in runs])
            if len(curves) == 0:
                continue
            seeds = f"{len(curves)} seed" + ("s" if len(curves) > 1 else "")
            ax.plot(checkpoints, np.nanmean(curves, axis=0), color=f"C{color}", label=f"{algo} ({seeds})")
            ax.fill_between(
                checkpoints, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=f"C{color}", alpha=0.2
            )
        if game in PUBLISHED_DQN:
            ax.axhline(PUBLISHED_DQN[game], color="gray", linestyle="--", label="paper DQN, 0.5M (own schedule)")
        ax.set(title=f"MinAtar {game}-v1", xlabel="environment steps", ylabel=f"return (last {WINDOW} episodes)")
        ax.legend()
    fig.tight_layout()
    path = out / "minatar.png"
    fig.savefig(path, dpi=100)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["Breakout", "SpaceInvaders"])
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn", "qrdqn"], help="presets, sb3-dqn, qrdqn")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    parser.add_argument("--out", default="logs/minatar-benchmark")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="keep finished runs; continue the rest from their checkpoints"
    )
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--report-only", action="store_true", help="tables and plot of the runs finished in --out; run nothing"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    jobs = [
        (a, g, s, args.steps, str(out), args.checkpoint_every, args.resume)
        for g in args.games
        for a in args.algos
        for s in args.seeds
    ]
    results = run_jobs(run, jobs, out, args.resume, args.report_only, args.workers)
    for r in results:
        resumed = f" (resumed at {', '.join(map(str, r['resumed_at']))})" if r.get("resumed_at") else ""
        score = f"final {r['final']:6.2f}, {r['seconds']:.0f} s"
        print(f"{r['game']:>14} {r['algo']:>18} seed {r['seed']}: {score}{resumed}")
    print("\n| game | algo | final score, mean ± std | seed: final | published DQN | median wall time (s) |")
    print("|---|---|---|---|---|---|")
    for game in args.games:
        for algo in args.algos:
            rows = sorted((r for r in results if r["game"] == game and r["algo"] == algo), key=lambda r: r["seed"])
            if not rows:
                print(f"| {game} | {algo} | not run | | {PUBLISHED_DQN.get(game, '-')} | |")
                continue
            finals = np.array([r["final"] for r in rows])
            per_seed = ", ".join(
                f"{r['seed']}: {r['final']:.2f}" + (" (resumed)" if r.get("resumed_at") else "") for r in rows
            )
            print(
                f"| {game} | {algo} | {finals.mean():.2f} ± {finals.std():.2f} | {per_seed} | "
                f"{PUBLISHED_DQN.get(game, '-')} | {np.median([r['seconds'] for r in rows]):.0f} |"
            )
    checkpoints = np.arange(1, 6) * args.steps / 5
    print("\nScore (mean ± std over seeds) at each fifth of the run:\n")
    print("| game | algo | seeds | " + " | ".join(f"{c / 1000:.0f}k" for c in checkpoints) + " |")
    print("|---|---|---|" + "---|" * len(checkpoints))
    for game in args.games:
        for algo in args.algos:
            rows = [r for r in results if r["game"] == game and r["algo"] == algo]
            if rows:
                curves = np.array([curve(r["path"], checkpoints) for r in rows])
                cells = " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd in zip(curves.mean(0), curves.std(0), strict=True))
                print(f"| {game} | {algo} | {len(rows)} | {cells} |")
    if args.plot:
        print(f"\ncurves: {plot(results, args.games, args.algos, args.steps, out)}")


if __name__ == "__main__":
    main()
