"""Run folders of the command-line tools: ``<log folder>/<algo>/<env>_<n>/`` as in rl-zoo3, written
safely (checked before anything is written, files replaced atomically), and a callback that turns
SIGINT/SIGTERM into a clean stop of SB3's training loop."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback

from rainbow_ext.files import replace_durably
from rainbow_ext.zoo.errors import UsageError

CONFIG_FILE = "config.yml"
ARGS_FILE = "args.yml"
COMMAND_FILE = "command.txt"
HISTORY_FILE = "history.yml"  # one entry per stretch of a run that was continued: step, command, arguments
BUFFER_FILE = "replay_buffer.pkl"
BEST_MODEL_FILE = "best_model.zip"
EVALUATIONS_FILE = "evaluations.npz"
EPISODES_FILE = "episodes.csv"  # every finished training episode (a whole game on Atari): step, return, length
CHECKPOINT_DIR = "checkpoint"  # the latest resumable state of a run: model, replay buffer, episodes, meta
MODEL_FILE = "model.zip"  # the model's file in a checkpoint
LOCK_FILE = ".continuing"  # held by the process that continues a run: host and pid
META_FILE = "meta.json"  # a checkpoint's step and training seconds; written last, it marks the checkpoint whole


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
        raise ValueError(f"log folder {folder} cannot be written ({existing} does not allow writing)")
    try:  # os.access says yes to root everywhere; /proc, read-only mounts and the like refuse the write itself
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".rainbow_ext-write-check-"))
    except OSError as error:
        raise ValueError(f"log folder {folder} cannot be written ({existing}: {error.strerror})") from error


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
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600, as open() would have made it
        replace_durably(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as file:
            yaml.safe_dump(data, file, sort_keys=False)

    write_atomically(path, write)


def append_history(run_dir: Path, entry: dict[str, Any]) -> None:
    """Add a continued stretch of the run to its history.yml (config.yml and args.yml keep the first)."""
    path = run_dir / HISTORY_FILE
    history = yaml.safe_load(path.read_text()) if path.exists() else []

    def write(tmp: Path) -> None:
        with open(tmp, "w") as file:
            yaml.safe_dump([*(history or []), entry], file, sort_keys=False)

    write_atomically(path, write)


def read_yaml(path: Path) -> dict[str, Any]:
    with open(path) as file:
        return yaml.safe_load(file)


def save_model(model: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: model.save(tmp))


def save_replay_buffer(model: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: model.save_replay_buffer(tmp))


def restore_evaluations(callback: EvalCallback, path: Path, up_to: int) -> None:
    """Continue an EvalCallback's history (evaluations.npz, best mean reward) from an earlier stretch of
    the run, up to step ``up_to`` (after a resume from a checkpoint, later ones are made again)."""
    if not path.exists():
        return
    with np.load(path) as data:
        keep = [i for i, t in enumerate(data["timesteps"]) if t <= up_to]
        callback.evaluations_timesteps = [int(data["timesteps"][i]) for i in keep]
        callback.evaluations_results = [list(data["results"][i]) for i in keep]
        callback.evaluations_length = [list(data["ep_lengths"][i]) for i in keep]
        if "seconds" in data.files and hasattr(callback, "evaluations_seconds"):
            callback.evaluations_seconds = [float(data["seconds"][i]) for i in keep]
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

    def restore(self, source: Path, up_to: int) -> None:
        """The episodes of an earlier stretch of the run (``source``: its episodes.csv, or a
        checkpoint's), those that ended by step ``up_to``."""
        if source.exists():
            with open(source, newline="") as file:
                rows = [(int(t), float(r), int(n)) for t, r, n in csv.reader(file) if t != "timestep"]
            self.episodes = [row for row in rows if row[0] <= up_to]

    def save(self, path: Path | None = None) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w") as file:
                file.write("timestep,return,length\n")
                file.writelines(f"{t},{r!r},{n}\n" for t, r, n in self.episodes)

        write_atomically(path or self.path, write)


class Checkpointer(BaseCallback):
    """Every ``every`` steps, as a rollout starts (the previous one stored and trained on, so a resumed
    run repeats nothing), the run's resumable state in ``<run>/checkpoint``: the model, its replay
    buffer, the training episodes and ``meta.json`` (the step, the training seconds so far). It is
    written beside the previous one and swapped in, so a kill at any moment leaves a whole checkpoint
    (:func:`latest_checkpoint` finds it)."""

    def __init__(self, run_dir: Path, every: int, total: int, episodes: EpisodeLog, seconds_before: float) -> None:
        super().__init__()
        self.path = run_dir / CHECKPOINT_DIR
        self.every, self.total, self.episodes = every, total, episodes
        self.seconds_before = seconds_before
        self.saved_at = 0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.saved_at = self.num_timesteps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps < self.saved_at + self.every or self.num_timesteps >= self.total:
            return
        self.save()

    def save(self) -> None:
        """Write the checkpoint now (also when a signal stopped the run)."""
        fresh, old = self.path.with_name(self.path.name + ".new"), self.path.with_name(self.path.name + ".old")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        self.model.save(fresh / MODEL_FILE)
        self.model.save_replay_buffer(fresh / BUFFER_FILE)
        self.episodes.save(fresh / EPISODES_FILE)
        best = self.path.parent / BEST_MODEL_FILE
        if best.exists():  # the best model as of this step: a resume must not keep a later one
            shutil.copy2(best, fresh / BEST_MODEL_FILE)
        seconds = self.seconds_before + time.perf_counter() - self.start
        (fresh / META_FILE).write_text(json.dumps({"step": self.num_timesteps, "seconds": seconds}))
        for written in fresh.iterdir():  # on disk before the swap that makes the checkpoint current
            with open(written, "rb") as file:
                os.fsync(file.fileno())
        if self.path.exists():  # else .old, if there, is the only whole checkpoint
            shutil.rmtree(old, ignore_errors=True)
            self.path.rename(old)
        fresh.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)
        self.saved_at = self.num_timesteps


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's whole checkpoint: ``<run>/checkpoint``, or the one a kill between the two renames
    left as ``checkpoint.old``; None without one."""
    path = run_dir / CHECKPOINT_DIR
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / META_FILE).exists():
            return candidate
    return None


def remove_checkpoint(run_dir: Path) -> None:
    path = run_dir / CHECKPOINT_DIR
    for leftover in (path, path.with_name(path.name + ".old"), path.with_name(path.name + ".new")):
        shutil.rmtree(leftover, ignore_errors=True)


def restore_best_model(checkpoint: Path, run_dir: Path, step: int) -> None:
    """The run's best model as of ``checkpoint`` (at ``step``): evaluations after it are dropped on
    resume, and so is a best model they saved."""
    saved, best = checkpoint / BEST_MODEL_FILE, run_dir / BEST_MODEL_FILE
    if saved.exists():
        write_atomically(best, lambda tmp: shutil.copy2(saved, tmp))
    else:  # none by then (or a checkpoint that does not keep one): only a later one goes
        drop_later_best_model(run_dir, step)


def saved_model_data(path: Path) -> dict[str, Any] | None:
    """The ``data`` record of an SB3 model zip (its attributes as JSON: ``num_timesteps``,
    ``policy_class``, ...), without loading the model; None when the file is missing or unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def drop_later_best_model(run_dir: Path, step: int) -> None:
    """A best model saved after ``step`` came from a stretch of the run that a resume from ``step``
    discards (with its evaluations): remove it, with a warning; the next better evaluation saves one."""
    best = run_dir / BEST_MODEL_FILE
    data = saved_model_data(best)
    try:
        saved_at = int(data["num_timesteps"]) if data is not None else None
    except (KeyError, TypeError, ValueError):
        saved_at = None
    if saved_at is not None and saved_at > step:
        best.unlink()
        warnings.warn(
            f"{best} was saved at step {saved_at:,}, after the step {step:,} the run continues from: removed",
            stacklevel=2,
        )


