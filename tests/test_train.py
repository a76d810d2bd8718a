"""`python -m rainbow_ext.train` and `enjoy`: run folders, resolved configs, overrides, interruption and
resumption, offline tracking, videos, and bad input (exit status 2, nothing written)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml

from rainbow_ext import DataEfficientTrunk, Rainbow
from rainbow_ext.enjoy import main as enjoy_main
from rainbow_ext.train import main
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.algorithms import algo_class
from rainbow_ext.zoo.config import CONFIG_DIR
from rainbow_ext.zoo.resolution import resolve_run, zoo_config

# Small CartPole runs: the config's schedule, with fewer gradient steps per collection.
FAST = ["train_freq:16", "gradient_steps:2", "learning_starts:200"]


def run_command(module: str, *argv: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``python -m module argv``; ``env`` entries set (None: remove) environment variables."""
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={key: value for key, value in environ.items() if value is not None},
    )


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


def test_noisy_presets_drop_the_entrys_epsilon() -> None:
    assert "exploration_final_eps" not in zoo_config("rainbow", "CartPole-v1").hyperparams
    given = zoo_config("rainbow", "CartPole-v1", "exploration_final_eps:0.2")
    assert given.hyperparams["exploration_final_eps"] == 0.2  # given explicitly: applies
    assert zoo_config("dqn", "CartPole-v1").hyperparams["exploration_final_eps"] == 0.04
    # noisy nets switched off by -params: the run explores with epsilon, the entry's schedule applies
    assert zoo_config("rainbow", "CartPole-v1", "noisy:false").hyperparams["exploration_final_eps"] == 0.04


def test_presets_without_nstep_drop_the_entrys_n(tmp_path: Path) -> None:
    conf = tmp_path / "conf.yml"
    conf.write_text("CartPole-v1:\n  n_steps: 20\n")
    for algo, n in (("rainbow", 20), ("rainbow-no-nstep", 1), ("dqn", 1), ("nstep", 20)):
        assert zoo_config(algo, "CartPole-v1", conf_file=conf).hyperparams["n_steps"] == n, algo
    given = zoo_config("rainbow-no-nstep", "CartPole-v1", "n_steps:5", conf_file=conf)
    assert given.hyperparams["n_steps"] == 5  # given explicitly: applies


@pytest.mark.parametrize(
    ("entry", "algo", "against"),
    [
        ("dueling: false", "rainbow", "dueling: False (the preset: True)"),
        ("noisy: true", "dqn", "noisy: True (the preset: False)"),
        ("n_steps: 1", "rainbow", "n_steps: 1 (the preset: 3)"),
        ("prioritized: false", "per", "prioritized: False (the preset: True)"),
    ],
)
def test_an_entry_cannot_set_a_component_flag_against_its_preset(
    entry: str, algo: str, against: str, tmp_path: Path
) -> None:
    conf = tmp_path / "conf.yml"
    conf.write_text(f"CartPole-v1:\n  {entry}\n")
    with pytest.raises(cfg.ConfigError, match=re.escape(f"conf.yml['CartPole-v1'] sets {against} against the preset")):
        zoo_config(algo, "CartPole-v1", conf_file=conf)
    # the same flag as the preset's is no contradiction, and -params may change a flag on purpose (the
    # entry's then agrees with the run)
    assert zoo_config(algo, "CartPole-v1", entry.replace(" ", ""), conf_file=conf)
    flag = entry.split(":")[0]
    assert zoo_config(algo, "CartPole-v1", f"{flag}:{zoo_config(algo, 'CartPole-v1').hyperparams[flag]}")
    assert zoo_config(algo, "CartPole-v1", entry.replace(" ", "")).hyperparams[flag] == yaml.safe_load(
        entry.split(": ")[1]
    )


