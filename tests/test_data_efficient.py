"""Data-efficient Rainbow's pieces: DataEfficientTrunk (the patch products against Conv2d, values and
gradients), observations prepared once per batch, flush_denormal, the DER config entries, and the
probe: full Rainbow learns a chain's values from stacked frames through the DER encoder."""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

from rainbow_ext import DataEfficientTrunk, Rainbow
from rainbow_ext.layers import NatureCNNTrunk, noise_disabled
from rainbow_ext.zoo import zoo_config
from rainbow_ext.zoo.config import CONFIG_DIR, ConfigError, import_object, parse_policy_kwargs
from tests.helpers.probes import GAMMA, PixelChain


def image_space(channels: int, height: int, width: int) -> spaces.Box:
    return spaces.Box(0, 255, shape=(channels, height, width), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(4, 84, 84), (3, 64, 90), (1, 25, 31)])
def test_patch_products_equal_the_convolutions(shape: tuple[int, int, int], device: th.device) -> None:
    th.manual_seed(0)
    trunk = DataEfficientTrunk(image_space(*shape)).to(device)
    k = DataEfficientTrunk.KERNEL
    assert trunk.features_dim == 64 * (shape[1] // k // k) * (shape[2] // k // k)
    images = th.randint(0, 256, (6, *shape), dtype=th.uint8, device=device)
    scaled = images.float() / 255
    reference = trunk.cnn(scaled)
    reference.square().sum().backward()
    expected_grads = [p.grad.clone() for p in trunk.parameters()]
    trunk.zero_grad()
    features = trunk.features(trunk.prepare(images, 255.0))
    features.square().sum().backward()
    th.testing.assert_close(features, reference, rtol=1e-5, atol=1e-5)
    for grad, expected in zip((p.grad for p in trunk.parameters()), expected_grads, strict=True):
        th.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)
    # forward() on SB3's preprocessed floats (what SB3's DQN passes) gives the same features
    th.testing.assert_close(trunk(scaled), reference, rtol=1e-5, atol=1e-5)


def test_prepared_patches_are_sb3s_scaled_pixels_in_conv_weight_order() -> None:
    space = image_space(4, 84, 84)
    trunk = DataEfficientTrunk(space)
    images = th.randint(0, 256, (3, 4, 84, 84), dtype=th.uint8)
    rows = trunk.prepare(images, 255.0)
    # the first layer's 15x15 outputs that the second layer reads (of 16x16), 25 rows per second-layer patch
    assert rows.shape == (3 * 3 * 3 * 25, 4 * 25) and rows.dtype == th.float32
    scaled = preprocess_obs(images, space)  # obs.float() / 255.0
    # row (n, i2, j2, a, b), column (c, kh, kw) = pixel (n, c, 5 (5 i2 + a) + kh, 5 (5 j2 + b) + kw), bit for bit
    for n, i2, j2, a, b, c, kh, kw in [(2, 1, 2, 3, 4, 3, 4, 1), (0, 0, 0, 0, 0, 0, 0, 0), (1, 2, 2, 4, 4, 3, 4, 4)]:
        row, col = (((n * 3 + i2) * 3 + j2) * 5 + a) * 5 + b, (c * 5 + kh) * 5 + kw
        assert rows[row, col] == scaled[n, c, 5 * (5 * i2 + a) + kh, 5 * (5 * j2 + b) + kw]

    # every row is one first-layer patch: the set of rows is that of all 15x15 patches
    def by_position(pixels: th.Tensor) -> th.Tensor:
        patches = pixels[:, :, :75, :75].reshape(3, 4, 15, 5, 15, 5).permute(0, 2, 4, 1, 3, 5)  # [n, i1, j1, c, kh, kw]
        return patches.reshape(3, 3, 5, 3, 5, 100).permute(0, 1, 3, 2, 4, 5).reshape(675, 100)

    assert th.equal(rows, by_position(scaled))
    assert th.equal(trunk.prepare(scaled), by_position(scaled))  # floats: the same rows
    assert th.equal(trunk.prepare(images, 1.0), by_position(images.float()))  # uint8 taken as it is


@pytest.mark.parametrize("shape", [(4, 84, 84), (3, 64, 90)])
def test_bfloat16_products_stay_close_to_the_convolutions(shape: tuple[int, int, int], device: th.device) -> None:
    th.manual_seed(0)
    trunk = DataEfficientTrunk(image_space(*shape), bfloat16=True).to(device)
    images = th.randint(0, 256, (6, *shape), dtype=th.uint8, device=device)
    reference = trunk.cnn(images.float() / 255)
    reference.square().sum().backward()
    expected_grads = [p.grad.clone() for p in trunk.parameters()]
    trunk.zero_grad()
    features = trunk.features(trunk.prepare(images, 255.0))
    features.square().sum().backward()
    # float32 features and float32 gradients on float32 parameters, within bfloat16's rounding
    assert features.dtype == th.float32 and all(p.grad.dtype == th.float32 for p in trunk.parameters())
    th.testing.assert_close(features, reference, rtol=0.02, atol=0.02 * reference.abs().max().item())
    for grad, expected in zip((p.grad for p in trunk.parameters()), expected_grads, strict=True):
        th.testing.assert_close(grad, expected, rtol=0.05, atol=0.05 * expected.abs().max().item())
    # and not float32's own results: the products did run in bfloat16
    assert not th.allclose(features, reference, rtol=1e-5, atol=1e-6)


