"""Run folders of the command-line tools: ``<log folder>/<algo>/<env>_<n>/`` as in rl-zoo3, written
safely (checked before anything is written, files replaced atomically), and a callback that turns
SIGINT/SIGTERM into a clean stop of SB3's training loop."""

from __future__ import annotations

import csv
import os
import re
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

CONFIG_FILE = "config.yml"
ARGS_FILE = "args.yml"
COMMAND_FILE = "command.txt"
BUFFER_FILE = "replay_buffer.pkl"
BEST_MODEL_FILE = "best_model.zip"
EVALUATIONS_FILE = "evaluations.npz"
EPISODES_FILE = "episodes.csv"  # every finished training episode (a whole game on Atari): step, return, length


def env_folder_name(env_id: str) -> str:
    """``ALE/Pong-v5`` -> ``ALE-Pong-v5`` (rl-zoo3's convention for ids with a namespace)."""
    return env_id.replace("/", "-")


def model_file(run_dir: Path, env_id: str) -> Path:
    return run_dir / f"{env_folder_name(env_id)}.zip"


def check_writable(folder: Path) -> None:
    """A ValueError unless ``folder`` exists as a writable directory or can be created."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"log folder {folder} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"log folder {folder} is not writable ({existing} does not allow writing)")


def new_run_dir(log_folder: Path, algo: str, env_id: str) -> Path:
    """Create ``<log_folder>/<algo>/<env>_<n>`` with n one more than the largest there (from 1)."""
    parent = log_folder / algo
    parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(env_folder_name(env_id))}_(\d+)$")
    taken = [int(m.group(1)) for p in parent.iterdir() if (m := pattern.match(p.name))]
    for n in range(max(taken, default=0) + 1, max(taken, default=0) + 1000):
        run_dir = parent / f"{env_folder_name(env_id)}_{n}"
        try:
            run_dir.mkdir()  # fails if a concurrent run took this number
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder under {parent}")  # pragma: no cover


def latest_run_dir(log_folder: Path, algo: str, env_id: str) -> Path | None:
    pattern = re.compile(rf"^{re.escape(env_folder_name(env_id))}_(\d+)$")
    parent = log_folder / algo
    runs = [(int(m.group(1)), p) for p in parent.glob("*") if (m := pattern.match(p.name))] if parent.is_dir() else []
    return max(runs)[1] if runs else None


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename over ``path``: an interrupted save never leaves half a file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as file:
            yaml.safe_dump(data, file, sort_keys=False)

    write_atomically(path, write)


def read_yaml(path: Path) -> dict[str, Any]:
    with open(path) as file:
        return yaml.safe_load(file)


def save_model(model: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: model.save(tmp))


def save_replay_buffer(model: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: model.save_replay_buffer(tmp))


def restore_evaluations(callback: EvalCallback, path: Path) -> None:
    """Continue an EvalCallback's history (evaluations.npz, best mean reward) from an earlier run."""
    if not path.exists():
        return
    with np.load(path) as data:
        callback.evaluations_timesteps = [int(t) for t in data["timesteps"]]
        callback.evaluations_results = [list(r) for r in data["results"]]
        callback.evaluations_length = [list(n) for n in data["ep_lengths"]]
    if callback.evaluations_results:
        callback.best_mean_reward = max(float(np.mean(r)) for r in callback.evaluations_results)


class EpisodeLog(BaseCallback):
    """Every finished training episode, from the ``episode`` info of SB3's Monitor (on Atari, a whole
    game with its unclipped score): ``(timestep, return, length)``, written to ``path`` as CSV by
    :meth:`save` (atomically) and read back by :meth:`restore` to continue a run."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.episodes: list[tuple[int, float, int]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None:
                self.episodes.append((self.num_timesteps, float(episode["r"]), int(episode["l"])))
        return True

    def restore(self, up_to: int) -> None:
        """The episodes of an earlier stretch of the run, those that ended by step ``up_to``."""
        if self.path.exists():
            with open(self.path, newline="") as file:
                rows = [(int(t), float(r), int(n)) for t, r, n in csv.reader(file) if t != "timestep"]
            self.episodes = [row for row in rows if row[0] <= up_to]

    def save(self) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w") as file:
                file.write("timestep,return,length\n")
                file.writelines(f"{t},{r!r},{n}\n" for t, r, n in self.episodes)

        write_atomically(self.path, write)


class StopOnSignal(BaseCallback):
    """SIGINT (Ctrl-C) or SIGTERM ends ``learn`` at the next environment step, between SB3's own
    updates, so the model and replay buffer can be saved whole. A second signal stops at once."""

    def __init__(self) -> None:
        super().__init__()
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        """Install the handlers for the duration of a ``with`` block (training)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def _on_step(self) -> bool:
        return self.received is None
