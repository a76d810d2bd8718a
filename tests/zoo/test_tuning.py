"""`python -m rainbow_ext.tune`: a small study end to end, divergence pruned, workers sharing a
PostgreSQL study (CI starts the server, see .ci/run), a killed worker's trial retried, bad input."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from rainbow_ext.train import main as train_main
from rainbow_ext.tune import main

POSTGRES = os.environ.get("RAINBOW_EXT_TEST_POSTGRES")
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="RAINBOW_EXT_TEST_POSTGRES is not set (.ci/run sets it)")
QUICK = ["--n-evaluations", "2", "--eval-episodes", "2", "--sampler", "random", "--pruner", "none"]


def sqlite(folder: Path) -> str:
    return f"sqlite:///{folder / 'study.db'}"


def test_small_study_and_its_best_entry_trains(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "study"
    argv = ["--algo", "rainbow", "--n-trials", "3", "-n", "800", *QUICK, "-f", str(folder), "--plot"]
    assert main([*argv, "-params", "learning_starts:100"]) == 0
    study = optuna.load_study(study_name="rainbow-CartPole-v1", storage=sqlite(folder))
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 3
    for trial in finished:  # the preset's flags and -params stay fixed; the sample varies the rest
        used = trial.user_attrs["hyperparams"]
        assert used["learning_starts"] == 100 and used["noisy"] and used["prioritized"] and used["n_steps"] > 1
        assert used["policy_kwargs"]["optimizer_kwargs"]["eps"] == trial.params["adam_eps"]
    assert len({t.params["learning_rate"] for t in finished}) == 3
    entry = yaml.safe_load((folder / "best.yml").read_text())["CartPole-v1"]
    assert entry["learning_rate"] == study.best_trial.params["learning_rate"] and "noisy" not in entry
    assert entry["n_steps"] == study.best_trial.params["n_steps"]  # tuned, so kept (the switch is the preset's)
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    logs = tmp_path / "logs"
    assert train_main(["-conf", str(folder / "best.yml"), "-n", "200", "--eval-freq", "-1", "-f", str(logs)]) == 0
    config = yaml.safe_load((logs / "rainbow" / "CartPole-v1_1" / "config.yml").read_text())
    assert config["hyperparams"]["learning_rate"] == entry["learning_rate"]
    assert config["hyperparams"]["n_steps"] == entry["n_steps"]


def test_a_diverging_trial_is_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    study = optuna.create_study(study_name="bad", storage=sqlite(folder), direction="maximize")
    diverging = {"learning_rate": 1e30, "learning_starts": 0, "train_freq": 1, "subsample_steps": 1, "batch_size": 32}
    diverging |= {"buffer_size": 10_000, "target_update_interval": 1, "gamma": 0.99, "net_arch": "small"}
    study.enqueue_trial(diverging | {"adam_eps": 1e-8, "exploration_fraction": 0.1, "exploration_final_eps": 0.05})
    argv = ["--algo", "dqn", "--n-trials", "1", "-n", "400", *QUICK, "-f", str(folder), "--study-name", "bad"]
    assert main(argv) == 0
    (trial,) = optuna.load_study(study_name="bad", storage=sqlite(folder)).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs.get("diverged")


def run_worker(*argv: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "rainbow_ext.tune", *argv]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@needs_postgres
def test_two_workers_share_a_postgresql_study(tmp_path: Path) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    argv = ["--algo", "dqn", "--n-trials", "4", "-n", "300", *QUICK, "--storage", POSTGRES, "--study-name", name]
    workers = [run_worker(*argv, "-f", str(tmp_path / f"w{i}")) for i in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    study = optuna.load_study(study_name=name, storage=POSTGRES)
    counted = [t for t in study.trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
    assert len(counted) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all("Trial" in out for out in outputs)  # both workers ran trials


@needs_postgres
def test_a_killed_workers_trial_is_retried(tmp_path: Path) -> None:
    name = f"retry-{uuid.uuid4().hex[:8]}"
    argv = ["--algo", "dqn", "-n", "3000", *QUICK, "--storage", POSTGRES, "--study-name", name]
    argv += ["--heartbeat-interval", "1", "--grace-period", "3", "-f", str(tmp_path)]
    victim = run_worker(*argv, "--n-trials", "5")
    deadline = time.time() + 120
    running = []
    while not running and time.time() < deadline:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name=name, storage=POSTGRES)
        except KeyError:  # not created yet
            continue
        # a trial that has sampled all its parameters ("hyperparams" is set next) and is training
        running = [
            t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING and "hyperparams" in t.user_attrs
        ]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (killed,) = running
    time.sleep(4)  # the heartbeat goes stale
    rescuer = run_worker(*argv, "--n-trials", "1")
    out = rescuer.communicate(timeout=300)[0]
    assert rescuer.returncode == 0, out
    study = optuna.load_study(study_name=name, storage=POSTGRES)
    states = {t.number: t for t in study.trials}
    assert states[killed.number].state == optuna.trial.TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == killed.params  # the same trial, run again


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-trials", "0"], "--n-trials must be >= 1"),
        (["--storage", "not a url"], "cannot open storage 'not a url'"),
        (["--storage", "postgresql://postgres@127.0.0.1:1/none"], "cannot open storage"),
        (["--algo", "rainbw"], "unknown algo 'rainbw'"),
        (["--env", "Pendulum-v1"], "Box action space"),
    ],
)
def test_bad_input(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    started = time.time()
    assert main([*argv, "-f", str(tmp_path / "study")]) == 2
    assert message in capsys.readouterr().err
    assert time.time() - started < 30  # an unreachable server is reported, not waited on


@pytest.mark.parametrize("flag", ["--sampler", "--pruner"])
def test_unknown_sampler_or_pruner(flag: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([flag, "grid"])
    assert exit_info.value.code == 2 and "invalid choice: 'grid'" in capsys.readouterr().err


def test_a_study_with_another_direction_or_search_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    optuna.create_study(study_name="down", storage=sqlite(folder), direction="minimize")
    assert main(["--study-name", "down", "-f", str(folder), "--n-trials", "1"]) == 2
    assert "minimizes" in capsys.readouterr().err
    argv = ["--algo", "dqn", "--n-trials", "1", *QUICK, "-f", str(folder), "--study-name", "s"]
    assert main([*argv, "-n", "300"]) == 0
    capsys.readouterr()
    assert main([*argv, "-n", "600"]) == 2
    assert "has a different search: n_timesteps: 300 there, 600 here" in capsys.readouterr().err


def test_a_rerun_on_the_same_study_samples_new_parameters(tmp_path: Path, capsys) -> None:
    """Each call that joins a study seeds its sampler apart: a rerun (or another worker) does not
    repeat the trials already there, and other -params are another search."""
    folder = tmp_path / "study"
    argv = ["--algo", "dqn", *QUICK, "-n", "300", "-f", str(folder), "--study-name", "s"]
    assert main([*argv, "--n-trials", "1"]) == 0
    assert main([*argv, "--n-trials", "2"]) == 0
    study = optuna.load_study(study_name="s", storage=sqlite(folder))
    first, second = (t.params for t in study.trials[:2])
    assert first != second
    capsys.readouterr()
    assert main([*argv, "--n-trials", "3", "-params", "gamma:0.9"]) == 2
    err = capsys.readouterr().err
    assert "has a different search" in err and "params: {} there, {'gamma': 0.9} here" in err


def test_only_the_worker_that_creates_a_study_seeds_with_seed(tmp_path: Path) -> None:
    """Two workers that start together on a new study must not sample alike: the storage decides which
    one created it, and only that one takes --seed (so a fresh study is reproducible)."""
    from rainbow_ext.zoo.tuning import TuneOptions, open_study

    def open_(folder: Path) -> optuna.Study:
        return open_study(TuneOptions(sampler="random", study_name="s"), sqlite(folder), {"k": 1})

    def first_sample(study: optuna.Study) -> float:
        return study.ask().suggest_float("x", 0.0, 1.0)

    for name in "abc":
        (tmp_path / name).mkdir()
    creator, joiner = open_(tmp_path / "a"), open_(tmp_path / "a")  # both before any trial starts
    assert first_sample(joiner) != first_sample(creator)
    assert first_sample(open_(tmp_path / "b")) == first_sample(open_(tmp_path / "c"))  # new studies: --seed


def test_failed_trials_give_exit_status_1_with_the_first_error(tmp_path: Path, capsys, monkeypatch) -> None:
    import rainbow_ext.zoo.tuning as tuning

    argv = ["--algo", "dqn", "--n-trials", "1", *QUICK, "-n", "300", "-f", str(tmp_path / "s")]
    # a bad value is refused before any trial (exit 2), with nothing written
    assert main([*argv, "-params", "policy_kwargs:{net_arch: [-1]}"]) == 2
    assert "policy_kwargs['net_arch'] in -params must be a list" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

    def failing_build(*args, **kwargs):
        raise RuntimeError("the model could not be built")

    monkeypatch.setattr(tuning, "build_model", failing_build)  # a failure inside the trial
    assert main(argv) == 1
    assert "error: 1 trial(s) failed; the first: RuntimeError" in capsys.readouterr().err


def test_the_rainbow_and_qrdqn_spaces_extend_the_dqn_space() -> None:
    """tuning/dqn.py holds the DQN part (schedule and network), which SB3's DQN samples alone and the
    Rainbow and QR-DQN spaces extend: the same draws for the shared keys, then their own."""
    import optuna

    from rainbow_ext.presets import preset_flags
    from rainbow_ext.zoo.tuning import load_search_space, search_space_file

    def sampled(algo: str, flags: dict) -> dict:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        return load_search_space(search_space_file(algo)).sample(study.ask(), flags)

    dqn = sampled("sb3-dqn", {})
    assert search_space_file("sb3-dqn").name == "dqn.py"
    shared = ["learning_rate", "batch_size", "buffer_size", "learning_starts", "target_update_interval", "gamma"]
    for algo, flags in (("rainbow", preset_flags("rainbow")), ("qrdqn", {})):
        other = sampled(algo, flags)
        assert {k: other[k] for k in shared} == {k: dqn[k] for k in shared}, algo
        assert other["policy_kwargs"]["net_arch"] == dqn["policy_kwargs"]["net_arch"]
    assert set(sampled("qrdqn", {})["policy_kwargs"]) == {"net_arch", "n_quantiles"}
    rainbow = sampled("rainbow", preset_flags("rainbow"))
    assert {"n_steps", "per_alpha", "noisy_sigma0", "n_atoms"} <= set(rainbow) and "exploration_fraction" not in rainbow


def test_each_head_and_munchausen_get_their_own_parameters_sampled() -> None:
    import optuna

    from rainbow_ext.presets import preset_flags
    from rainbow_ext.zoo.tuning import load_search_space, search_space_file

    space = load_search_space(search_space_file("rainbow"))

    def sampled(preset: str) -> set:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        return set(space.sample(study.ask(), preset_flags(preset)))

    head_keys = {"n_atoms", "v_min", "v_max", "n_quantiles", "n_acting_quantiles"}
    munchausen_keys = {"munchausen_tau", "munchausen_alpha", "munchausen_l0"}
    assert sampled("c51") & head_keys == {"n_atoms", "v_min", "v_max"}
    assert sampled("qr") & head_keys == {"n_quantiles"}
    assert sampled("iqn") & head_keys == {"n_quantiles", "n_acting_quantiles"}
    assert sampled("rainbow-iqn") & head_keys == {"n_quantiles", "n_acting_quantiles"}
    assert sampled("dqn") & (head_keys | munchausen_keys) == set()
    assert sampled("m-dqn") & (head_keys | munchausen_keys) == munchausen_keys


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_stops_running_trials_within_seconds_and_leaves_none_running(n_jobs: int, tmp_path: Path) -> None:
    """A real process and real signals: Ctrl-C while trials train (two in threads with --n-jobs 2), then a
    second Ctrl-C while they wind down. Exit 130 within seconds, no traceback, no trial left RUNNING, and
    the interrupted trials do not count toward --n-trials."""
    import signal
    import subprocess
    import sys
    import time

    import optuna
    from optuna.trial import TrialState

    folder = tmp_path / "study"
    argv = ["--algo", "dqn", "--n-trials", "4", "--n-jobs", str(n_jobs), "-n", "500000", "--n-evaluations", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "rainbow_ext.tune", *argv, "-f", str(folder)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"sqlite:///{folder / 'study.db'}"
    deadline = time.monotonic() + 120
    running = 0
    while running < n_jobs and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="dqn-CartPole-v1", storage=url)
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        except (KeyError, Exception):  # the study is not created yet
            running = 0
    assert running == n_jobs, "the trials did not start"
    time.sleep(2.0)  # inside learn
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # a second Ctrl-C never aborts
    start = time.monotonic()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert time.monotonic() - start < 30
    assert "Traceback" not in err and "stopping: the running trials end at their next step" in err
    trials = optuna.load_study(study_name="dqn-CartPole-v1", storage=url).get_trials(deepcopy=False)
    assert trials and not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == n_jobs and all(t.state == TrialState.PRUNED for t in interrupted)
    assert "0 of 4 trials finished" in out