def test_der_config_resolves_for_every_preset() -> None:
    der = CONFIG_DIR / "rainbow_der.yml"
    run = zoo_config("rainbow", "ALE/Pong-v5", conf_file=der)
    assert (run.hyperparams["n_steps"], run.hyperparams["train_freq"], run.n_timesteps) == (20, 1, 100_000)
    network = {"features_extractor_class": DataEfficientTrunk, "net_arch": [256]}
    assert run.hyperparams["policy_kwargs"] == network and "exploration_fraction" not in run.hyperparams
    assert zoo_config("rainbow-no-noisy", "ALE/Pong-v5", conf_file=der).hyperparams["exploration_final_eps"] == 0.01


def test_qrdqn_baseline_trains(tmp_path: Path) -> None:
    from sb3_contrib import QRDQN

    argv = ["--algo", "qrdqn", "-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 0
    model = QRDQN.load(tmp_path / "qrdqn" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert model.policy_kwargs["n_quantiles"] == 10 and model.num_timesteps == 304  # 19 collections of 16


def test_sigint_saves_and_i_resumes(tmp_path: Path) -> None:
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

    result = run_command(
        "rainbow_ext.train", "--algo", "rainbow", "-i", str(run_dir / "CartPole-v1.zip"), "-f", str(tmp_path),
        "--eval-freq", "400", "--eval-episodes", "1", "--no-progress-bar", "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
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


def test_enjoy_records_a_video(tmp_path: Path, capsys) -> None:
    argv = ["--algo", "dqn", "-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 0
    assert enjoy_main(["--algo", "dqn", "-f", str(tmp_path), "-n", "2", "--record-video"]) == 0
    out = capsys.readouterr().out
    assert "episode 2: return" in out and "mean return" in out
    videos = list((tmp_path / "dqn" / "CartPole-v1_1" / "videos").glob("*.mp4"))
    assert videos and all(v.stat().st_size > 1000 for v in videos)


def write_config(tmp_path: Path, entry: str) -> str:
    path = tmp_path / "conf.yml"
    path.write_text(f"CartPole-v1:\n{entry}")
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "rainbw"], "unknown algo 'rainbw' (did you mean rainbow"),
        (["--env", "CartPol-v1"], "unknown env id 'CartPol-v1'; closest: CartPole-v1"),
        (["--env", "ALE/Pong-v9"], "the ids for 'pong' are: ALE/Pong-v5"),
        (["--env", "Pendulum-v1"], "Box action space"),
        (["-params", "learning_rate"], "malformed -params entry 'learning_rate'"),
        (["-params", "learning_rat:0.1"], "unknown hyperparameter(s) ['learning_rat'] in -params (did you mean"),
        (["-params", "batch_size:big"], "batch_size in -params must be int, got 'big'"),
        (["-params", "v_min:5", "v_max:1"], "v_min must be < v_max"),
        (["-conf", "{conf}/conf.yml", "--env", "CartPole-v1"], "valid keys:"),
        (["-i", "{conf}/missing.zip"], "no such file"),
        (["-i", "{conf}/corrupt.zip"], "not a readable rainbow model"),
        (["-f", "{conf}/a_file/logs"], "is not a directory"),
        (["-params", "policy_kwargs:{activation_fn: os.abort}"], "'os.abort' is outside the modules a config may"),
        (["-params", "policy_kwargs:{optimizer_class: torch.nn.ReLU}"], "ReLU' is not a subclass of torch.optim"),
        (["-params", "policy_kwargs:{activation_fn: torch.relu}"], "'torch.relu' is not a subclass of torch.nn.Module"),
        (["--n-eval-envs", "0"], "--n-eval-envs must be >= 1"),
        (["--eval-episodes", "0"], "--eval-episodes must be >= 1"),
        (["-params", "buffer_size:0"], "buffer_size must be an integer >= 1, got 0"),
        (["-params", "batch_size:0"], "batch_size must be an integer >= 1, got 0"),
        (["--algo", "sb3-dqn", "-params", "buffer_size:0"], "buffer_size must be an integer >= 1, got 0"),
        (["--algo", "qrdqn", "-params", "batch_size:0"], "batch_size must be an integer >= 1, got 0"),
        (["-conf", "{conf}"], "is a directory, not a YAML file"),
        (["--device", "gpu"], "--device gpu: not a device name"),
        (["-f", "/proc/rainbow-ext-logs"], "cannot be written"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "conf.yml").write_text("CartPole-v1:\n  n_timesteps: 100\n  learning_rat: 0.1\n")
    (conf_dir / "corrupt.zip").write_bytes(b"not a zip file")
    (conf_dir / "a_file").write_text("")
    logs = tmp_path / "logs"
    argv = [a.replace("{conf}", str(conf_dir)) for a in argv]
    if "-f" not in argv:
        argv += ["-f", str(logs)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not logs.exists()  # nothing written


@pytest.mark.skipif(th.cuda.is_available(), reason="CUDA is here")
def test_cuda_asked_for_without_cuda_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["--device", "cuda", "-f", str(tmp_path / "logs")]) == 2
    assert "--device cuda: no CUDA device here" in capsys.readouterr().err and not (tmp_path / "logs").exists()


def test_a_device_this_machine_lacks_is_refused(tmp_path: Path, capsys) -> None:
    index = th.cuda.device_count()  # one past the last CUDA device (cuda:0 without any)
    expected = "no CUDA device here" if index == 0 else f"this machine has {index} CUDA device(s)"
    assert main(["--device", f"cuda:{index}", "-f", str(tmp_path / "logs")]) == 2
    assert expected in capsys.readouterr().err
    if not th.backends.mps.is_available():
        assert main(["--device", "mps", "-f", str(tmp_path / "logs")]) == 2
        assert "--device mps: no MPS device here" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_a_run_without_updates_is_warned_about(tmp_path: Path) -> None:
    argv = ["-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar", "--verbose", "0"]
    with pytest.warns(UserWarning, match=r"learning_starts \(1,000\) >= n_timesteps \(300\)"):
        assert main(argv) == 0


def test_enjoy_needs_an_episode(tmp_path: Path, capsys) -> None:
    assert enjoy_main(["-n", "0", "-f", str(tmp_path)]) == 2
    assert "-n must be >= 1" in capsys.readouterr().err


def test_yaml_wrong_type_is_an_error(tmp_path: Path, capsys) -> None:
    conf = write_config(tmp_path, "  n_timesteps: 100\n  gamma: high\n")
    assert main(["-conf", conf, "-f", str(tmp_path / "logs")]) == 2
    assert "gamma in conf.yml['CartPole-v1'] must be int or float, got 'high'" in capsys.readouterr().err


def test_bad_input_exit_status_from_the_shell(tmp_path: Path) -> None:
    result = run_command("rainbow_ext.train", "--algo", "no-such-algo", "-f", str(tmp_path / "logs"))
    assert result.returncode == 2 and "unknown algo 'no-such-algo'" in result.stderr
    result = run_command("rainbow_ext.enjoy", "--algo", "rainbow", "-f", str(tmp_path / "logs"))
    assert result.returncode == 2 and "no runs of rainbow on CartPole-v1" in result.stderr


@pytest.mark.parametrize("config_file", ["rainbow.yml", "qrdqn.yml", "sb3_dqn.yml"])
def test_every_zoo_config_entry_is_valid(config_file: str) -> None:
    """Every entry passes the typed checks for its algo, and its policy_kwargs import."""
    algo = {"qrdqn.yml": "qrdqn", "sb3_dqn.yml": "sb3-dqn"}.get(config_file, "rainbow")
    entries = cfg.load_entries(cfg.CONFIG_DIR / config_file)
    assert {"default", "atari", "minatar", "CartPole-v1", "Acrobot-v1", "LunarLander-v3"} <= set(entries)
    assert {f"MinAtar/{game}-v1" for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")} <= set(
        entries
    )
    for key, entry in entries.items():
        cfg.check_keys(entry, algo_class(algo), key)
        resolved = cfg.apply_preset({}, entry, {}, key)
        assert isinstance(resolved.get("n_timesteps"), int), key


def test_rainbow_yml_atari_entry_is_the_papers() -> None:
    atari = zoo_config("rainbow", "ALE/Breakout-v5")
    h = atari.hyperparams
    assert (h["learning_rate"], h["n_steps"], h["target_update_interval"], h["learning_starts"]) == (
        6.25e-5,
        3,
        8000,
        20000,
    )
    assert (h["buffer_size"], h["n_atoms"], h["v_min"], h["v_max"]) == (1_000_000, 51, -10.0, 10.0)
    assert (h["per_alpha"], h["per_beta0"], h["batch_size"], h["train_freq"]) == (0.5, 0.4, 32, 4)
    assert atari.frame_stack == 4 and atari.policy == "CnnPolicy"


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


def test_numbers_in_exponent_form_are_numbers(tmp_path: Path) -> None:
    """YAML 1.2 floats: 1e-3 and 1e6 are numbers in configs and -params (PyYAML alone reads strings)."""
    assert cfg.parse_params(["learning_rate:1e-3", "n:1e6", "a:[64, 64]", "b:true", "c:auto"]) == {
        "learning_rate": 0.001,
        "n": 1e6,
        "a": [64, 64],
        "b": True,
        "c": "auto",
    }
    conf = write_config(tmp_path, "  n_timesteps: 1e6\n  learning_rate: 6.25e-5\n  buffer_size: 5E4\n")
    run = resolve_run("rainbow", "CartPole-v1", conf_file=conf)
    assert run.n_timesteps == 1_000_000 and run.hyperparams["learning_rate"] == 6.25e-5
    assert run.hyperparams["buffer_size"] == 50_000


def test_key_types_come_from_the_constructors_type_hints() -> None:
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN

    rainbow = cfg.key_types(Rainbow)
    assert rainbow["noisy"] == (bool,) and rainbow["n_atoms"] == (int,) and rainbow["v_min"] == (int, float)
    assert rainbow["frame_storage"] == (bool, type(None)) and rainbow["train_freq"] == (int, list)
    assert rainbow["buffer_size"] == (int, float)  # a count may be written 1e6
    assert rainbow["learning_rate"] == (int, float, str)  # a number or lin_<start>
    assert set(rainbow["policy_kwargs"]) == {dict, str, type(None)}
    assert "noisy" not in cfg.key_types(DQN) and cfg.key_types(QRDQN)["max_grad_norm"] == (int, float, type(None))
    # every constructor argument of Rainbow that a YAML value can stand for is checked
    unchecked = set(cfg.valid_keys(Rainbow)) - set(rainbow)
    assert unchecked == {"replay_buffer_class"}  # a class: SB3 takes the class itself
    with pytest.raises(cfg.ConfigError, match=r"noisy in -params must be bool, got 1 \(int\)"):
        cfg.check_keys({"noisy": 1}, Rainbow, "-params")
    with pytest.raises(cfg.ConfigError, match=re.escape("batch_size in x must be int, got 32.0")):
        cfg.check_keys({"batch_size": 32.0}, Rainbow, "x")
    for count in (float("inf"), float("nan"), 1.5):
        with pytest.raises(cfg.ConfigError, match="buffer_size must be a whole number"):
            cfg.apply_preset({}, {"buffer_size": count}, {}, "x")


def test_params_given_with_i_are_read_as_a_config_entrys() -> None:
    kwargs = cfg.load_overrides({"learning_rate": "lin_1e-3", "buffer_size": 1e5, "n_timesteps": 5}, Rainbow)
    assert kwargs["buffer_size"] == 100_000 and isinstance(kwargs["buffer_size"], int)
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and "n_timesteps" not in kwargs  # a run key
    with pytest.raises(cfg.ConfigError, match="unknown hyperparameter"):
        cfg.load_overrides({"learnig_rate": 1e-3}, Rainbow)


def test_entry_params_follow_the_presets_rules() -> None:
    """A grid's values for the config entry (an epsilon schedule for its budget) reach only the runs
    the preset's rules give them to, unlike -params."""
    entry = {"exploration_fraction": 0.2, "n_steps": 5}
    assert "exploration_fraction" not in resolve_run("rainbow", "CartPole-v1", entry_params=entry).hyperparams
    assert resolve_run("rainbow", "CartPole-v1", entry_params=entry).hyperparams["n_steps"] == 5
    dqn = resolve_run("dqn", "CartPole-v1", entry_params=entry).hyperparams
    assert dqn["exploration_fraction"] == 0.2 and dqn["n_steps"] == 1
    assert (
        resolve_run("sb3-dqn", "CartPole-v1", entry_params={"exploration_fraction": 0.2}).hyperparams[
            "exploration_fraction"
        ]
        == 0.2
    )


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


def test_enjoy_falls_back_from_a_broken_best_model(tmp_path: Path, capsys) -> None:
    argv = ["--algo", "dqn", "-n", "300", "--eval-freq", "300", "--eval-episodes", "1", "-f", str(tmp_path)]
    assert main([*argv, "--no-progress-bar", "--verbose", "0"]) == 0
    (tmp_path / "dqn" / "CartPole-v1_1" / "best_model.zip").write_bytes(b"broken")
    capsys.readouterr()
    assert enjoy_main(["--algo", "dqn", "-f", str(tmp_path), "-n", "1"]) == 0
    captured = capsys.readouterr()
    assert "best_model.zip (" in captured.err and "is not a readable dqn model" in captured.err
    assert "CartPole-v1.zip on CartPole-v1" in captured.out  # the final model played instead


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


@pytest.mark.parametrize("command", ["train", "tune", "ablate", "enjoy"])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(command: str, monkeypatch, capsys) -> None:
    import importlib

    module = importlib.import_module(f"rainbow_ext.{command}")

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "parser", lambda: type("P", (), {"parse_args": interrupt})())
    assert module.main([]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps (Linux)")
@pytest.mark.parametrize("command", ["train", "tune", "ablate", "enjoy"])
def test_ctrl_c_while_a_command_imports_exits_130_without_a_traceback(command: str, tmp_path: Path) -> None:
    """The second or so in which ``python -m rainbow_ext.<command>`` imports torch and SB3, before its
    main runs: the command installs the quiet exit before its other imports (rainbow_ext.startup)."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"rainbow_ext.{command}", "--help"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    maps = Path(f"/proc/{process.pid}/maps")
    while process.poll() is None and "libtorch" not in maps.read_text(errors="replace"):
        time.sleep(0.005)  # torch starts to load after the command installed the quiet exit
    process.send_signal(signal.SIGINT)  # torch's Python side and SB3 still take a second to import
    out, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (130, "interrupted\n")
    assert "usage" not in out  # stopped before main ran
    assert list(tmp_path.iterdir()) == []


def test_only_a_command_run_with_m_exits_quietly_while_starting() -> None:
    from rainbow_ext.startup import running_a_command

    assert running_a_command(["python", "-m", "rainbow_ext.train", "-n", "5"])
    assert running_a_command(["python3", "-X", "dev", "-m", "rainbow_ext.ablate"])
    assert not running_a_command(["python", "-m", "pytest", "-m", "slow"])
    assert running_a_command(["python", "-W", "ignore", "-mrainbow_ext.tune"])
    assert not running_a_command(["python", "script.py", "-m", "rainbow_ext.train"])  # the script's own -m
    assert not running_a_command(["python", "-c", "pass", "-m", "rainbow_ext.train"])
    assert not running_a_command(["python", "-m"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this test process: untouched


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
