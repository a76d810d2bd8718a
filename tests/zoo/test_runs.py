"""A run killed (SIGKILL: no chance to clean up) during each kind of write leaves every file whole, and
the one being replaced as it was: configs, evaluations, the best model, SB3's numbered checkpoints,
the resumable checkpoint (swapped in as a folder) and the final model. The run then continues from its
checkpoint. The slow test kills runs at moments chosen by the clock instead."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rainbow_ext import Rainbow
from rainbow_ext.zoo import runs
from tests.helpers.commands import FAST

KILLED_RUN = Path(__file__).parents[1] / "helpers" / "killed_run.py"
EVERY = "200"  # evaluations, SB3 checkpoints and resumable checkpoints, each every 200 steps


def train_args(folder: Path, steps: int) -> list[str]:
    args = ["--algo", "rainbow", "-n", str(steps), "--eval-freq", EVERY, "--eval-episodes", "1"]
    args += ["--save-freq", EVERY, "--checkpoint-freq", EVERY, "-f", str(folder), "--no-progress-bar"]
    return [*args, "--verbose", "0", "-params", *FAST]


def train(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rainbow_ext.train", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def check_every_file_whole(run_dir: Path) -> None:
    for name in ("config.yml", "args.yml"):
        if (run_dir / name).exists():
            assert isinstance(yaml.safe_load((run_dir / name).read_text()), dict), name
    if (run_dir / "evaluations.npz").exists():
        with np.load(run_dir / "evaluations.npz") as data:
            assert len(data["timesteps"]) == len(data["results"]) > 0
    for model in [run_dir / "best_model.zip", run_dir / "CartPole-v1.zip", *run_dir.glob("rl_model_*_steps.zip")]:
        if model.exists():
            Rainbow.load(model)


# (kind of file, which of its renames the kill comes at, what must be there after it)
KILLS = [
    ("config.yml", 1, "no config.yml"),
    ("evaluations.npz", 2, "the first evaluation"),
    ("best_model.zip", 2, "the first best model"),
    ("rl_model_<steps>_steps.zip", 2, "the first numbered checkpoint"),
    ("checkpoint.old", 1, "checkpoint: the first checkpoint, the second staged beside it"),
    ("checkpoint", 2, "checkpoint.old: the first checkpoint, moved aside, the second staged"),
    ("CartPole-v1.zip", 1, "no final model; the last checkpoint"),
]


@pytest.mark.parametrize(("kind", "nth", "left"), KILLS, ids=[f"{k}-{n}" for k, n, _ in KILLS])
def test_a_run_killed_during_a_write_keeps_the_previous_file(kind: str, nth: int, left: str, tmp_path: Path) -> None:
    log = tmp_path / "renames.log"
    command = [sys.executable, str(KILLED_RUN), kind, str(nth), str(log), "--"]
    result = subprocess.run([*command, *train_args(tmp_path, 600)], capture_output=True, text=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr  # the kill came: that write happened
    run_dir = tmp_path / "rainbow" / "CartPole-v1_1"
    check_every_file_whole(run_dir)
    if kind == "config.yml":
        assert not (run_dir / "config.yml").exists()
        return
    if kind == "evaluations.npz":
        with np.load(run_dir / "evaluations.npz") as data:
            assert list(data["timesteps"]) == [200]
    if kind == "best_model.zip":
        assert Rainbow.load(run_dir / "best_model.zip").num_timesteps == 200
    if kind.startswith("rl_model"):
        assert [p.name for p in run_dir.glob("rl_model_*_steps.zip")] == ["rl_model_200_steps.zip"]
    checkpoint = runs.latest_checkpoint(run_dir)
    assert checkpoint is not None, left
    if kind.startswith("checkpoint"):
        assert checkpoint.name == left.split(":")[0] and runs.checkpoint_seconds(checkpoint) > 0
        assert 200 <= Rainbow.load(checkpoint / "model.zip").num_timesteps < 400  # saved as a rollout starts
    if kind == "CartPole-v1.zip":
        assert not (run_dir / "CartPole-v1.zip").exists()
    if not (kind.startswith("checkpoint") or kind == "CartPole-v1.zip"):
        return  # continuing from a checkpoint is tested below and in tests/zoo/test_experiment.py
    if kind == "checkpoint":  # only checkpoint.old is whole: -i at the checkpoint's missing model names it
        missing = train(
            "--algo", "rainbow", "-i", str(run_dir / "checkpoint" / "model.zip"), *train_args(tmp_path, 600)[4:]
        )
        assert (
            missing.returncode == 2
            and f"the run's newest whole checkpoint is {checkpoint / 'model.zip'}" in missing.stderr
        )
    # -i a run folder: its newest whole model (checkpoint, checkpoint.old, or the final model)
    target = run_dir if kind.startswith("checkpoint") else checkpoint / "model.zip"
    resumed = train("--algo", "rainbow", "-i", str(target), *train_args(tmp_path, 600)[4:])
    assert resumed.returncode == 0, resumed.stderr
    if kind.startswith("checkpoint"):
        assert f"continuing {run_dir} from {checkpoint / 'model.zip'}" in resumed.stdout
    check_every_file_whole(run_dir)
    assert Rainbow.load(run_dir / "CartPole-v1.zip").num_timesteps >= 600
    with np.load(run_dir / "evaluations.npz") as data:
        assert list(data["timesteps"]) == sorted(set(data["timesteps"]))  # monotonic: no stretch repeated


@pytest.mark.slow
@pytest.mark.parametrize("delay", [2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 9.0, 11.0])
def test_a_run_killed_at_any_moment_leaves_only_whole_files(delay: float, tmp_path: Path) -> None:
    """SIGKILL at one of many moments (by the clock) of a run that writes every kind of file often."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rainbow_ext.train", *train_args(tmp_path, 4000)], stdout=subprocess.DEVNULL
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_dir = tmp_path / "rainbow" / "CartPole-v1_1"
    if not (run_dir / "config.yml").exists():
        pytest.skip(f"killed before the run folder was written ({delay} s)")
    check_every_file_whole(run_dir)
    checkpoint = runs.latest_checkpoint(run_dir)
    if checkpoint is not None:
        result = train("--algo", "rainbow", "-i", str(checkpoint / "model.zip"), *train_args(tmp_path, 4000)[4:])
        assert result.returncode == 0, result.stderr
        assert Rainbow.load(run_dir / "CartPole-v1.zip").num_timesteps >= 4000
