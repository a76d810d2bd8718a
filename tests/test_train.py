"""`python -m rainbow_ext.train`: the run folder, -params overrides and bad input."""

from pathlib import Path

import pytest

from rainbow_ext import Rainbow
from rainbow_ext.train import main, parse_params


def test_train_saves_a_loadable_model_with_overrides(tmp_path: Path) -> None:
    argv = [
        "--algo",
        "rainbow-no-noisy",
        "-n",
        "400",
        "--eval-freq",
        "200",
        "--eval-episodes",
        "2",
        "-f",
        str(tmp_path),
        "--verbose",
        "0",
        "-params",
        "learning_rate:0.01",
        "n_steps:2",
    ]
    assert main(argv) == 0
    run_dir = tmp_path / "rainbow-no-noisy" / "CartPole-v1_0"
    assert {p.name for p in run_dir.iterdir()} >= {"CartPole-v1.zip", "best_model.zip"}
    model = Rainbow.load(run_dir / "CartPole-v1.zip")
    assert (model.learning_rate, model.n_steps, model.noisy, model.v_max) == (0.01, 2, False, 100.0)
    assert model.num_timesteps >= 400  # SB3 collects train_freq (256) steps at a time


def test_parse_params_types() -> None:
    assert parse_params(["a:1", "b:2.5", "c:True", "d:[64, 64]", "e:auto"]) == {
        "a": 1,
        "b": 2.5,
        "c": True,
        "d": [64, 64],
        "e": "auto",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-params", "v_min:5", "v_max:1"], "v_min must be < v_max"),
        (["-params", "learning_rate"], "malformed -params entry 'learning_rate'"),
        (["-params", "no_such_key:1"], "unknown argument"),
        (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main([*argv, "-f", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
