"""The commands (`python -m rainbow_ext.train|enjoy|tune|ablate`): bad input (exit status 2, nothing
written), devices, enjoy, and Ctrl-C at any moment (exit status 130, no traceback)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch as th

from rainbow_ext.enjoy import main as enjoy_main
from rainbow_ext.train import main
from tests.helpers.commands import FAST, run_command

BASE_EXTRACTOR = "stable_baselines3.common.torch_layers.BaseFeaturesExtractor"


def test_enjoy_records_a_video(tmp_path: Path, capsys) -> None:
    argv = ["--algo", "dqn", "-n", "300", "--eval-freq", "-1", "-f", str(tmp_path), "--no-progress-bar"]
    assert main([*argv, "--verbose", "0", "-params", *FAST]) == 0
    assert enjoy_main(["--algo", "dqn", "-f", str(tmp_path), "-n", "2", "--record-video"]) == 0
    out = capsys.readouterr().out
    assert "episode 2: return" in out and "mean return" in out
    videos = list((tmp_path / "dqn" / "CartPole-v1_1" / "videos").glob("*.mp4"))
    assert videos and all(v.stat().st_size > 1000 for v in videos)


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
        # classes checked by use, not by membership: each refused with the reason, before any run folder
        (["-params", "policy_kwargs:{activation_fn: torch.nn.Module}"], "Module cannot serve as an activation"),
        (["-params", "policy_kwargs:{activation_fn: torch.nn.Linear}"], "missing 2 required positional arguments"),
        (["-params", "policy_kwargs:{optimizer_class: torch.optim.LBFGS}"], "LBFGS.step needs a closure"),
        (["-params", "policy_kwargs:{optimizer_class: torch.optim.Optimizer}"], "Optimizer implements no step"),
        (
            ["-params", f"policy_kwargs:{{features_extractor_class: {BASE_EXTRACTOR}}}"],
            "the network cannot be built or run with policy_kwargs ['features_extractor_class']",
        ),
        (["-params", "policy_kwargs:{features_extractor_class: NatureCNNTrunk}"], "NatureCNNTrunk needs a channel"),
        # nested values named with their key and where they were given
        (["-params", "policy_kwargs:{net_arch: abc}"], "policy_kwargs['net_arch'] in -params must be a list of layer"),
        (["-params", "policy_kwargs:{net_arch: [64, 0]}"], "policy_kwargs['net_arch'] in -params must be a list"),
        (["-params", "policy_kwargs:{netarch: [64]}"], "policy_kwargs (the entry"),
        (["--algo", "qrdqn", "-params", "policy_kwargs:{n_quantiles: 0}"], "n_quantiles in policy_kwargs of -params"),
        (["--n-eval-envs", "0"], "--n-eval-envs must be >= 1"),
        (["--eval-episodes", "0"], "--eval-episodes must be >= 1"),
        (["-params", "buffer_size:0"], "buffer_size in -params must be an integer >= 1"),
        (["-params", "batch_size:0"], "batch_size in -params must be an integer >= 1"),
        (["--algo", "sb3-dqn", "-params", "buffer_size:0"], "buffer_size in -params must be an integer >= 1"),
        (["--algo", "qrdqn", "-params", "batch_size:0"], "batch_size in -params must be an integer >= 1"),
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


def test_enjoy_needs_an_episode(tmp_path: Path, capsys) -> None:
    assert enjoy_main(["-n", "0", "-f", str(tmp_path)]) == 2
    assert "-n must be >= 1" in capsys.readouterr().err


def test_bad_input_exit_status_from_the_shell(tmp_path: Path) -> None:
    result = run_command("rainbow_ext.train", "--algo", "no-such-algo", "-f", str(tmp_path / "logs"))
    assert result.returncode == 2 and "unknown algo 'no-such-algo'" in result.stderr
    result = run_command("rainbow_ext.enjoy", "--algo", "rainbow", "-f", str(tmp_path / "logs"))
    assert result.returncode == 2 and "no runs of rainbow on CartPole-v1" in result.stderr


def test_enjoy_falls_back_from_a_broken_best_model(tmp_path: Path, capsys) -> None:
    argv = ["--algo", "dqn", "-n", "300", "--eval-freq", "300", "--eval-episodes", "1", "-f", str(tmp_path)]
    assert main([*argv, "--no-progress-bar", "--verbose", "0"]) == 0
    (tmp_path / "dqn" / "CartPole-v1_1" / "best_model.zip").write_bytes(b"broken")
    capsys.readouterr()
    assert enjoy_main(["--algo", "dqn", "-f", str(tmp_path), "-n", "1"]) == 0
    captured = capsys.readouterr()
    assert "best_model.zip (" in captured.err and "is not a readable dqn model" in captured.err
    assert "CartPole-v1.zip on CartPole-v1" in captured.out  # the final model played instead


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