def test_bfloat16_patch_rows_are_the_float32_rows_rounded() -> None:
    images = th.randint(0, 256, (3, 4, 84, 84), dtype=th.uint8)
    rows = DataEfficientTrunk(image_space(4, 84, 84)).prepare(images, 255.0)
    half = DataEfficientTrunk(image_space(4, 84, 84), bfloat16=True)
    assert half.prepare(images, 255.0).dtype == th.bfloat16
    assert th.equal(half.prepare(images, 255.0), rows.bfloat16())
    assert th.equal(half.prepare(images.float() / 255.0), rows.bfloat16())  # SB3's preprocessed floats too
    with pytest.raises(ValueError, match="bfloat16 must be True or False, got 'yes'"):
        DataEfficientTrunk(image_space(4, 84, 84), bfloat16="yes")  # type: ignore[arg-type]


def test_a_bfloat16_trunk_saves_and_loads_as_one(tmp_path) -> None:
    trunk = dict(features_extractor_class=DataEfficientTrunk, features_extractor_kwargs=dict(bfloat16=True))
    model = Rainbow("CnnPolicy", SmallFrames(), learning_starts=10, buffer_size=100, policy_kwargs=trunk, seed=1)
    model.learn(30)
    model.save(tmp_path / "model.zip")
    loaded = Rainbow.load(tmp_path / "model.zip")
    for net in (loaded.q_net, loaded.q_net_target):
        assert net.features_extractor.bfloat16 and all(p.dtype == th.float32 for p in net.parameters())
    obs = th.randint(0, 256, (4, 1, 30, 30), dtype=th.uint8, device=model.device)
    with th.no_grad(), noise_disabled(model.q_net), noise_disabled(loaded.q_net):
        assert th.equal(model.q_net(obs), loaded.q_net(obs))
    # an empty batch gives no features, not an error
    empty = th.zeros((0, 1, 30, 30), dtype=th.uint8, device=model.device)
    assert loaded.q_net.features_extractor(empty).shape == (0, loaded.q_net.features_extractor.features_dim)


def test_data_efficient_trunk_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="at least 25x25"):
        DataEfficientTrunk(image_space(4, 24, 84))
    with pytest.raises(ValueError, match="channel-first image"):
        DataEfficientTrunk(spaces.Box(-1, 1, shape=(8,)))


class SmallFrames(gym.Env):
    """Random 30x30 uint8 frames, three actions, a reward for action 1, ten steps an episode."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, shape=(1, 30, 30), dtype=np.uint8)
        self.action_space = spaces.Discrete(3)
        self._t = 0

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, size=(1, 30, 30), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        return self._frame(), float(action == 1), self._t == 10, False, {}


def test_dqn_preset_with_the_der_encoder_equals_sb3_dqn() -> None:
    """Rainbow prepares each batch once (patch rows straight from uint8) where SB3's DQN preprocesses and
    then patches per pass: the same numbers, so every component off still trains SB3's DQN bit for bit."""
    network = dict(features_extractor_class=DataEfficientTrunk, net_arch=[32])
    kwargs = dict(learning_starts=50, buffer_size=1_000, train_freq=1, target_update_interval=50, batch_size=8, seed=3)

    sb3 = DQN("CnnPolicy", DummyVecEnv([SmallFrames]), policy_kwargs=network, **kwargs).learn(300)
    adam = dict(optimizer_kwargs=dict(eps=1e-8))  # SB3's Adam
    ours = Rainbow.from_preset(
        "dqn", "CnnPolicy", DummyVecEnv([SmallFrames]), policy_kwargs={**network, **adam}, cuda_graphs=False, **kwargs
    ).learn(300)
    assert ours._n_updates == sb3._n_updates == 250
    for a, b in zip(sb3.policy.state_dict().values(), ours.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)


