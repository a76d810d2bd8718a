"""Atari through both paths (SB3's wrappers, ale-py's vector env adapter) and MinAtar."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from scipy import stats
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from rainbow_ext import MinAtarTrunk, NatureCNNTrunk, PrioritizedReplayBuffer, Rainbow
from rainbow_ext.buffers.frame_storage import FrameStackStorage, frame_stack_buffer
from rainbow_ext.envs import AleVecEnv, atari_rom, make_atari_vec_env, make_minatar_env, stack_frames
from tests.helpers.streams import vec_env_stream

N_ENVS = 2


def random_steps(venv, steps: int, seed: int = 0):
    """(previous obs, actions, step result) for ``steps`` random steps."""
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    for _ in range(steps):
        actions = rng.integers(0, venv.action_space.n, size=venv.num_envs)
        result = venv.step(actions)
        yield obs, actions, result
        obs = result[0]


@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_vec_env_contract(vec_env: str) -> None:
    """Shapes and dtypes, same-step autoreset with the final stack in terminal_observation, Monitor
    episode info with the unclipped score, truncation flagged, on both paths."""
    venv = make_atari_vec_env(
        "ALE/Breakout-v5", N_ENVS, seed=0, vec_env=vec_env, terminal_on_life_loss=False, max_episode_frames=600
    )
    assert venv.observation_space == spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert venv.action_space == spaces.Discrete(4)
    reset_obs = venv.reset()
    assert reset_obs.shape == (N_ENVS, 4, 84, 84) and reset_obs.dtype == np.uint8
    assert not reset_obs[:, :3].any() and reset_obs[:, 3].any()  # zero-padded stack after a reset
    episodes = 0
    for obs, _, (new_obs, rewards, dones, infos) in random_steps(venv, 400):
        assert new_obs.shape == (N_ENVS, 4, 84, 84) and new_obs.dtype == np.uint8
        assert rewards.shape == (N_ENVS,) and rewards.dtype == np.float32 and set(np.unique(rewards)) <= {-1, 0, 1}
        assert dones.shape == (N_ENVS,) and dones.dtype == bool
        assert len(infos) == N_ENVS
        for i in range(N_ENVS):
            if not dones[i]:
                np.testing.assert_array_equal(new_obs[i, :3], obs[i, 1:])  # the stack moves on by one frame
                continue
            final = infos[i]["terminal_observation"]
            np.testing.assert_array_equal(final[:3], obs[i, 1:])  # the episode's own last stack...
            assert not new_obs[i, :3].any()  # ...and the next episode's first
            # lengths in emulator frames, as SB3's Monitor under AtariWrapper counts them; random play is
            # cut at 600 frames (plus the no-op start on the C++ path), flagged as a truncation
            length = infos[i]["episode"]["l"]
            assert infos[i]["TimeLimit.truncated"] == (length >= 600) and length < 650
            assert infos[i]["episode"]["r"] >= 0
            episodes += 1
    assert episodes >= 4
    venv.close()


def test_adapter_reports_the_unclipped_game_score() -> None:
    clipped = AleVecEnv("pong", N_ENVS, clip_reward=True, max_episode_frames=2000)
    raw = AleVecEnv("pong", N_ENVS, clip_reward=False, max_episode_frames=2000)
    for venv in (clipped, raw):
        venv.seed(3)
    totals, scores = np.zeros(N_ENVS), {"clipped": [], "raw": []}
    for (_, _, (_, r_clip, _, i_clip)), (_, _, (_, r_raw, _, i_raw)) in zip(
        random_steps(clipped, 600, seed=1), random_steps(raw, 600, seed=1), strict=True
    ):
        np.testing.assert_array_equal(r_clip, np.sign(r_raw))
        totals += r_raw
        for i in range(N_ENVS):
            if "episode" in i_raw[i]:
                assert i_raw[i]["episode"]["r"] == pytest.approx(totals[i])
                totals[i] = 0
                scores["raw"].append(i_raw[i]["episode"]["r"])
                scores["clipped"].append(i_clip[i]["episode"]["r"])
    assert scores["raw"] and scores["raw"] == scores["clipped"]  # the score is unclipped either way


def test_adapter_life_loss_ends_the_agent_episode_not_the_game() -> None:
    venv = AleVecEnv("breakout", N_ENVS, episodic_life=True)
    venv.seed(0)
    life_losses = games = 0
    previous_lives = np.full(N_ENVS, 5)
    for _, _, (new_obs, _, dones, infos) in random_steps(venv, 500):
        for i in np.flatnonzero(dones):
            if "episode" in infos[i]:
                games += 1
            else:  # a life lost: the game and its frame stack go on
                life_losses += 1
                assert infos[i]["lives"] == previous_lives[i] - 1
                np.testing.assert_array_equal(infos[i]["terminal_observation"], new_obs[i])
        previous_lives = np.array([info["lives"] for info in infos])
    assert life_losses >= 4 * games and games >= 1


def test_adapter_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[np.ndarray]:
        venv = AleVecEnv("breakout", N_ENVS, repeat_action_probability=0.25, noop_max=30)
        venv.seed(seed)
        return [result[0] for _, _, result in random_steps(venv, 60)]

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_adapter_works_with_evaluate_policy() -> None:
    """Monitor-style episode info: evaluate_policy counts whole games, not lives."""
    model = Rainbow("CnnPolicy", AleVecEnv("breakout", 1), buffer_size=100, learning_starts=100)
    env = AleVecEnv("breakout", 1, max_episode_frames=1200)
    env.seed(0)
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
    assert len(returns) == 2 and all(length > 30 for length in lengths)


def whole_games(venv, steps: int, policy) -> list[tuple[float, int]]:
    """(score, length in frames) of every game finished in ``steps`` vector steps of ``policy``."""
    games = []
    venv.reset()
    for _ in range(steps):
        _, _, _, infos = venv.step(policy(venv.num_envs))
        games += [(info["episode"]["r"], info["episode"]["l"]) for info in infos if "episode" in info]
    venv.close()
    return games


@pytest.mark.parametrize(("vec_env", "episodic"), [("ale", True), ("ale", False), ("dummy", True), ("dummy", False)])
def test_a_noop_policy_plays_whole_breakout_games(vec_env: str, episodic: bool) -> None:
    """Breakout waits for FIRE after a life loss: a policy that never presses it must still end
    games in a few thousand frames (SB3's AtariWrapper presses FIRE for it); without the FIRE rule the
    ale path's games run to the 30-minute cap."""

    def noop(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    def make(fire: bool):
        return make_atari_vec_env(
            "ALE/Breakout-v5", 1, seed=0, vec_env=vec_env, terminal_on_life_loss=episodic, fire_on_life_loss=fire
        )

    games = whole_games(make(True), 2_000, noop)  # 8,000 frames
    assert len(games) >= 3 and all(length < 3_000 for _, length in games)  # 535-1,410 frames on SB3's path
    if vec_env == "ale" or not episodic:  # SB3's FireResetEnv cannot be turned off
        assert whole_games(make(False), 2_000, noop) == []  # the stall the rule prevents


def test_random_play_scores_alike_on_both_paths() -> None:
    """Random Breakout through ale-py's vector env and through SB3's AtariWrapper: the game scores
    and the game lengths in frames come from one distribution (Mann-Whitney U). SB3's path adds a few
    hidden reset steps after each life loss (12 frames), too few to tell apart over 40+ games."""
    rng = np.random.default_rng(0)

    def random_policy(n: int) -> np.ndarray:
        return rng.integers(0, 4, size=n)

    ale = whole_games(make_atari_vec_env("ALE/Breakout-v5", 8, seed=1, vec_env="ale"), 1_500, random_policy)
    sb3 = whole_games(make_atari_vec_env("ALE/Breakout-v5", 4, seed=2), 3_000, random_policy)
    assert len(ale) >= 40 and len(sb3) >= 40
    (ale_scores, ale_lengths), (sb3_scores, sb3_lengths) = (np.array(g).T for g in (ale, sb3))
    assert stats.mannwhitneyu(ale_scores, sb3_scores).pvalue > 1e-3
    assert stats.mannwhitneyu(ale_lengths, sb3_lengths).pvalue > 1e-3


@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_frame_storage_is_exact_on_real_atari_streams(vec_env: str) -> None:
    """Life losses (the stack goes on), game ends and wrap-around on a real game, both paths."""
    venv = make_atari_vec_env("ALE/Breakout-v5", N_ENVS, seed=1, vec_env=vec_env)
    plain = ReplayBuffer(40, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS)
    framed = frame_stack_buffer(
        ReplayBuffer, 40, venv.observation_space, venv.action_space, 4, device="cpu", n_envs=N_ENVS
    )
    for transition in vec_env_stream(venv, 120, seed=1):
        plain.add(*transition)
        framed.add(*transition)
    rows = np.arange(plain.size())
    for env in range(N_ENVS):
        envs = np.full_like(rows, env)
        np.testing.assert_array_equal(framed.observations[rows, envs], plain.observations[rows, envs])
        np.testing.assert_array_equal(framed.next_observations[rows, envs], plain.next_observations[rows, envs])


def tiny_cnn_rainbow(env) -> Rainbow:
    return Rainbow(
        "CnnPolicy",
        env,
        buffer_size=400,
        learning_starts=200,
        batch_size=8,
        train_freq=4,
        target_update_interval=50,
        seed=0,
        v_min=-1,
        v_max=1,
    )


@pytest.mark.parametrize("vec_env", ["ale", "dummy"])
def test_rainbow_trains_on_atari(vec_env: str) -> None:
    model = tiny_cnn_rainbow(make_atari_vec_env("ALE/Pong-v5", N_ENVS, seed=0, vec_env=vec_env))
    assert isinstance(model.policy.q_net.features_extractor, NatureCNNTrunk)
    assert model.frame_stack == 4 and isinstance(model.replay_buffer, PrioritizedReplayBuffer)
    assert isinstance(model.replay_buffer.frame_storage, FrameStackStorage)
    model.learn(300)
    model.record_train_stats()  # the means since the last dump (the last train call comes after it)
    assert model._n_updates > 0 and np.isfinite(model.logger.name_to_value["train/loss"])
    assert "train/loss" in model.logger.name_to_value


def test_rainbow_trains_on_minatar() -> None:
    model = tiny_cnn_rainbow(make_minatar_env("MinAtar/Breakout-v1"))
    assert isinstance(model.policy.q_net.features_extractor, MinAtarTrunk)
    assert model.policy.net_arch == [128] and model.frame_stack == 0
    model.learn(300)
    model.record_train_stats()  # the means since the last dump (the last train call comes after it)
    assert model._n_updates > 0 and np.isfinite(model.logger.name_to_value["train/loss"])
    assert "train/loss" in model.logger.name_to_value


def test_minatar_observations_are_channel_first() -> None:
    env = make_minatar_env("MinAtar/SpaceInvaders-v1")
    obs, _ = env.reset(seed=0)
    raw = env.unwrapped.game.state()
    assert obs.dtype == np.uint8 and obs.shape == (raw.shape[2], 10, 10)
    np.testing.assert_array_equal(obs, np.moveaxis(raw, -1, 0))
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: atari_rom("ALE/Breakout-v9"), r"ids for .breakout. are: ALE/Breakout-v5, .*NoFrameskip-v4"),
        (lambda: atari_rom("ALE/Breakot-v5"), "closest games: breakout"),
        (lambda: AleVecEnv("pongg", 1), "closest games: pong"),
        (lambda: make_atari_vec_env("ALE/Pong-v5", 1, vec_env="thread"), "vec_env must be one of"),
        (lambda: make_minatar_env("MinAtar/Breakout-v3"), "valid: MinAtar/Asterix-v0"),
        (lambda: stack_frames(DummyVecEnv([lambda: gym.make("CartPole-v1")]), 4), "frame stacking needs image"),
        (lambda: AleVecEnv("pong", 1, repeat_action_probability=1.5), "repeat_action_probability"),
    ],
)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
