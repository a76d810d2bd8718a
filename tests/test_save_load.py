"""Save/load in SB3's zip format for every preset, multi-env training, replay buffer round trip."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from rainbow_ext import PRESETS, Rainbow
from rainbow_ext.policies import RainbowPolicy

SMALL = dict(
    learning_starts=64,
    buffer_size=2_000,
    train_freq=2,
    target_update_interval=64,
    batch_size=16,
    policy_kwargs=dict(net_arch=[32]),
    seed=3,
)
FLAGS = ("double_q", "dueling", "noisy", "distributional", "n_steps", "prioritized", "exploration_final_eps")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_four_envs_then_save_and_load(preset: str, tmp_path: Path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = Rainbow.from_preset(preset, "MlpPolicy", env, **SMALL).learn(600)
    assert model.num_timesteps == 600 and model._n_updates > 0
    path = tmp_path / "model.zip"
    model.save(path)

    loaded = Rainbow.load(path, env=env)
    for flag in FLAGS:
        assert getattr(loaded, flag) == getattr(model, flag), flag
    assert loaded.policy_kwargs == model.policy_kwargs
    for (name, a), (_, b) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=True):
        th.testing.assert_close(a, b, msg=name)
    obs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    # Training goes on after loading.
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 800


def test_policy_saves_and_loads_alone(tmp_path: Path) -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", n_atoms=21, v_min=-5, v_max=30, noisy_sigma0=0.3, **SMALL)
    model.policy.save(tmp_path / "policy.pt")
    policy = RainbowPolicy.load(tmp_path / "policy.pt")
    assert policy.q_net.n_atoms == 21 and policy.q_net.v_max == 30 and policy.q_net.noisy_sigma0 == 0.3
    th.testing.assert_close(policy.q_net.support, th.linspace(-5, 30, 21, device=policy.device))
    obs = th.randn(8, 4)
    th.testing.assert_close(
        policy.predict(obs.numpy(), deterministic=True)[0], model.policy.predict(obs.numpy(), deterministic=True)[0]
    )


def test_replay_buffer_round_trip(tmp_path: Path) -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", **SMALL).learn(300)
    assert isinstance(model.replay_buffer, NStepReplayBuffer) and model.replay_buffer.n_steps == 3
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = Rainbow.load(_saved(model, tmp_path), env=model.get_env())
    # The reloaded model builds its own n-step buffer from the saved n_steps and gamma ...
    assert isinstance(loaded.replay_buffer, NStepReplayBuffer)
    assert (loaded.replay_buffer.n_steps, loaded.replay_buffer.gamma) == (3, model.gamma)
    assert loaded.replay_buffer.size() == 0
    # ... and then takes the saved transitions.
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 300
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    np.random.seed(0)
    a = model.replay_buffer.sample(32)
    np.random.seed(0)
    b = loaded.replay_buffer.sample(32)
    for x, y in zip(a, b, strict=True):
        if x is not None:
            th.testing.assert_close(x, y)


def _saved(model: Rainbow, tmp_path: Path) -> Path:
    path = tmp_path / "model.zip"
    model.save(path)
    return path


class Counting(gym.Env):
    """Observation and reward count the episode's steps (reward t + 1 at step t); ends after ``length``."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 50) -> None:
        self.length, self.t = length, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.array([self.t], np.float32), float(self.t), self.t == self.length, False, {}


NO_TRAINING = dict(learning_starts=1_000, buffer_size=100, train_freq=1)  # one stored step per env step


def _n_step_samples(model: Rainbow, rows: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    samples = model.replay_buffer._get_samples(np.array(rows))  # n_envs = 1: env index 0
    fields = (samples.rewards, samples.discounts, samples.next_observations, samples.dones)
    return tuple(x.cpu().numpy().ravel() for x in fields)


@pytest.mark.parametrize("prioritized", [True, False])
@pytest.mark.parametrize("resume", ["learn again", "load"])
def test_an_env_reset_with_the_buffer_kept_ends_the_episode(prioritized: bool, resume: str, tmp_path: Path) -> None:
    # Six steps of a 50-step episode, then learn() resets the env (a new learn call, or after load),
    # keeping the buffer: the next six steps start a new episode at rows 6-11.
    gamma = 0.5
    kwargs = dict(NO_TRAINING, n_steps=3, gamma=gamma, prioritized=prioritized)
    model = Rainbow("MlpPolicy", Counting(), **kwargs).learn(6)
    if resume == "load":
        model.save(tmp_path / "model.zip")
        model.save_replay_buffer(tmp_path / "buffer.pkl")
        model = Rainbow.load(tmp_path / "model.zip", env=make_vec_env(Counting))
        model.load_replay_buffer(tmp_path / "buffer.pkl")
        model.learn(6, reset_num_timesteps=False)
    else:
        model.learn(6)
    np.testing.assert_array_equal(model.replay_buffer.observations[:12, 0, 0], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])
    returns, discounts, next_obs, dones = _n_step_samples(model, [3, 4, 5, 6])
    # The cut episode's windows stop at its last stored step (reward 6) and bootstrap from its next
    # observation (6): 4 + 5 g + 6 g^2, 5 + 6 g, 6; the new episode's window runs on: 1 + 2 g + 3 g^2.
    np.testing.assert_allclose(returns, [4 + 5 * gamma + 6 * gamma**2, 5 + 6 * gamma, 6, 1 + 2 * gamma + 3 * gamma**2])
    np.testing.assert_allclose(discounts, [gamma**3, gamma**2, gamma, gamma**3])
    np.testing.assert_array_equal(next_obs, [6, 6, 6, 3])
    np.testing.assert_array_equal(dones, [0, 0, 0, 0])