def checkpoint_seconds(checkpoint: Path) -> float:
    """The training seconds of the run up to ``checkpoint``."""
    return float(json.loads((checkpoint / META_FILE).read_text())["seconds"])


class WholeCheckpointCallback(CheckpointCallback):
    """SB3's ``CheckpointCallback`` (``--save-freq``: ``rl_model_<steps>_steps.zip``), each file written
    under a staging name and renamed into place, so a kill mid-save leaves no broken checkpoint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staged: list[tuple[str, str]] = []

    def _checkpoint_path(self, checkpoint_type: str = "", extension: str = "") -> str:
        final = super()._checkpoint_path(checkpoint_type, extension)
        staged = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.partial")
        self._staged.append((staged, final))
        return staged

    def _on_step(self) -> bool:
        self._staged = []
        result = super()._on_step()
        for staged, final in self._staged:
            if os.path.exists(staged):
                replace_durably(staged, final)
        return result


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


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` lives on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def continuing(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the run is continued: a second process that continues the same run is
    refused while this one lives. A lock whose process is gone (a killed run) is taken over; one held on
    another machine cannot be checked and is refused with its holder named."""
    path = run_dir / LOCK_FILE
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock_holder(path)
            if holder is None:
                path.unlink(missing_ok=True)  # a killed run's, or unreadable: taken over
                continue
            raise UsageError(
                f"{run_dir} is being continued by process {holder} (lock {path}); wait for it to end, or remove "
                "the lock if that process is gone"
            ) from None
        with os.fdopen(descriptor, "w") as file:
            file.write(me)
        break
    else:
        raise UsageError(f"cannot take the lock {path} of {run_dir}")
    try:
        yield
    finally:
        if path.exists() and path.read_text() == me:
            path.unlink(missing_ok=True)


def lock_holder(path: Path) -> str | None:
    """``"pid on host"`` of the live process that holds the lock at ``path``; None when there is none (no
    lock, a dead process on this machine, an unreadable lock)."""
    try:
        host, pid = path.read_text().split()
        process = int(pid)
    except (OSError, ValueError):
        return None
    if host == socket.gethostname() and not pid_alive(process):
        return None
    return f"{process} on {host}"
