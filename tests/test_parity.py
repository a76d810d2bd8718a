"""Full Rainbow, and each single component, as a drop-in for SB3's DQN: every observation space SB3's
DQN supports, CnnPolicy's options, other optimizers, and save/load on each, in the spirit of SB3's own
DQN tests (which run with Rainbow in their place, apart from the refusals the README lists)."""

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.torch_layers import NatureCNN

from rainbow_ext import PRESETS, DictNStepReplayBuffer, PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, Rainbow
from rainbow_ext.presets import COMPONENTS

PARITY_PRESETS = ["rainbow", *COMPONENTS]  # full Rainbow and each component alone
IMAGE = spaces.Box(0, 255, shape=(36, 36, 1), dtype=np.uint8)  # height, width, channels: SB3 transposes it
SPACES: dict[str, spaces.Space] = {
    "Box": spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    "Discrete": spaces.Discrete(4),
    "MultiDiscrete": spaces.MultiDiscrete([2, 3]),
    "MultiBinary": spaces.MultiBinary(3),
    "Image": IMAGE,
    "Dict": spaces.Dict({"vec": spaces.Box(-1.0, 1.0, shape=(2,)), "disc": spaces.Discrete(3), "img": IMAGE}),
}
SMALL = dict(buffer_size=200, learning_starts=40, batch_size=8, target_update_interval=50, seed=0)


class SpaceEnv(gym.Env):
    """Observations drawn from any space; reward 1 for action 0; episodes of 10 steps."""

    def __init__(self, observation_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(2)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self._steps += 1
        return self.observation_space.sample(), float(action == 0), False, self._steps >= 10, {}


def policy_for(space: spaces.Space) -> str:
    return "MultiInputPolicy" if isinstance(space, spaces.Dict) else "CnnPolicy" if space is IMAGE else "MlpPolicy"


def expected_buffer(flags: dict[str, Any], space: spaces.Space) -> type:
    is_dict = isinstance(space, spaces.Dict)
    if flags["prioritized"]:
        return PrioritizedDictReplayBuffer if is_dict else PrioritizedReplayBuffer
    if flags["n_steps"] > 1:
        return DictNStepReplayBuffer if is_dict else NStepReplayBuffer
    return DictReplayBuffer if is_dict else ReplayBuffer


def assert_same_predictions(model: Rainbow, loaded: Rainbow, env: gym.Env) -> None:
    observations = [env.observation_space.sample() for _ in range(5)]
    for obs in observations:
        expected, _ = model.predict(obs, deterministic=True)
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    restored = loaded.policy.state_dict()
    for name, saved in model.policy.state_dict().items():
        th.testing.assert_close(restored[name], saved, msg=name)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("preset", PARITY_PRESETS)
def test_every_observation_space_trains_saves_and_loads(preset: str, space_name: str, tmp_path: Path) -> None:
    space = SPACES[space_name]
    env = SpaceEnv(space)
    model = Rainbow.from_preset(preset, policy_for(space), env, **SMALL).learn(120)
    assert model._n_updates > 0
    assert type(model.replay_buffer) is expected_buffer(PRESETS[preset], space)
    assert getattr(model.replay_buffer, "n_steps", 1) == PRESETS[preset]["n_steps"]
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = Rainbow.load(tmp_path / "model.zip", env=env)
    assert_same_predictions(model, loaded, env)
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer.size() == model.replay_buffer.size()
    loaded.learn(40, reset_num_timesteps=False)  # and it goes on training from the loaded buffer
    assert loaded._n_updates > model._n_updates


@pytest.mark.parametrize("preset", PARITY_PRESETS)
def test_cnn_policy_takes_sb3s_options(preset: str, tmp_path: Path) -> None:
    env = SpaceEnv(IMAGE)
    # features_dim: SB3's NatureCNN ends in that many units; Rainbow's head's hidden layer plays that part
    kwargs = dict(features_extractor_kwargs=dict(features_dim=32))
    model = Rainbow.from_preset(preset, "CnnPolicy", env, policy_kwargs=kwargs, **SMALL).learn(60)
    assert model.q_net.net_arch == [32] and model.q_net.features_dim == 64  # Nature convolutions' output at 36x36
    model.save(tmp_path / "model.zip")
    assert_same_predictions(model, Rainbow.load(tmp_path / "model.zip", env=env), env)
    # SB3's own NatureCNN (or any extractor class) with its own features_dim
    kwargs = dict(features_extractor_class=NatureCNN, features_extractor_kwargs=dict(features_dim=24))
    model = Rainbow.from_preset(preset, "CnnPolicy", env, policy_kwargs=kwargs, **SMALL).learn(60)
    assert isinstance(model.q_net.features_extractor, NatureCNN) and model.q_net.features_dim == 24
    assert model.q_net.net_arch == []  # as SB3's DQN: NatureCNN's own last layer is the hidden layer
    # images already in [0, 1]
    floats = SpaceEnv(spaces.Box(0.0, 1.0, shape=(1, 36, 36), dtype=np.float32))
    Rainbow.from_preset(preset, "CnnPolicy", floats, policy_kwargs=dict(normalize_images=False), **SMALL).learn(60)


@pytest.mark.parametrize(
    ("policy_kwargs", "message"),
    [
        (dict(features_extractor_kwargs=dict(features_dim=32), net_arch=[64]), r"conflicts with net_arch=\[64\]"),
        (dict(features_extractor_kwargs=dict(features_dim=0)), "features_dim'] must be an integer >= 1"),
        (dict(share_features_extractor=False), "share_features_extractor'] does not apply to DQN policies"),
        (dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(fused=True)), r"\['fused'\] are not arguments"),
        (dict(optimizer_kwargs=dict(lr=0.1)), r"\['lr'\] are given by SB3 itself.*pass learning_rate"),
    ],
)
def test_options_that_cannot_apply_say_why(policy_kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rainbow("CnnPolicy", SpaceEnv(IMAGE), policy_kwargs=policy_kwargs, **SMALL)


@pytest.mark.parametrize("preset", PARITY_PRESETS)
def test_any_optimizer_class(preset: str, tmp_path: Path) -> None:
    """Rainbow's Adam settings (eps 1.5e-4, fused) belong to Adam; another optimizer gets only what is passed."""
    env = SpaceEnv(SPACES["Box"])
    model = Rainbow.from_preset(preset, "MlpPolicy", env, **SMALL)
    assert type(model.policy.optimizer) is th.optim.Adam
    assert model.policy.optimizer.defaults["eps"] == 1.5e-4 and model.policy.optimizer.defaults["fused"]
    kwargs = dict(optimizer_class=RMSpropTFLike)
    model = Rainbow.from_preset(preset, "MlpPolicy", env, policy_kwargs=kwargs, **SMALL).learn(80)
    assert model.policy.optimizer.defaults["eps"] == 1e-8  # its own default, untouched
    kwargs = dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(alpha=0.9, eps=1e-5))
    model = Rainbow.from_preset(preset, "MlpPolicy", env, policy_kwargs=kwargs, **SMALL).learn(80)
    assert model.policy.optimizer.defaults["alpha"] == 0.9 and model._n_updates > 0
    model.save(tmp_path / "model.zip")
    loaded = Rainbow.load(tmp_path / "model.zip", env=env)
    assert type(loaded.policy.optimizer) is RMSpropTFLike and loaded.policy.optimizer.defaults["alpha"] == 0.9
    sgd = Rainbow.from_preset(preset, "MlpPolicy", env, policy_kwargs=dict(optimizer_class=th.optim.SGD), **SMALL)
    assert sgd.learn(80)._n_updates > 0
