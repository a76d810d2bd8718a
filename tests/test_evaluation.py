"""Evaluations that cannot stall silently: stalled games are counted and named, evaluation games can be
capped in agent steps (``--eval-max-steps``, the ``eval_max_steps`` key), and Atari evaluations count
whole games on both paths."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import DQN
from stable_baselines3.common.logger import configure

from rainbow_ext.envs import make_atari_vec_env
from rainbow_ext.envs.make import make_env
from rainbow_ext.evaluation import EvalCallback, StalledEvaluationWarning
from rainbow_ext.train import main
from rainbow_ext.zoo import zoo_config


def evaluate_noop(eval_env, log_path: Path, episodes: int = 2) -> tuple[EvalCallback, DQN]:
    """One evaluation of a policy that only ever plays NOOP (action 0); lengths kept in ``log_path``."""
    model = DQN("CnnPolicy", eval_env, buffer_size=10, learning_starts=10, device="cpu")
    model.set_logger(configure(None, []))
    n = eval_env.num_envs
    model.predict = lambda *args, **kwargs: (np.zeros(n, dtype=np.int64), None)  # type: ignore[method-assign]
    callback = EvalCallback(eval_env, n_eval_episodes=episodes, eval_freq=1, log_path=str(log_path), verbose=0)
    callback.init_callback(model)
    callback.on_step()
    return callback, model


@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_a_game_waiting_for_fire_is_reported_as_stalled(vec_env: str, tmp_path: Path) -> None:
    """Breakout without FIRE after a life loss: a NOOP policy loses its first ball, then waits. Both games
    reach the 500-step cap with no reward in their second half: counted, logged and warned about."""

    def make(fire: bool):
        return make_atari_vec_env(
            "ALE/Breakout-v5", 1, seed=0, vec_env=vec_env, terminal_on_life_loss=False, fire_on_life_loss=fire,
            max_episode_frames=4 * 500,
        )  # fmt: skip

    with pytest.warns(StalledEvaluationWarning, match=r"2 of 2 evaluation games .* FIRE after a life loss"):
        callback, model = evaluate_noop(make(False), tmp_path)
    assert callback.stalled_games == 2
    assert model.logger.name_to_value["eval/stalled_games"] == 2
    # whole games, in frames; the C++ path counts its up to 30 no-op start frames too
    assert all(2000 <= length <= 2030 for length in callback.evaluations_length[-1])

    with warnings.catch_warnings():
        warnings.simplefilter("error", StalledEvaluationWarning)
        callback, model = evaluate_noop(make(True), tmp_path)  # FIRE serves again: games end by losing every ball
    assert callback.stalled_games == 0 and "eval/stalled_games" not in model.logger.name_to_value
    assert all(length < 2000 for length in callback.evaluations_length[-1])


def test_a_policy_that_scores_until_the_cap_is_not_stalled() -> None:
    """CartPole cut at 50 steps: every step is rewarded, so reaching the cap is no stall."""
    env = make_env("CartPole-v1", max_episode_steps=50, seed=0)
    model = DQN("MlpPolicy", env, buffer_size=10, learning_starts=10, device="cpu")
    model.set_logger(configure(None, []))
    callback = EvalCallback(env, n_eval_episodes=3, eval_freq=1, verbose=0)
    callback.init_callback(model)
    callback.on_step()
    assert callback.stalled_games == 0


@pytest.mark.parametrize(("env_id", "steps", "expected"), [("CartPole-v1", 30, 30), ("CartPole-v1", 900, 500)])
def test_max_episode_steps_caps_below_the_envs_own_limit(env_id: str, steps: int, expected: int) -> None:
    env = make_env(env_id, max_episode_steps=steps, seed=0)
    env.reset()
    length = 0
    while True:
        length += 1
        _, _, dones, infos = env.step(np.array([length % 2]))  # alternate: CartPole lasts a while
        if dones[0]:
            break
    assert infos[0]["TimeLimit.truncated"] == (length == expected) and length <= expected


@pytest.mark.filterwarnings("ignore::rainbow_ext.evaluation.StalledEvaluationWarning")  # NOOP, cut short
@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_max_episode_steps_on_atari_counts_agent_steps(vec_env: str, tmp_path: Path) -> None:
    """Atari's limit is in emulator frames: 100 agent steps are 400 frames at frame skip 4."""
    callback, _ = evaluate_noop(
        make_env("ALE/Breakout-v5", vec_env=vec_env, max_episode_steps=100, seed=0), tmp_path, 1
    )
    assert 400 <= callback.evaluations_length[-1][0] <= 430


