"""Ablation grids (`python -m rainbow_ext.ablate`, rainbow_ext.zoo.ablation): end to end, reruns, shared
storages, baselines, growing grids, killed runs, and bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from rainbow_ext import Rainbow
from rainbow_ext.ablate import main
from rainbow_ext.zoo.stats import iqm, probability_of_improvement

TINY = ["--variants", "dqn,rainbow", "--seeds", "2", "-n", "200", "--eval-freq", "100", "--eval-episodes", "2"]
TINY += ["-params", "train_freq:16", "gradient_steps:2", "learning_starts:100"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


def finished_trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="ablation", storage=f"sqlite:///{folder / 'study.db'}")
    return [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]


def test_tiny_grid_end_to_end_and_rerun(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "ablation"
    assert main([*TINY, "-f", str(folder)]) == 0
    curves = read_csv(folder / "curves.csv")
    assert len(curves) == 2 * 2 * 2  # variants x seeds x evaluations
    assert {(r["variant"], r["seed"], r["timestep"]) for r in curves} == {
        (v, s, t) for v in ("dqn", "rainbow") for s in ("0", "1") for t in ("100", "200")
    }
    finals = read_csv(folder / "final_scores.csv")
    summary = read_csv(folder / "summary.csv")
    assert [r["variant"] for r in summary] == ["dqn", "rainbow"]
    for row in summary:  # the table's numbers are the statistics of the runs' final returns
        runs = np.array([float(f["final_return"]) for f in finals if f["variant"] == row["variant"]])
        assert int(row["runs"]) == 2 and float(row["mean"]) == pytest.approx(runs.mean())
        assert float(row["iqm"]) == pytest.approx(iqm(runs))
        assert float(row["iqm_ci_low"]) <= float(row["iqm"]) <= float(row["iqm_ci_high"])
        last = [float(c["return"]) for c in curves if c["variant"] == row["variant"] and c["timestep"] == "200"]
        assert sorted(last) == sorted(runs)
    report = (folder / "report.md").read_text()
    assert "| CartPole-v1 | dqn | 2 |" in report and "| CartPole-v1 | rainbow | 2 |" in report
    assert "![learning curves](curves.png)" in report and "runs finished: 4 of 4" in report
    (improved,) = read_csv(folder / "improvement.csv")
    rainbow = [float(f["final_return"]) for f in finals if f["variant"] == "rainbow"]
    dqn = [float(f["final_return"]) for f in finals if f["variant"] == "dqn"]
    assert (improved["env"], improved["variant"]) == ("CartPole-v1", "dqn")
    assert float(improved["p_improvement"]) == pytest.approx(probability_of_improvement(rainbow, dqn))
    assert "P(rainbow > variant)" in report and "| CartPole-v1 | dqn |" in report
    for name in ("curves.png", "final_scores.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(finished_trials(folder)) == 4

    capsys.readouterr()
    assert main([*TINY, "-f", str(folder)]) == 0  # a rerun finds everything done
    assert "4 finished, 0 to run" in capsys.readouterr().out
    assert len(finished_trials(folder)) == 4


def test_two_ablations_on_one_storage_share_the_grid(tmp_path: Path) -> None:
    """Two ablate processes started together on one storage (as on two machines): every run once."""
    folder = tmp_path / "shared"
    command = [sys.executable, "-m", "rainbow_ext.ablate", *TINY, "-f", str(folder)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    study = optuna.load_study(study_name="ablation", storage=f"sqlite:///{folder / 'study.db'}")
    ran = [t for t in study.get_trials() if "run_dir" in t.user_attrs or "host" in t.user_attrs]
    points = [(t.params["variant"], t.params["seed"]) for t in ran]
    assert sorted(points) == [("dqn", 0), ("dqn", 1), ("rainbow", 0), ("rainbow", 1)]  # each run exactly once
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ran)
    assert len(list((folder / "runs").glob("*/*/seed_*"))) == 4


def test_unfinished_runs_restart(tmp_path: Path) -> None:
    """A run left RUNNING by a process of this machine that died is failed and run again."""
    import socket

    folder = tmp_path / "ablation"
    argv = [*TINY, "--variants", "dqn", "--seeds", "1", "-f", str(folder)]
    assert main([*argv, "--report-only"]) == 0  # the study and grid, nothing run
    study = optuna.load_study(study_name="ablation", storage=f"sqlite:///{folder / 'study.db'}")
    study.enqueue_trial({"variant": "dqn", "env": "CartPole-v1", "seed": 0})
    killed = study.ask()  # popped by a worker...
    killed.set_user_attr("host", socket.gethostname())
    killed.set_user_attr("pid", 2**22 + 12345)  # ...whose process is gone
    assert main(argv) == 0
    states = {t.number: t.state for t in study.get_trials()}
    assert states[killed.number] == optuna.trial.TrialState.FAIL
    assert len(finished_trials(folder)) == 1


def test_a_run_being_claimed_is_not_failed(tmp_path: Path) -> None:
    """A worker writes its host, then its pid: a second ablation starting in between must neither fail
    that run as left by a dead process nor enqueue its grid point again."""
    import socket

    from rainbow_ext.zoo.ablation import enqueue_missing

    folder = tmp_path / "ablation"
    argv = [*TINY, "--variants", "dqn", "--seeds", "1", "-f", str(folder)]
    assert main([*argv, "--report-only"]) == 0  # the study and grid, nothing run
    study = optuna.load_study(study_name="ablation", storage=f"sqlite:///{folder / 'study.db'}")
    study.enqueue_trial({"variant": "dqn", "env": "CartPole-v1", "seed": 0})
    claimed = study.ask()
    claimed.set_user_attr("host", socket.gethostname())  # no pid yet
    assert enqueue_missing(study) == 0
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.RUNNING


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variants", "rainbow,rainbow-no-everything"], "unknown variant(s) ['rainbow-no-everything']; valid: dqn"),
        (["--variants", ","], "--variants names no variant or an empty one (',')"),
        (["--variants", "rainbow,"], "--variants names no variant or an empty one ('rainbow,')"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--env", "NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
        (["-conf", "qrdqn=x.yml"], "a config file for 'qrdqn', which is not a variant of the grid"),
        (["-conf", "no-such-file.yml"], "config file no-such-file.yml (for rainbow) does not exist"),
        (["--variants", "sb3-dqn", "-conf", "x.yml"], "-conf x.yml: the grid has no preset for it"),
        (["-params", "learnig_rate:1e-3"], "unknown hyperparameter(s) ['learnig_rate'] in -params (did you mean"),
        (["--variants", "sb3-dqn", "-params", "noisy_sigma0:0.1"], "unknown hyperparameter(s) ['noisy_sigma0']"),
        (["-n", "1500"], "--eval-freq 10000 with 1,500 steps (rainbow on CartPole-v1): no evaluation would run"),
    ],
)
def test_bad_input(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main([*argv, "-f", str(tmp_path / "ablation")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ablation").exists()


def test_baselines_and_their_own_config_files_in_one_grid(tmp_path: Path) -> None:
    """SB3's DQN runs beside a preset, each algo from its own config file (as the benchmarks do)."""
    conf = tmp_path / "rainbow.yml"
    conf.write_text("CartPole-v1:\n  learning_starts: 50\n  train_freq: 16\n  v_max: 7.0\n")
    folder = tmp_path / "ablation"
    argv = ["--variants", "rainbow,sb3-dqn", "--seeds", "1", "-n", "100", "--eval-freq", "100", "--eval-episodes", "1"]
    assert main([*argv, "-conf", f"rainbow={conf}", "-f", str(folder)]) == 0
    configs = {
        v: yaml.safe_load((folder / "runs" / v / "CartPole-v1" / "seed_0" / "config.yml").read_text())
        for v in ("rainbow", "sb3-dqn")
    }
    assert (
        configs["rainbow"]["source"] == f"{conf}['CartPole-v1']" and configs["rainbow"]["hyperparams"]["v_max"] == 7.0
    )
    assert configs["sb3-dqn"]["source"].endswith("sb3_dqn.yml['CartPole-v1']")
    assert configs["sb3-dqn"]["hyperparams"]["target_update_interval"] == 10  # rl-zoo3's tuned DQN entry
    assert "double_q" not in configs["sb3-dqn"]["hyperparams"]  # SB3's DQN: no Rainbow arguments
    assert all("seconds" in t.user_attrs for t in finished_trials(folder))


