"""Atari learning curves on the CPU: Rainbow with ``zoo_configs/rainbow.yml``'s ``atari`` entry beside
SB3's DQN with rl-zoo3's Atari DQN settings, on the same env, for a few hundred thousand agent steps.

Both learn on SB3's Atari path (``make_atari_vec_env``: ``AtariWrapper``, 4-frame stacks, frame skip 4,
no sticky actions, a life loss ends the agent's episode, rewards clipped), one env each. The contenders:

- ``rainbow``: the ``rainbow`` preset with the ``atari`` entry (Hessel et al. 2018's settings: Adam lr
  6.25e-5, n = 3, 51 atoms on [-10, 10], target every 8,000 steps, learning starts 20,000, noisy nets,
  1M transitions in frame storage);
- ``sb3-dqn``: ``stable_baselines3.DQN`` with rl-zoo3's ``atari`` entry of ``hyperparams/dqn.yml``
  (buffer 100k with ``optimize_memory_usage``, Adam lr 1e-4, learning starts 100,000, target every
  1,000 steps, epsilon 1 -> 0.01 over the first 10% of the run). As with ``rl_zoo3 train -n``, the
  schedule spans the budget given here.

The score is the game score of training episodes (Dopamine's and the MinAtar paper's measure): at each
point, the mean score of the last ``--window`` finished games, against emulator frames (4 per agent
step). Random play scores -20.7 on Pong. After training, each run plays ``--eval-episodes`` greedy games
(noise off), capped at ``--eval-max-steps`` agent steps each.

Runs write ``<out>/<game>-<algo>-seed<k>.csv`` (step, score) and a ``.json`` summary with the wall
time. ``--resume`` keeps finished runs and continues the others from their last checkpoint (every
``--checkpoint-every`` steps: model, replay buffer, episodes so far), as ``minatar_curves.py`` does.

    python benchmarks/atari_curves.py --games Pong --algos rainbow sb3-dqn --steps 500000 --resume --plot
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
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from rainbow_ext import Rainbow
from rainbow_ext.envs import make_atari_vec_env
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.stats import trailing_mean

RANDOM_SCORE = {"Pong": -20.7, "Breakout": 1.7, "Freeway": 0.0, "Boxing": 0.1}
# rl-zoo3's hyperparams/dqn.yml, ``atari`` entry
ZOO_DQN_ATARI: dict[str, Any] = dict(
    buffer_size=100_000,
    learning_rate=1e-4,
    batch_size=32,
    learning_starts=100_000,
    target_update_interval=1_000,
    train_freq=4,
    gradient_steps=1,
    exploration_fraction=0.1,
    exploration_final_eps=0.01,
    optimize_memory_usage=True,
    replay_buffer_kwargs=dict(handle_timeout_termination=False),
)


# The run loop of this script: its own checkpoints (every --checkpoint-every steps, swapped in whole)
# and job pool. The other benchmarks run through ablate's grid; this one keeps its loop until the Pong
# runs started with it have finished (their checkpoints are in this format).


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


def curve(path: Path, checkpoints: np.ndarray, window: int) -> np.ndarray:
    """Mean return of the last ``window`` episodes finished by each checkpoint (NaN before the first)."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return trailing_mean(data[:, 0], data[:, 1], checkpoints, window)


class Progress(BaseCallback):
    """Prints the step, the mean score of the last ``window`` games and the speed every 10,000 steps."""

    def __init__(self, name: str, log: EpisodeLog, window: int, every: int = 10_000) -> None:
        super().__init__()
        self.name, self.log, self.window, self.every = name, log, window, every
        self.clock, self.mark = time.perf_counter(), 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.mark >= self.every:
            now = time.perf_counter()
            speed = (self.num_timesteps - self.mark) / (now - self.clock)
            scores = [r for _, r in self.log.episodes][-self.window :]
            score = f"{np.mean(scores):6.2f}" if scores else "   n/a"
            print(f"{self.name}: step {self.num_timesteps:>7}, score {score}, {speed:.1f} steps/s", flush=True)
            self.clock, self.mark = now, self.num_timesteps
        return True

    def _on_training_start(self) -> None:
        self.clock, self.mark = time.perf_counter(), self.num_timesteps


def env_id(game: str) -> str:
    return f"ALE/{game}-v5"


def build(algo: str, game: str, seed: int) -> Any:
    run = zoo_config("rainbow", env_id(game))  # the env settings of the ``atari`` entry, for both
    env = make_atari_vec_env(env_id(game), 1, seed=seed, n_stack=run.frame_stack or 4, **run.env_kwargs)
    if algo == "sb3-dqn":
        return DQN("CnnPolicy", env, seed=seed, verbose=0, **ZOO_DQN_ATARI)
    if algo != "rainbow":
        raise ValueError(f"unknown algo {algo!r}: rainbow or sb3-dqn")
    return Rainbow(run.policy, env, seed=seed, verbose=0, **run.hyperparams)