def test_cnn_policy_gives_the_der_encoder_its_256_hidden_units() -> None:
    model = Rainbow("CnnPolicy", SmallFrames(), policy_kwargs=dict(features_extractor_class=DataEfficientTrunk))
    assert isinstance(model.q_net.features_extractor, DataEfficientTrunk)
    assert model.q_net.net_arch == [256]
    # prepared once or not, the network computes the same values
    obs = th.randint(0, 256, (5, 1, 30, 30), dtype=th.uint8, device=model.device)
    with th.no_grad(), noise_disabled(model.q_net):
        th.testing.assert_close(model.q_net(obs), model.q_net(model.q_net.prepare(obs), prepared=True))


def test_der_entries_name_their_networks() -> None:
    der = zoo_config("rainbow", "ALE/Pong-v5", conf_file=CONFIG_DIR / "rainbow_der.yml").hyperparams
    assert der["policy_kwargs"] == {"features_extractor_class": DataEfficientTrunk, "net_arch": [256]}
    assert (der["n_steps"], der["noisy_sigma0"], der["target_update_interval"], der["flush_denormal"]) == (
        20, 0.1, 2000, True)  # fmt: skip
    dopamine = zoo_config("rainbow", "ALE/Pong-v5", conf_file=CONFIG_DIR / "rainbow_der_dopamine.yml").hyperparams
    assert dopamine["policy_kwargs"] == {"features_extractor_class": NatureCNNTrunk, "net_arch": [512]}
    assert dopamine["n_steps"] == 10
    # trunks by bare name, without an import path; a bare name that is no class is refused
    assert import_object("DataEfficientTrunk", "x") is DataEfficientTrunk
    assert parse_policy_kwargs("dict(features_extractor_class=MinAtarTrunk)")["features_extractor_class"].__name__ == (
        "MinAtarTrunk")  # fmt: skip
    with pytest.raises(ConfigError, match="cannot import"):
        import_object("DataEfficientTrunkk", "policy_kwargs['features_extractor_class']")


def subnormal_survives() -> bool:
    """Whether the CPU keeps a subnormal float in arithmetic (it reads as zero with denormals flushed)."""
    return bool((th.tensor([1e-39], dtype=th.float32) * 1.0).item() != 0.0)


def test_flush_denormal_holds_during_learn_only() -> None:
    if not th.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormal floats")
    seen = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(subnormal_survives())
            return True

    model = Rainbow("MlpPolicy", "CartPole-v1", learning_starts=10, buffer_size=500, flush_denormal=True)
    assert subnormal_survives()
    model.learn(30, callback=Record())
    assert seen and not any(seen)  # flushed while learning
    assert subnormal_survives()  # and back after
    Rainbow("MlpPolicy", "CartPole-v1", learning_starts=10, buffer_size=500).learn(20, callback=Record())
    assert all(seen[-20:])  # off by default
    # a mode the caller set stays set after learn
    th.set_flush_denormal(True)
    try:
        model.learn(10, callback=Record())
        assert not subnormal_survives()
    finally:
        th.set_flush_denormal(False)
    # with more than one torch thread, the other threads keep their mode: a warning says so
    threads = th.get_num_threads()
    th.set_num_threads(2)
    try:
        with pytest.warns(UserWarning, match="thread that calls learn only"):
            model.learn(10)
    finally:
        th.set_num_threads(threads)
    with pytest.raises(ValueError, match="flush_denormal must be one of True, False"):
        Rainbow("MlpPolicy", "CartPole-v1", flush_denormal="yes")


@pytest.mark.parametrize("bfloat16", [False, True])
def test_full_rainbow_learns_a_chains_values_through_the_der_encoder(bfloat16: bool) -> None:
    """The pixel probe of tests/test_pixel_probe.py with DER's encoder: its 5x5 patches see the block; with
    the encoder's products in bfloat16 too."""
    env = VecFrameStack(DummyVecEnv([PixelChain]), n_stack=4)
    trunk = dict(features_extractor_class=DataEfficientTrunk, features_extractor_kwargs=dict(bfloat16=bfloat16))
    model = Rainbow(
        "CnnPolicy", env, learning_rate=1e-3, buffer_size=5_000, learning_starts=200, gradient_steps=4,
        target_update_interval=100, gamma=GAMMA, exploration_initial_eps=0.5, exploration_final_eps=0.5,
        policy_kwargs=dict(**trunk, net_arch=[64]), flush_denormal=True, seed=0,
    )  # fmt: skip
    assert model.frame_stack == 4 and isinstance(model.q_net.features_extractor, DataEfficientTrunk)
    model.learn(2500)
    stacks = [env.reset()]
    for _ in range(3):
        stacks.append(env.step(np.zeros(1, dtype=int))[0])
    with th.no_grad(), noise_disabled(model.q_net):
        q = model.q_net(model.policy.obs_to_tensor(np.concatenate(stacks))[0]).cpu().numpy()
    expected = np.array([GAMMA**3, GAMMA**2, GAMMA, 1.0])[:, None].repeat(2, axis=1)
    np.testing.assert_allclose(q, expected, atol=0.1)