def test_a_folder_with_another_grid_is_refused_and_more_seeds_grow_it(tmp_path: Path, capsys) -> None:
    """Other variants, or fewer seeds, are another grid; more seeds add their runs to the finished ones."""
    folder = tmp_path / "ablation"
    assert main([*TINY, "--seeds", "2", "--variants", "dqn", "-f", str(folder)]) == 0
    capsys.readouterr()
    assert main([*TINY, "--seeds", "2", "--variants", "dqn,rainbow", "-f", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "holds a different ablation grid: variants: ['dqn'] there, ['dqn', 'rainbow'] here" in err
    assert main([*TINY, "--seeds", "1", "--variants", "dqn", "-f", str(folder)]) == 2
    assert "holds a different ablation grid: seeds: [0, 1] there, [0] here" in capsys.readouterr().err
    first = {t.params["seed"]: t.datetime_complete for t in finished_trials(folder)}

    assert main([*TINY, "--seeds", "3", "--variants", "dqn", "-f", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "seeds [2] added to the grid" in out and "3 runs in the grid: 2 finished, 1 to run" in out
    trials = finished_trials(folder)
    assert sorted(t.params["seed"] for t in trials) == [0, 1, 2]  # seed 2 ran once, 0 and 1 were kept
    assert all(t.datetime_complete == first[t.params["seed"]] for t in trials if t.params["seed"] < 2)
    assert yaml.safe_load((folder / "grid.yml").read_text())["seeds"] == [0, 1, 2]
    final = (folder / "final_scores.csv").read_text().splitlines()
    assert len(final) == 1 + 3  # the report covers all three runs


def test_a_study_with_categorical_seeds_runs_its_grid_but_cannot_grow(tmp_path: Path, monkeypatch, capsys) -> None:
    """Studies made before grids could grow hold the seed as a categorical. A rerun of their own grid
    keeps that kind (Optuna refuses two kinds for one name); more seeds are refused up front."""
    from rainbow_ext.zoo import ablation

    folder = tmp_path / "ablation"
    argv = [*TINY, "--seeds", "2", "--variants", "dqn", "-f", str(folder)]
    real_prepare_run = ablation.prepare_run

    def seed_1_fails(*args, **kwargs):
        if kwargs["seed"] == 1:
            raise RuntimeError("seed 1 fails this time")
        return real_prepare_run(*args, **kwargs)

    with monkeypatch.context() as patch:  # the older code: categorical seeds; and seed 1's run fails
        patch.setattr(ablation, "categorical_seeds", lambda study: True)
        patch.setattr(ablation, "prepare_run", seed_1_fails)
        assert main(argv) == 1
    assert [t.params["seed"] for t in finished_trials(folder)] == [0]
    study = optuna.load_study(study_name="ablation", storage=f"sqlite:///{folder / 'study.db'}")
    assert ablation.categorical_seeds(study)

    assert main(argv) == 0  # seed 1 runs again, as a categorical
    trials = finished_trials(folder)
    assert sorted(t.params["seed"] for t in trials) == [0, 1]
    assert all(type(t.distributions["seed"]).__name__ == "CategoricalDistribution" for t in trials)
    capsys.readouterr()
    assert main([*TINY, "--seeds", "3", "--variants", "dqn", "-f", str(folder)]) == 2
    assert "was made before a grid could grow by seeds" in capsys.readouterr().err
    assert yaml.safe_load((folder / "grid.yml").read_text())["seeds"] == [0, 1]  # nothing rewritten


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """SIGKILL mid-run (no chance to save), then the same command: the run goes on from its last
    checkpoint, its evaluations, episodes and wall time continued, nothing repeated twice."""
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "ablation"
    argv = ["--variants", "rainbow", "--seeds", "1", "-n", "4000", "--eval-freq", "500", "--eval-episodes", "1"]
    argv += ["--checkpoint-freq", "1000", "-f", str(folder), "-params", "train_freq:16", "gradient_steps:2"]
    argv += ["learning_starts:200"]
    process = subprocess.Popen([sys.executable, "-m", "rainbow_ext.ablate", *argv], stdout=subprocess.DEVNULL)
    run_dir = folder / "runs" / "rainbow" / "CartPole-v1" / "seed_0"
    deadline = time.time() + 300
    while not (run_dir / "checkpoint" / "meta.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    saved = json.loads((run_dir / "checkpoint" / "meta.json").read_text())
    assert 1000 <= saved["step"] < 4000 and not (run_dir / "CartPole-v1.zip").exists()

    assert main(argv) == 0  # the rerun
    (trial,) = finished_trials(folder)
    model = Rainbow.load(run_dir / "CartPole-v1.zip")
    assert model.num_timesteps >= 4000 and not (run_dir / "checkpoint").exists()
    with np.load(run_dir / "evaluations.npz") as evaluations:
        steps = [int(t) for t in evaluations["timesteps"]]
    assert steps == sorted(set(steps)) and steps[0] == 500 and steps[-1] >= 4000  # each evaluation once
    episodes = np.loadtxt(run_dir / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    assert (np.diff(episodes[:, 0]) > 0).all() and episodes[0, 0] < saved["step"] < episodes[-1, 0]
    assert trial.user_attrs["seconds"] > saved["seconds"] > 0
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2  # two stretches of one run
    with np.load(run_dir / "evaluations.npz") as evaluations:
        means = evaluations["results"].mean(axis=1)
    # the best model is the first best of the evaluations kept, not one from the stretch dropped
    assert Rainbow.load(run_dir / "best_model.zip").num_timesteps == steps[int(np.argmax(means))]


def test_a_grid_whose_every_run_fails_exits_1(tmp_path: Path, capsys, monkeypatch) -> None:
    import rainbow_ext.zoo.ablation as ablation

    argv = ["--variants", "dqn", "--seeds", "1", "-n", "100", "--eval-freq", "100", "-f", str(tmp_path / "a")]
    # a bad value is refused before the grid starts (exit 2), with nothing written
    assert main([*argv, "-params", "policy_kwargs:{net_arch: [-1]}"]) == 2
    assert "policy_kwargs['net_arch'] in -params must be a list" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

    def failing_train(session):
        raise RuntimeError("the run failed")

    monkeypatch.setattr(ablation, "train_run", failing_train)  # a failure inside the run
    assert main(argv) == 1
    assert "error: 1 run(s) failed; the first: RuntimeError" in capsys.readouterr().err