def run(
    algo: str,
    game: str,
    seed: int,
    steps: int,
    out: str,
    every: int,
    resume: bool,
    eval_episodes: int,
    eval_max_steps: int,
    window: int,
    threads: int,
) -> dict[str, Any]:
    th.set_num_threads(threads)
    log = EpisodeLog()
    ckpt = Path(out) / "checkpoints" / f"{game}-{algo}-seed{seed}-{steps}" if every > 0 else None
    name = f"{game} {algo} seed {seed}"
    model, state, seconds = learn_with_checkpoints(
        build(algo, game, seed), log, seed, steps, ckpt, every, resume, name, (Progress(name, log, window),)
    )
    path = Path(out) / f"{game}-{algo}-seed{seed}.csv"
    write_episodes(path, log.episodes)
    env_kwargs = zoo_config("rainbow", env_id(game)).env_kwargs
    eval_env = make_atari_vec_env(
        env_id(game), 1, seed=seed + 10_000, max_episode_frames=4 * eval_max_steps, **env_kwargs
    )
    scores, lengths = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, return_episode_rewards=True)
    result = dict(
        algo=algo,
        game=game,
        seed=seed,
        steps=steps,
        seconds=seconds,
        eval_scores=[float(s) for s in scores],
        eval_frames=[int(n) for n in lengths],
    )
    if state["resumed_at"]:
        result["resumed_at"] = state["resumed_at"]
    path.with_suffix(".json").write_text(json.dumps(result))  # written last: marks the run as finished
    if ckpt is not None:
        remove_checkpoint(ckpt)
    print(f"{game} {algo} seed {seed}: done in {seconds:.0f} s", flush=True)
    return {**result, "path": path}


def plot(results: list[dict[str, Any]], games: list[str], algos: list[str], steps: int, window: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = np.linspace(steps / 100, steps, 100)
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games, strict=True):
        for color, algo in enumerate(algos):
            runs = [r for r in results if r["game"] == game and r["algo"] == algo]
            for k, r in enumerate(runs):
                label = f"{algo} ({len(runs)} seed{'s' if len(runs) > 1 else ''})" if k == 0 else None
                ax.plot(4 * points, curve(r["path"], points, window), color=f"C{color}", label=label)
        if game in RANDOM_SCORE:
            ax.axhline(RANDOM_SCORE[game], color="gray", linestyle="--", label="random play")
        ax.set(title=f"{env_id(game)}", xlabel="emulator frames", ylabel=f"game score (last {window} games)")
        ax.legend()
    fig.tight_layout()
    path = out / "atari_curves.png"
    fig.savefig(path, dpi=100)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["Pong"], help="ALE game names (ALE/<game>-v5)")
    parser.add_argument("--algos", nargs="+", default=["rainbow", "sb3-dqn"], choices=["rainbow", "sb3-dqn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=500_000, help="agent steps per run (4 frames each)")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (2 for a run alone on 2 cores)")
    parser.add_argument("--window", type=int, default=20, help="games per point of the curve")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy games after training")
    parser.add_argument("--eval-max-steps", type=int, default=27_000, help="agent steps per evaluation game")
    parser.add_argument("--out", default="logs/atari-curves")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="keep finished runs; continue the rest from their checkpoints"
    )
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--report-only", action="store_true", help="tables and plot of the runs finished in --out; run nothing"
    )
    args = parser.parse_args()
    for name in ("steps", "workers", "threads", "window", "eval_episodes", "eval_max_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            a,
            g,
            s,
            args.steps,
            str(out),
            args.checkpoint_every,
            args.resume,
            args.eval_episodes,
            args.eval_max_steps,
            args.window,
            args.threads,
        )
        for g in args.games
        for a in args.algos
        for s in args.seeds
    ]
    results = run_jobs(run, jobs, out, args.resume, args.report_only, args.workers)
    fifths = np.arange(1, 6) * args.steps / 5
    print(f"\nScore (mean of the last {args.window} training games) by emulator frames; greedy games after training:\n")
    print(
        "| game | algo | seed | "
        + " | ".join(f"{4 * c / 1e6:.1f}M" for c in fifths)
        + " | evaluation, mean ± std | wall time |"
    )
    print("|---|---|---|" + "---|" * len(fifths) + "---|---|")
    for r in sorted(results, key=lambda r: (r["game"], args.algos.index(r["algo"]), r["seed"])):
        cells = " | ".join(f"{v:.1f}" for v in curve(r["path"], fifths, args.window))
        ev = np.array(r["eval_scores"])
        resumed = f" (resumed at {', '.join(map(str, r['resumed_at']))})" if r.get("resumed_at") else ""
        wall = f"{r['seconds'] / 3600:.2f} h{resumed}"
        print(f"| {r['game']} | {r['algo']} | {r['seed']} | {cells} | {ev.mean():.1f} ± {ev.std():.1f} | {wall} |")
    if args.plot:
        print(f"\ncurves: {plot(results, args.games, args.algos, args.steps, args.window, out)}")


if __name__ == "__main__":
    main()