def test_an_episode_that_ended_at_the_reset_stays_terminal() -> None:
    model = Rainbow("MlpPolicy", Counting(length=6), n_steps=3, gamma=0.5, **NO_TRAINING)
    model.learn(6)
    model.learn(6)
    returns, discounts, _, dones = _n_step_samples(model, [4, 5])
    np.testing.assert_allclose(returns, [5 + 6 * 0.5, 6])
    np.testing.assert_allclose(discounts, [0.5**2, 0.5])
    np.testing.assert_array_equal(dones, [1, 1])  # a termination, not a truncation: no bootstrap


def test_two_envs_and_a_wrapped_buffer_end_per_env() -> None:
    # Env 0 is cut mid-episode at the reset, env 1 terminates exactly there; six steps fill the buffer,
    # so the newest row is the last one (pos wraps to 0), and three more steps overwrite rows 0-2.
    gamma = 0.5
    env = DummyVecEnv([lambda: Counting(length=50), lambda: Counting(length=6)])
    kwargs = dict(NO_TRAINING, buffer_size=12, n_steps=3, gamma=gamma)  # SB3 splits it: 6 rows of 2 envs
    model = Rainbow("MlpPolicy", env, **kwargs).learn(12)
    assert model.replay_buffer.full and model.replay_buffer.pos == 0
    model.learn(6)
    buffer = model.replay_buffer
    np.testing.assert_array_equal(buffer.dones[5], [1, 1])
    np.testing.assert_array_equal(buffer.timeouts[5], [1, 0])
    for env_index, final_done in ((0, 0), (1, 1)):
        samples = buffer._get_samples(np.array([3, 4, 5]), env_indices=np.full(3, env_index))
        np.testing.assert_allclose(samples.rewards.cpu().ravel(), [4 + 5 * gamma + 6 * gamma**2, 5 + 6 * gamma, 6])
        np.testing.assert_allclose(samples.discounts.cpu().ravel(), [gamma**3, gamma**2, gamma])
        np.testing.assert_array_equal(samples.next_observations.cpu().ravel(), [6, 6, 6])
        np.testing.assert_array_equal(samples.dones.cpu().ravel(), [final_done] * 3)


def test_with_optimize_memory_usage_the_cut_step_is_terminal_as_in_sb3() -> None:
    # The next observation of the cut step is the following row, which the new episode overwrites:
    # bootstrapping from it would cross the reset, so the step ends as terminal, as SB3's DQN does.
    kwargs = dict(NO_TRAINING, optimize_memory_usage=True, replay_buffer_kwargs=dict(handle_timeout_termination=False))
    rainbow = Rainbow.from_preset("dqn", "MlpPolicy", Counting(), **kwargs)
    dqn = DQN("MlpPolicy", Counting(), **kwargs)
    for model in (rainbow, dqn):
        with pytest.warns(UserWarning, match="truncated"):
            model.learn(6).learn(6)
    for model in (rainbow, dqn):
        samples = model.replay_buffer._get_samples(np.array([4, 5]))
        np.testing.assert_array_equal(samples.next_observations.cpu().ravel(), [5, 0])
        np.testing.assert_array_equal(samples.dones.cpu().ravel(), [0, 1])


def test_a_write_cut_off_midway_keeps_the_previous_file_whole(tmp_path) -> None:
    """Every file the commands write goes through write_atomically (or a staging name and a rename):
    a write that dies halfway, at any point, leaves the previous version as it was and no stray file."""
    import os

    from rainbow_ext.zoo import runs

    path = tmp_path / "config.yml"
    runs.write_yaml(path, {"version": 1})

    def dies_halfway(tmp) -> None:
        with open(tmp, "w") as file:
            file.write("version: ")  # half of the new content, then the process is gone
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.write_atomically(path, dies_halfway)
    assert runs.read_yaml(path) == {"version": 1} and os.listdir(tmp_path) == ["config.yml"]
    runs.write_yaml(path, {"version": 2})
    assert runs.read_yaml(path) == {"version": 2} and os.listdir(tmp_path) == ["config.yml"]


def test_a_zip_saved_before_the_quantile_heads_loads_and_predicts_as_it_did() -> None:
    """tests/helpers/data holds a C51 Rainbow saved (CartPole, 200 steps) by the version before ``distributional``
    took 'qr' and 'iqn'; its policy_kwargs lack the new head options, which take their defaults."""
    from rainbow_ext.layers import noise_disabled

    path = Path(__file__).parent / "helpers" / "data" / "rainbow_saved_before_quantile_heads.zip"
    model = Rainbow.load(path, env=gym.make("CartPole-v1"))
    assert model.distributional is True and model.head_options.kind == "c51" and model.n_atoms == 11
    assert "n_quantiles" not in model.policy_kwargs  # as saved
    obs = th.as_tensor(np.linspace(-0.2, 0.2, 12, dtype=np.float32).reshape(3, 4), device=model.device)
    with th.no_grad(), noise_disabled(model.q_net):
        q = model.q_net(obs).cpu().numpy()
    # the Q-values that version computed for these observations
    expected = [
        [9.9429349899292, 9.886473655700684],
        [9.893202781677246, 9.860445976257324],
        [9.799448013305664, 9.809354782104492],
    ]
    np.testing.assert_allclose(q, expected, rtol=1e-5)
    model.learn(100)  # and it trains on
