"""One training run through rainbow_ext.zoo (as `python -m rainbow_ext.train` does it): run folders and
resolved configs, baselines, interruption and resumption, offline tracking, Atari and MinAtar, saving."""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from rainbow_ext import Rainbow
from rainbow_ext.enjoy import main as enjoy_main
from rainbow_ext.train import main
from rainbow_ext.zoo import runs
from tests.helpers.commands import FAST, run_command


def test_run_folder_and_resolved_config(tmp_path: Path) -> None:
    result = run_command(
        "rainbow_ext.train",
        *("--algo", "rainbow-no-noisy", "-n", "600", "--eval-freq", "300", "--eval-episodes", "2"),
        *("--save-freq", "300", "-f", str(tmp_path), "--no-progress-bar", "--verbose", "0"),
        *("-params", *FAST, "learning_rate:0.0123", "per_alpha:0.6"),
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "rainbow-no-noisy" / "CartPole-v1_1"
    names = {p.name for p in run_dir.iterdir()}
    assert names >= {
        "config.yml",
        "args.yml",
        "command.txt",
        "CartPole-v1.zip",
        "best_model.zip",
        "evaluations.npz",
        "rl_model_300_steps.zip",
        "tensorboard",
    }
    assert not [p.name for p in run_dir.iterdir() if p.is_file() and p.name.endswith(".partial")]  # renamed whole
    assert Rainbow.load(run_dir / "rl_model_300_steps.zip").num_timesteps == 300
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert "-params" in (run_dir / "command.txt").read_text()
    with np.load(run_dir / "evaluations.npz") as evaluations:
        assert list(evaluations["timesteps"]) == [300, 600] and evaluations["results"].shape == (2, 2)

    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert (config["algo"], config["env"], config["n_timesteps"], config["seed"]) == (
        "rainbow-no-noisy",
        "CartPole-v1",
        600,
        0,
    )
    used = config["hyperparams"]
    model = Rainbow.load(run_dir / "CartPole-v1.zip")
    # -params overrides reached the model; the rest is the CartPole entry of zoo_configs/rainbow.yml
    assert used["learning_rate"] == model.learning_rate == 0.0123
    assert used["per_alpha"] == model.per_alpha == 0.6
    assert used["train_freq"] == [16, "step"] and used["gradient_steps"] == model.gradient_steps == 2
    assert used["target_update_interval"] == model.target_update_interval == 10
    assert used["batch_size"] == model.batch_size == 64 and used["v_max"] == model.v_max == 100.0
    assert used["policy_kwargs"]["net_arch"] == model.policy_kwargs["net_arch"] == [256, 256]
    # the component flags of the preset, and its epsilon schedule (no noisy nets: the entry's applies)
    assert (used["noisy"], used["double_q"], used["dueling"], used["distributional"]) == (False, True, True, True)
    assert (used["n_steps"], used["prioritized"]) == (3, True)
    assert used["exploration_fraction"] == model.exploration_fraction == 0.16
    assert used["exploration_final_eps"] == model.exploration_final_eps == 0.04
    for key, value in used.items():  # every scalar recorded is the model's own
        if isinstance(value, (int, float, bool)) and hasattr(model, key):
            assert getattr(model, key) == value, key


def test_qrdqn_baseline_trains(tmp_path: Path) -> None:
    from sb3_contrib import QRDQN

    argv = ["--algo", "qrdqn", "-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 0
    model = QRDQN.load(tmp_path / "qrdqn" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert model.policy_kwargs["n_quantiles"] == 10 and model.num_timesteps == 304  # 19 collections of 16


def test_sigint_saves_and_i_resumes(tmp_path: Path) -> None:
    tmp_path = tmp_path / "a folder's name"  # the printed command must survive spaces and quotes
    argv = ["--algo", "rainbow", "-n", "6000", "--eval-freq", "400", "--eval-episodes", "1", "-f", str(tmp_path)]
    argv += ["--no-progress-bar", "--verbose", "0", "-params", *FAST]
    process = subprocess.Popen([sys.executable, "-m", "rainbow_ext.train", *argv], stdout=subprocess.PIPE, text=True)
    run_dir = tmp_path / "rainbow" / "CartPole-v1_1"
    deadline = time.time() + 180
    while not (run_dir / "evaluations.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130 and "SIGINT: stopped at step" in out

    interrupted = Rainbow.load(run_dir / "CartPole-v1.zip")
    assert 400 <= interrupted.num_timesteps < 6000
    interrupted.load_replay_buffer(run_dir / "replay_buffer.pkl")
    buffer = interrupted.replay_buffer
    # SB3 drops the transition of the step whose callback stops training; all others are kept
    assert buffer.size() == interrupted.num_timesteps - 1
    assert buffer.max_priority > 1.0  # priorities were learned and kept
    before = np.loadtxt(run_dir / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    # CartPole's episodes: lengths equal returns (+1 a step), and they end by the interruption
    assert len(before) and (before[:, 1] == before[:, 2]).all() and before[-1, 0] <= interrupted.num_timesteps
    assert before[:, 2].sum() <= interrupted.num_timesteps

    # the printed "Continue with:" command, read back as a shell reads it
    printed = shlex.split(out.split("Continue with: ")[1].splitlines()[0])
    assert printed == ["python", "-m", "rainbow_ext.train", "--algo", "rainbow", "--env", "CartPole-v1", "-i",
                       str(run_dir / "CartPole-v1.zip")]  # fmt: skip
    result = run_command(
        *printed[2:],
        "-f",
        str(tmp_path),
        "--eval-freq",
        "400",
        "--eval-episodes",
        "1",
        "--no-progress-bar",
        "--verbose",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert not (run_dir / "replay_buffer.pkl").exists()  # the stop's buffer is not the finished model's
    assert not (run_dir / runs.LOCK_FILE).exists()  # released
    assert f"loaded the replay buffer ({buffer.size()} transitions)" in result.stdout
    resumed = Rainbow.load(run_dir / "CartPole-v1.zip")
    assert resumed.num_timesteps >= 6000  # the original budget, counted on from the interruption
    assert resumed._total_timesteps == 6000  # so schedules (beta, learning rate) ended where planned
    with np.load(run_dir / "evaluations.npz") as evaluations:
        steps = list(evaluations["timesteps"])
    assert steps == sorted(steps) and steps[0] <= interrupted.num_timesteps < steps[-1]  # history kept
    assert len(list((tmp_path / "rainbow").iterdir())) == 1  # continued in its own folder
    after = np.loadtxt(run_dir / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    assert (after[: len(before)] == before).all() and len(after) > len(before)  # the log went on
    assert (np.diff(after[:, 0]) > 0).all() and after[-1, 0] <= resumed.num_timesteps


def test_track_writes_an_offline_wandb_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "WANDB_API_KEY": None, "WANDB_MODE": None, "NETRC": None}  # no key anywhere
    result = run_command(
        "rainbow_ext.train", "--algo", "dqn", "-n", "300", "--eval-freq", "-1", "-f", str(tmp_path / "logs"),
        "--no-progress-bar", "--verbose", "0", "--track", "-params", *FAST, "learning_rate:0.000777", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "logs" / "dqn" / "CartPole-v1_1" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    record = runs[0].read_bytes()  # wandb's transaction log: the config's JSON is stored as text
    for needle in (b"hyperparams", b"0.000777", b"exploration_final_eps", b"prioritized", b"CartPole-v1"):
        assert needle in record, needle


def test_a_run_without_updates_is_warned_about(tmp_path: Path) -> None:
    argv = ["-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar", "--verbose", "0"]
    with pytest.warns(UserWarning, match=r"learning_starts \(1,000\) >= n_timesteps \(300\)"):
        assert main(argv) == 0


@pytest.mark.parametrize(
    ("env_id", "vec_env", "frame_stack"), [("ALE/Pong-v5", "ale", 4), ("MinAtar/Breakout-v1", "dummy", 0)]
)
def test_train_on_atari_and_minatar(env_id: str, vec_env: str, frame_stack: int, tmp_path: Path) -> None:
    argv = ["--env", env_id, "--vec-env", vec_env, "-n", "200", "--eval-freq", "-1", "-f", str(tmp_path)]
    params = ["buffer_size:500", "learning_starts:100", "batch_size:8"]
    assert main([*argv, "--no-progress-bar", "--verbose", "0", "-params", *params]) == 0
    run_dir = tmp_path / "rainbow" / f"{env_id.replace('/', '-')}_1"
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    # frame_stack has one meaning, the env's stack; frame storage keeps as many frames per observation
    assert config["frame_stack"] == (frame_stack or None) and config["policy"] == "CnnPolicy"
    assert "frame_stack" not in config["hyperparams"] and config["hyperparams"]["frame_storage"] is None
    assert Rainbow.load(run_dir / f"{env_id.replace('/', '-')}.zip").frame_stack == frame_stack
    assert (run_dir / f"{env_id.replace('/', '-')}.zip").is_file()


def test_i_names_the_algorithm_of_a_file_and_misses_no_buffer_silently(tmp_path: Path, capsys) -> None:
    from sb3_contrib import QRDQN

    QRDQN("MlpPolicy", "CartPole-v1").save(tmp_path / "qrdqn.zip")
    assert main(["--algo", "rainbow", "-i", str(tmp_path / "qrdqn.zip"), "-f", str(tmp_path / "logs")]) == 2
    assert "this file is a qrdqn model, not rainbow" in capsys.readouterr().err
    Rainbow("MlpPolicy", "CartPole-v1").save(tmp_path / "rainbow.zip")
    assert main(["--algo", "qrdqn", "-i", str(tmp_path / "rainbow.zip"), "-f", str(tmp_path / "logs")]) == 2
    assert "this file is a Rainbow (preset) model, not qrdqn" in capsys.readouterr().err
    argv = ["-i", str(tmp_path / "rainbow.zip"), "-n", "200", "--eval-freq", "-1", "-f", str(tmp_path / "logs")]
    with pytest.warns(UserWarning, match="no replay buffer beside it"):
        assert main([*argv, "--no-progress-bar", "--verbose", "0"]) == 0


def test_run_files_have_the_usual_mode_and_a_resume_keeps_the_first_config(tmp_path: Path) -> None:
    argv = ["-n", "1200", "--eval-freq", "600", "--eval-episodes", "1", "-f", str(tmp_path), "--no-progress-bar"]
    argv += ["--verbose", "0", "-params", *FAST]
    assert main(argv) == 0
    run_dir = tmp_path / "rainbow" / "CartPole-v1_1"
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.yml", "args.yml", "CartPole-v1.zip", "episodes.csv"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert [path.name for path in run_dir.iterdir() if path.name.startswith(".")] == []  # no staging left
    config, args = (run_dir / "config.yml").read_text(), (run_dir / "args.yml").read_text()
    resume = ["--algo", "rainbow", "-i", str(run_dir / "CartPole-v1.zip"), "-n", "1800", "-f", str(tmp_path)]
    resume += ["--eval-freq", "600", "--no-progress-bar", "--verbose", "0"]
    assert main(resume) == 2  # evaluations of 5 episodes cannot go on a history of 1-episode ones
    assert main([*resume, "--eval-episodes", "1"]) == 0
    assert (run_dir / "config.yml").read_text() == config and (run_dir / "args.yml").read_text() == args
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2
    (stretch,) = yaml.safe_load((run_dir / "history.yml").read_text())
    assert stretch["from_step"] >= 1200 and stretch["args"]["n_timesteps"] == 1800 and "-i" in stretch["command"]


def test_a_full_disk_at_the_final_save_names_the_files_kept(tmp_path: Path, capsys, monkeypatch) -> None:
    import errno

    from rainbow_ext.zoo import runs

    def full(model: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "save_model", full)
    argv = ["-n", "400", "--eval-freq", "200", "--eval-episodes", "1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 1
    err = capsys.readouterr().err
    assert "could not save the run at step" in err and "No space left on device" in err
    assert "last whole files" in err and "best_model.zip" in err


def test_a_best_model_from_a_dropped_stretch_is_not_kept(tmp_path: Path) -> None:
    """-i <run>/<env>.zip after a stretch that was killed: its evaluations are dropped, and so is the best
    model it saved (it cannot be the run's best as of the step the run continues from)."""
    argv = ["-n", "600", "--eval-freq", "200", "--eval-episodes", "1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 0
    run_dir = tmp_path / "rainbow" / "CartPole-v1_1"
    final = Rainbow.load(run_dir / "CartPole-v1.zip")
    final.num_timesteps = 400  # as if <env>.zip were from step 400 and the best model from a later stretch
    final.save(run_dir / "CartPole-v1.zip")
    later = Rainbow.load(run_dir / "CartPole-v1.zip")
    later.num_timesteps = 500
    later.save(run_dir / "best_model.zip")
    resume = ["--algo", "rainbow", "-i", str(run_dir / "CartPole-v1.zip"), "-n", "600", "-f", str(tmp_path)]
    with pytest.warns(UserWarning, match="saved at step 500, after the step 400"):
        assert main([*resume, "--eval-freq", "200", "--eval-episodes", "1", "--no-progress-bar", "--verbose", "0"]) == 0
    with np.load(run_dir / "evaluations.npz") as evaluations:
        steps = [int(t) for t in evaluations["timesteps"]]
    assert steps == sorted(set(steps))
    if (run_dir / "best_model.zip").exists():  # saved again by this stretch, or not at all
        assert Rainbow.load(run_dir / "best_model.zip").num_timesteps != 500


def _finished_run(folder: Path, *extra: str) -> Path:
    argv = ["--algo", "dqn", "-n", "300", "--eval-freq", "-1", "-f", str(folder), "--no-progress-bar", "--verbose", "0"]
    assert main([*argv, *extra, "-params", *FAST]) == 0
    return folder / "dqn" / "CartPole-v1_1"


def test_two_continuations_of_one_run_are_refused_and_a_killed_ones_lock_is_taken_over(tmp_path: Path, capsys) -> None:
    run_dir = _finished_run(tmp_path)
    argv = [
        "--algo",
        "dqn",
        "-i",
        str(run_dir),
        "-n",
        "600",
        "--eval-freq",
        "-1",
        "--no-progress-bar",
        "--verbose",
        "0",
    ]
    lock = run_dir / runs.LOCK_FILE
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # a live process (this one) continues it
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(argv) == 2
    assert f"the run is being continued by process {os.getpid()}" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing changed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{socket.gethostname()} {int(dead.stdout)}")  # the lock of a killed run
    with pytest.warns(UserWarning, match="no replay buffer beside it"):
        assert main(argv) == 0
    assert Rainbow.load(run_dir / "CartPole-v1.zip").num_timesteps >= 600 and not lock.exists()


def test_a_stale_replay_buffer_is_not_loaded_silently(tmp_path: Path) -> None:
    run_dir = _finished_run(tmp_path, "--save-replay-buffer")
    buffer, model = run_dir / runs.BUFFER_FILE, run_dir / "CartPole-v1.zip"
    old = model.stat().st_mtime - 60
    os.utime(buffer, (old, old))  # as an earlier stop leaves it beside a later model
    argv = ["--algo", "dqn", "-i", str(model), "-n", "600", "--eval-freq", "-1", "--no-progress-bar", "--verbose", "0"]
    with pytest.warns(UserWarning, match="is older than the model .* not loaded"):
        assert main(argv) == 0


def test_a_damaged_zip_or_another_algorithms_model_is_named_not_a_traceback(tmp_path: Path, capsys) -> None:
    run_dir = _finished_run(tmp_path)
    model = run_dir / "CartPole-v1.zip"
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[: len(data) // 2] if item.filename == "policy.pth" else data)  # cut inside
    assert main(["--algo", "dqn", "-i", str(damaged), "-f", str(tmp_path / "logs")]) == 2
    assert f"-i {damaged}: not a readable dqn model" in capsys.readouterr().err
    # enjoy on a folder whose model is another algorithm's: the file is named for what it is
    other = tmp_path / "qrdqn" / "CartPole-v1_1"
    other.mkdir(parents=True)
    model.rename(other / "CartPole-v1.zip")
    assert enjoy_main(["--algo", "qrdqn", "-f", str(tmp_path), "-n", "1"]) == 2
    assert "this file is a Rainbow (preset) model, not qrdqn" in capsys.readouterr().err


def test_a_read_only_run_folder_is_refused_before_anything_is_loaded(tmp_path: Path, capsys, monkeypatch) -> None:
    run_dir = _finished_run(tmp_path)
    before = {p.name: p.stat().st_mtime for p in run_dir.iterdir()}
    if os.geteuid() == 0:  # root writes into read-only folders: the OS's answer stands in for a read-only mount
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != run_dir and access(path, mode))
    run_dir.chmod(0o555)
    try:
        assert main(["--algo", "dqn", "-i", str(run_dir), "-n", "600", "--eval-freq", "-1"]) == 2
        assert f"log folder {run_dir} cannot be written" in capsys.readouterr().err
    finally:
        run_dir.chmod(0o755)
    assert {p.name: p.stat().st_mtime for p in run_dir.iterdir()} == before  # nothing changed


def test_i_a_folder_that_is_no_run(tmp_path: Path, capsys) -> None:
    assert main(["--algo", "dqn", "-i", str(tmp_path), "-f", str(tmp_path / "logs")]) == 2
    assert "a folder, but not a run folder (no config.yml)" in capsys.readouterr().err
