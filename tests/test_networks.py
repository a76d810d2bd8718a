"""Heads and policies: dueling, distributional output, Double DQN targets, image and Dict inputs."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from rainbow_ext import PRESETS, Rainbow
from rainbow_ext.layers import NatureCNNTrunk, NoisyLinear, RainbowHead, noise_disabled

SMALL = dict(learning_starts=50, buffer_size=1_000, target_update_interval=50, seed=0)


@pytest.mark.parametrize("n_atoms", [1, 7])
def test_dueling_advantage_has_zero_mean_over_actions(n_atoms: int) -> None:
    th.manual_seed(0)
    head = RainbowHead(8, 5, [16], th.nn.ReLU, dueling=True, noisy=False, noisy_sigma0=0.5, n_atoms=n_atoms)
    features = th.randn(32, 8)
    advantage = head.centered_advantage(features)
    th.testing.assert_close(advantage.mean(dim=1), th.zeros(32, n_atoms), atol=1e-6, rtol=0)
    # Q = V + (A - mean A), per atom
    value = head.value(features).view(-1, 1, n_atoms)
    th.testing.assert_close(head(features), value + advantage)
    th.testing.assert_close(head(features).mean(dim=1, keepdim=True), value, atol=1e-6, rtol=0)


def test_head_layers_follow_the_flags() -> None:
    plain = RainbowHead(8, 3, [16], th.nn.ReLU, dueling=False, noisy=False, noisy_sigma0=0.5, n_atoms=1)
    noisy = RainbowHead(8, 3, [16], th.nn.ReLU, dueling=True, noisy=True, noisy_sigma0=0.5, n_atoms=51)
    assert [type(m) for m in plain.q if not isinstance(m, th.nn.ReLU)] == [th.nn.Linear, th.nn.Linear]
    assert all(isinstance(m, NoisyLinear) for m in [*noisy.value, *noisy.advantage] if not isinstance(m, th.nn.ReLU))
    assert noisy.value[-1].out_features == 51 and noisy.advantage[-1].out_features == 3 * 51


@pytest.mark.parametrize("preset", list(PRESETS))
def test_q_net_returns_expected_q_for_every_preset(preset: str) -> None:
    model = Rainbow.from_preset(preset, "MlpPolicy", "CartPole-v1", **SMALL)
    obs = th.randn(10, 4, device=model.device)
    q = model.q_net(obs)
    assert q.shape == (10, 2)
    kind = model.head_options.kind
    if kind == "c51":
        probs = model.q_net.distribution(obs)
        assert probs.shape == (10, 2, 51)
        th.testing.assert_close(probs.sum(dim=-1), th.ones(10, 2, device=model.device))
        th.testing.assert_close(q, (probs * th.linspace(-10, 10, 51, device=model.device)).sum(dim=-1))
    else:
        with pytest.raises(ValueError, match="distributional"):
            model.q_net.distribution(obs)
    if kind == "qr":  # the mean of the N quantiles
        quantiles = model.q_net.quantiles(obs)
        assert quantiles.shape == (10, 2, 200)
        th.testing.assert_close(q, quantiles.mean(dim=-1))
    elif kind == "iqn":  # the mean over K sampled fractions: the same fractions give the same Q
        with th.random.fork_rng(devices=range(th.cuda.device_count())):  # the draws repeat after the block
            q_again = model.q_net(obs)
        taus = model.q_net.sample_taus(10)
        th.testing.assert_close(q_again, model.q_net.quantiles(obs, taus).mean(dim=-1))
    else:
        with pytest.raises(ValueError, match="quantile head"):
            model.q_net.quantiles(obs)


class _FixedQ(th.nn.Module):
    """Stands in for a Q-network: fixed Q-values for every observation."""

    def __init__(self, q_values: list[float], device: th.device) -> None:
        super().__init__()
        self.q = th.tensor([q_values], device=device)

    def prepare(self, obs: th.Tensor) -> th.Tensor:
        return obs

    def forward(self, obs: th.Tensor, prepared: bool = False) -> th.Tensor:
        return self.q.expand(obs.shape[0], -1)

    def head_output(self, obs: th.Tensor, prepared: bool = False) -> th.Tensor:
        return self(obs).unsqueeze(-1)

    def q_values(self, head_output: th.Tensor) -> th.Tensor:
        return head_output.squeeze(-1)


@pytest.mark.parametrize("double_q", [True, False])
def test_double_q_target_follows_online_argmax(double_q: bool) -> None:
    model = Rainbow.from_preset("double" if double_q else "dqn", "MlpPolicy", "CartPole-v1", gamma=0.5, **SMALL)
    # The online net prefers action 0, the target net action 1.
    model.q_net = _FixedQ([0.5, -1.0], model.device)  # type: ignore[assignment]
    model.q_net_target = _FixedQ([2.0, 10.0], model.device)  # type: ignore[assignment]
    next_obs = th.zeros(4, 4, device=model.device)
    actions = model._next_action_values(next_obs, model.q_net_target(next_obs)).argmax(dim=1)
    assert actions.flatten().tolist() == ([0] * 4 if double_q else [1] * 4)

    # The full TD target: y = r + gamma * Q_target(s', a*).
    data = ReplayBufferSamples(
        observations=th.zeros(4, 4, device=model.device),
        actions=th.zeros(4, 1, dtype=th.long, device=model.device),
        next_observations=next_obs,
        dones=th.tensor([[0.0], [0.0], [1.0], [0.0]], device=model.device),
        rewards=th.ones(4, 1, device=model.device),
    )
    _, q_taken, errors = model._huber_terms(data)
    targets = (q_taken + errors).tolist()  # online Q(s, a=0) = 0.5 lies below every target here
    bootstrap = 2.0 if double_q else 10.0
    assert targets == pytest.approx([1 + 0.5 * bootstrap, 1 + 0.5 * bootstrap, 1.0, 1 + 0.5 * bootstrap])


def test_double_q_selects_with_online_network_in_c51() -> None:
    model = Rainbow.from_preset("rainbow-no-noisy", "MlpPolicy", "CartPole-v1", n_steps=1, **SMALL)
    obs = th.randn(16, 4, device=model.device)
    online_choice = model.q_net(obs).argmax(dim=1, keepdim=True)
    prefer_1 = th.tensor([[0.0, 100.0]], device=model.device)
    target_q = model.q_net_target(obs) + prefer_1  # the target would pick action 1
    th.testing.assert_close(model._next_action_values(obs, target_q).argmax(dim=1, keepdim=True), online_choice)


class _ImageEnv(gym.Env):
    observation_space = spaces.Box(0, 255, shape=(1, 44, 44), dtype=np.uint8)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action == 1), self.np_random.random() < 0.1, False, {}


def test_cnn_policy_puts_fully_connected_layers_in_the_head() -> None:
    model = Rainbow("CnnPolicy", _ImageEnv(), **SMALL)
    assert isinstance(model.q_net.features_extractor, NatureCNNTrunk)
    assert not any(isinstance(m, th.nn.Linear) for m in model.q_net.features_extractor.modules())
    hidden = model.q_net.head.value[0]
    assert isinstance(hidden, NoisyLinear) and hidden.out_features == 512
    model.learn(120)
    assert model.q_net(th.zeros(2, 1, 44, 44, device=model.device)).shape == (2, 3)


def test_cnn_dqn_preset_matches_sb3_cnn_architecture() -> None:
    from stable_baselines3 import DQN

    sb3 = DQN("CnnPolicy", _ImageEnv(), seed=0, buffer_size=100)
    ours = Rainbow.from_preset("dqn", "CnnPolicy", _ImageEnv(), seed=0, buffer_size=100)
    sb3_params = [p.shape for p in sb3.q_net.parameters()]
    our_params = [p.shape for p in ours.q_net.parameters()]
    assert sb3_params == our_params
    # Same seed, same layer order: the same initial weights.
    for a, b in zip(sb3.q_net.parameters(), ours.q_net.parameters(), strict=True):
        th.testing.assert_close(a, b, atol=0, rtol=0)


class _DictEnv(gym.Env):
    observation_space = spaces.Dict({"a": spaces.Box(-1, 1, shape=(3,)), "b": spaces.Discrete(4)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action), self.np_random.random() < 0.2, False, {}


def test_multi_input_policy_trains_saves_and_reloads(tmp_path) -> None:
    model = Rainbow("MultiInputPolicy", _DictEnv(), n_steps=1, prioritized=False, **SMALL).learn(150)
    model.save(tmp_path / "dict.zip")
    loaded = Rainbow.load(tmp_path / "dict.zip", env=_DictEnv())  # with its env, to train on
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 210  # continues from 150 (SB3 collects train_freq steps at a time)
    obs = {"a": np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32), "b": np.arange(16) % 4}
    actions, _ = model.predict(obs, deterministic=True)
    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    with th.no_grad(), noise_disabled(model.q_net):
        np.testing.assert_array_equal(actions, model.q_net(obs_tensor).argmax(dim=1).cpu().numpy())


class _FloatImageEnv(_ImageEnv):
    observation_space = spaces.Box(0.0, 1.0, shape=(2, 40, 40), dtype=np.float32)


def test_cnn_policy_accepts_normalized_float_images() -> None:
    model = Rainbow("CnnPolicy", _FloatImageEnv(), policy_kwargs=dict(normalize_images=False), **SMALL)
    obs = th.rand(3, 2, 40, 40, device=model.device)
    # Not rescaled by 1/255: the trunk sees the observation as it is.
    th.testing.assert_close(
        model.q_net.extract_features(obs, model.q_net.features_extractor), model.q_net.features_extractor(obs)
    )


def test_categorical_loss_matches_a_per_atom_reference() -> None:
    """The whole C51 step: a* from the online net (double), the target net's distribution at a*,
    projection with per-sample discounts and terminals, cross-entropy at the taken actions."""
    th.manual_seed(0)
    support = np.linspace(-2, 2, 11)
    model = Rainbow("MlpPolicy", "CartPole-v1", buffer_size=100, n_atoms=11, v_min=-2, v_max=2, noisy=False)
    with th.no_grad():  # make the target network disagree with the online one
        for p in model.q_net_target.parameters():
            p.add_(0.3 * th.randn_like(p))
    batch = 8
    device = model.device
    data = ReplayBufferSamples(
        observations=th.randn(batch, 4, device=device),
        actions=th.randint(0, 2, (batch, 1), device=device),
        next_observations=th.randn(batch, 4, device=device),
        dones=th.tensor([[0.0], [1.0], [0.0], [0.0], [1.0], [0.0], [0.0], [0.0]], device=device),
        rewards=th.randn(batch, 1, device=device),
        discounts=th.tensor([[0.9], [0.9], [0.81], [0.729], [0.9], [0.9], [0.729], [0.81]], device=device),
    )
    losses, _, _ = model._categorical_terms(data)
    with th.no_grad():
        next_actions = model.q_net(data.next_observations).argmax(dim=1).cpu().numpy()
        assert (next_actions != model.q_net_target(data.next_observations).argmax(dim=1).cpu().numpy()).any()
        target_dist = model.q_net_target.distribution(data.next_observations).cpu().numpy()
        log_probs = th.log_softmax(model.q_net.head_output(data.observations), dim=-1).cpu().numpy()
    for i in range(batch):
        target = np.zeros(11)
        for j, z in enumerate(support):
            r, done, discount = data.rewards[i, 0].item(), data.dones[i, 0].item(), data.discounts[i, 0].item()
            b = (np.clip(r + (1 - done) * discount * z, -2, 2) + 2) / 0.4
            lo, hi = int(np.floor(b)), int(np.ceil(b))
            p = target_dist[i, next_actions[i], j]
            if lo == hi:
                target[lo] += p
            else:
                target[lo] += p * (hi - b)
                target[hi] += p * (b - lo)
        expected = -(target * log_probs[i, data.actions[i, 0].item()]).sum()
        assert losses[i].item() == pytest.approx(expected, abs=1e-5)


def test_noise_disabled_q_values_are_the_mean_network() -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", **SMALL)
    obs = th.randn(5, 4, device=model.device)
    with noise_disabled(model.q_net):
        a = model.q_net(obs)
        model.policy.reset_noise()
        b = model.q_net(obs)
    th.testing.assert_close(a, b)
    assert not th.allclose(model.q_net(obs), a)