def test_eval_max_steps_from_the_zoo_entry_and_the_command_line(tmp_path: Path) -> None:
    assert zoo_config("rainbow", "ALE/Pong-v5").eval_max_steps == 10_000  # the atari entry
    assert zoo_config("rainbow", "CartPole-v1").eval_max_steps is None
    argv = ["--algo", "dqn", "-n", "200", "--eval-freq", "100", "--eval-episodes", "2", "--eval-max-steps", "20"]
    assert (
        main([*argv, "-f", str(tmp_path), "--no-progress-bar", "--verbose", "0", "-params", "learning_starts:50"]) == 0
    )
    run_dir = tmp_path / "dqn" / "CartPole-v1_1"
    assert yaml.safe_load((run_dir / "config.yml").read_text())["eval_max_steps"] == 20
    with np.load(run_dir / "evaluations.npz") as evaluations:
        assert evaluations["ep_lengths"].max() <= 20


@pytest.mark.parametrize(
    "argv", [["--eval-max-steps", "0"], ["-params", "eval_max_steps:0"], ["-params", "eval_max_steps:1.5"]]
)
def test_bad_eval_max_steps_exits_2(argv: list[str], tmp_path: Path, capsys) -> None:
    assert main([*argv, "-f", str(tmp_path / "logs")]) == 2
    assert "eval_max_steps" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_evaluations_count_whole_games_with_life_loss_episodes(vec_env: str, tmp_path: Path) -> None:
    """With a life loss as the agent's episode end, an evaluation game is still a whole game: a NOOP
    policy loses five balls in about 500-1,400 frames (fewer on the ale path, which hides no reset
    steps), one life lasts about 100."""
    env = make_atari_vec_env("ALE/Breakout-v5", 1, seed=0, vec_env=vec_env, terminal_on_life_loss=True)
    callback, _ = evaluate_noop(env, tmp_path, episodes=3)
    assert all(450 <= length <= 1_500 for length in callback.evaluations_length[-1])


def test_evaluation_files_are_renamed_into_place_whole(tmp_path: Path) -> None:
    """SB3 writes evaluations.npz and best_model.zip in place; here they are written under staging
    names and renamed over the real ones, so a kill mid-write never leaves a broken file."""
    from stable_baselines3 import DQN

    env = make_env("CartPole-v1", n_envs=1, seed=0)
    callback = EvalCallback(
        make_env("CartPole-v1", n_envs=1, seed=1),
        n_eval_episodes=1,
        eval_freq=50,
        log_path=str(tmp_path),
        best_model_save_path=str(tmp_path),
        verbose=0,
    )
    saved: list[str] = []
    original = np.savez

    def spy(file, *args, **kwargs):  # where SB3 writes, and that the real file is not open then
        saved.append(str(file))
        return original(file, *args, **kwargs)

    np.savez = spy  # type: ignore[assignment]
    try:
        DQN("MlpPolicy", env, learning_starts=1000, seed=0).learn(100, callback=callback)
    finally:
        np.savez = original  # type: ignore[assignment]
    assert saved and all(name.endswith(".evaluations.partial.npz") for name in saved)
    with np.load(tmp_path / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [50, 100]
        # the wall time of each evaluation beside its scores (one CartPole episode: well under a minute)
        assert data["seconds"].shape == (2,) and all(0 < s < 60 for s in data["seconds"])
        assert list(data["seconds"]) == callback.evaluations_seconds
    assert (tmp_path / "best_model.zip").is_file() and not (tmp_path / ".evaluations.partial.npz").exists()
    assert not (tmp_path / ".best_model.partial" / "best_model.zip").exists()


def test_a_staged_best_model_left_by_a_kill_is_never_promoted(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    staged = tmp_path / ".best_model.partial"
    staged.mkdir()
    (staged / "best_model.zip").write_bytes(b"half-written")  # a process killed mid-write left it
    (tmp_path / "best_model.zip").write_bytes(b"the real best")
    callback = EvalCallback(
        make_env("CartPole-v1", n_envs=1, seed=1), n_eval_episodes=1, eval_freq=50,
        best_model_save_path=str(tmp_path), verbose=0,
    )  # fmt: skip
    callback.best_mean_reward = float("inf")  # as a resume sets it: no evaluation will beat it
    DQN("MlpPolicy", make_env("CartPole-v1", n_envs=1, seed=0), learning_starts=1000).learn(100, callback=callback)
    assert (tmp_path / "best_model.zip").read_bytes() == b"the real best"
