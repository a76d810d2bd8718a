"""Dict observations with every component: n-step transitions and prioritized sampling over SB3's dict
storage give exactly the samples they give over arrays (the parts compose; nothing is re-implemented
per storage), Rainbow picks the right buffer, and full Rainbow learns a probe's values through a Dict."""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.her import HerReplayBuffer

from rainbow_ext import DictNStepReplayBuffer, PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, Rainbow
from rainbow_ext.layers import noise_disabled
from tests.helpers.probes import Chain, expected_q
from tests.helpers.streams import irregular_stream

BOX = spaces.Box(0, 255, shape=(2, 3, 3), dtype=np.uint8)
DICT = spaces.Dict({"x": BOX})
ACT = spaces.Discrete(3)


def twins(array_class: type, dict_class: type, n_envs: int, **kwargs: Any) -> tuple[Any, Any]:
    """The same transitions in an array buffer and a Dict buffer (observations under the key "x")."""
    plain = array_class(7 * n_envs, BOX, ACT, device="cpu", n_envs=n_envs, **kwargs)
    keyed = dict_class(7 * n_envs, DICT, ACT, device="cpu", n_envs=n_envs, **kwargs)
    for obs, next_obs, *rest in irregular_stream(n_envs, 2, 40, seed=n_envs):
        plain.add(obs, next_obs, *rest)
        keyed.add({"x": obs}, {"x": next_obs}, *rest)
    return plain, keyed


def assert_same_samples(got: Any, expected: Any) -> None:
    for name in ("observations", "next_observations"):
        np.testing.assert_array_equal(getattr(got, name)["x"].numpy(), getattr(expected, name).numpy(), err_msg=name)
    for name in ("actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(got, name).numpy(), getattr(expected, name).numpy(), err_msg=name)
    assert (got.discounts is None) == (expected.discounts is None)
    if expected.discounts is not None:
        np.testing.assert_array_equal(got.discounts.numpy(), expected.discounts.numpy())


@pytest.mark.parametrize("n_envs", [1, 3])
@pytest.mark.parametrize("n_steps", [1, 2, 4])
def test_dict_n_step_samples_equal_sb3s_array_ones(n_steps: int, n_envs: int) -> None:
    """Against SB3's own NStepReplayBuffer (ReplayBuffer for n = 1): truncations, terminations, the
    newest step, wrap-around and several envs, at every stored row."""
    array_class = NStepReplayBuffer if n_steps > 1 else ReplayBuffer
    kwargs = {"n_steps": n_steps, "gamma": 0.9} if n_steps > 1 else {}
    plain, keyed = twins(array_class, DictNStepReplayBuffer, n_envs, **kwargs)
    if n_steps == 1:
        keyed.n_steps = 1
    rows = np.arange(plain.size())
    np.random.seed(n_steps)  # both draw the env of each row the same way
    expected = plain._get_samples(rows)
    np.random.seed(n_steps)
    assert_same_samples(keyed._get_samples(rows), expected)
    if n_steps == 1:  # and SB3's DictReplayBuffer, for one-step transitions
        reference = DictReplayBuffer(7 * n_envs, DICT, ACT, device="cpu", n_envs=n_envs)
        for obs, next_obs, *rest in irregular_stream(n_envs, 2, 40, seed=n_envs):
            reference.add({"x": obs}, {"x": next_obs}, *rest)
        np.random.seed(0)
        dict_expected = reference._get_samples(rows)
        np.random.seed(0)
        got = keyed._get_samples(rows)
        np.testing.assert_array_equal(got.observations["x"].numpy(), dict_expected.observations["x"].numpy())
        np.testing.assert_array_equal(got.rewards.numpy(), dict_expected.rewards.numpy())
        np.testing.assert_array_equal(got.dones.numpy(), dict_expected.dones.numpy())


@pytest.mark.parametrize("n_steps", [1, 3])
def test_prioritized_dict_sampling_equals_the_array_buffers(n_steps: int) -> None:
    """The same priorities give the same slots, weights and transitions, over dicts as over arrays."""
    plain, keyed = twins(PrioritizedReplayBuffer, PrioritizedDictReplayBuffer, 2, n_steps=n_steps, gamma=0.9)
    priorities = np.random.default_rng(0).gamma(1.0, size=plain.size() * 2)
    for buffer in (plain, keyed):
        buffer.update_priorities(np.arange(priorities.size), priorities)
        buffer.beta = 0.6
    np.random.seed(5)
    expected = plain.sample(64)
    np.random.seed(5)
    got = keyed.sample(64)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.weights.numpy(), expected.weights.numpy())
    assert_same_samples(got, expected)
    assert len(np.unique(expected.indices)) > 8 and expected.weights.min() < 1.0  # 14 slots; priorities shaped it


class DictChain(gym.ObservationWrapper):
    """The Chain probe (4 steps, reward 1 at the end) with its observation under two keys."""

    def __init__(self) -> None:
        super().__init__(Chain())
        self.observation_space = spaces.Dict({"position": self.env.observation_space, "bias": spaces.Discrete(2)})

    def observation(self, observation: np.ndarray) -> dict[str, Any]:
        return {"position": observation, "bias": 1}


def test_full_rainbow_learns_a_probes_values_through_a_dict() -> None:
    """n-step (3 over a 4-step chain), prioritized replay, C51, noisy, dueling and double, on Dict
    observations: Q(k / 3) = gamma^(3 - k) to within 0.1, as tests/test_probes.py asks of arrays."""
    gamma = 0.9
    model = Rainbow(
        "MultiInputPolicy",
        DictChain(),
        learning_rate=3e-3,
        buffer_size=5_000,
        learning_starts=200,
        gradient_steps=4,
        target_update_interval=100,
        gamma=gamma,
        exploration_initial_eps=0.5,
        exploration_final_eps=0.5,
        policy_kwargs=dict(net_arch=[32]),
        seed=0,
    ).learn(2000)
    assert isinstance(model.replay_buffer, PrioritizedDictReplayBuffer) and model.replay_buffer.n_steps == 3
    observations, q_true = expected_q(Chain, gamma)
    dict_observations = {"position": observations.astype(np.float32), "bias": np.ones(len(observations))}
    obs, _ = model.policy.obs_to_tensor(dict_observations)
    with th.no_grad(), noise_disabled(model.q_net):
        q = model.q_net(obs).cpu().numpy()
    np.testing.assert_allclose(q, q_true, atol=0.1)


@pytest.mark.parametrize(
    ("kwargs", "buffer_class"),
    [
        ({}, PrioritizedDictReplayBuffer),
        ({"prioritized": False}, DictNStepReplayBuffer),
        ({"n_steps": 1}, PrioritizedDictReplayBuffer),
        ({"n_steps": 1, "prioritized": False}, DictReplayBuffer),
    ],
)
def test_rainbow_picks_a_dict_buffer_for_its_components(kwargs: dict, buffer_class: type) -> None:
    model = Rainbow("MultiInputPolicy", DictChain(), buffer_size=100, **kwargs)
    assert type(model.replay_buffer) is buffer_class
    assert getattr(model.replay_buffer, "n_steps", 1) == kwargs.get("n_steps", 3)


def test_buffers_that_cannot_hold_a_component_are_refused() -> None:
    from stable_baselines3.common.envs import BitFlippingEnv

    env = BitFlippingEnv(n_bits=4, continuous=False)
    her = dict(replay_buffer_class=HerReplayBuffer, replay_buffer_kwargs=dict(n_sampled_goal=2))
    with pytest.raises(ValueError, match="prioritized=True does not combine with HerReplayBuffer"):
        Rainbow("MultiInputPolicy", env, **her)
    with pytest.raises(ValueError, match="n_steps=3 does not combine with HerReplayBuffer"):
        Rainbow("MultiInputPolicy", env, prioritized=False, **her)
    Rainbow("MultiInputPolicy", env, prioritized=False, n_steps=1, learning_starts=20, **her).learn(60)
    # a buffer that would ignore n_steps (SB3 only warns, and trains one-step returns)
    with pytest.raises(ValueError, match=r"n_steps=3 needs an n-step replay buffer.*got replay_buffer_class=Replay"):
        Rainbow("MlpPolicy", "CartPole-v1", prioritized=False, replay_buffer_class=ReplayBuffer)
    with pytest.raises(ValueError, match="prioritized=True needs a prioritized buffer"):
        Rainbow("MlpPolicy", "CartPole-v1", replay_buffer_class=NStepReplayBuffer)
    # storage of the other kind: SB3 would fail deep inside the buffer, or assert
    with pytest.raises(ValueError, match=r"Dict observations need a Dict replay buffer.*PrioritizedReplayBuffer"):
        Rainbow("MultiInputPolicy", DictChain(), replay_buffer_class=PrioritizedReplayBuffer)
    with pytest.raises(ValueError, match="PrioritizedDictReplayBuffer stores Dict observations, and these are not"):
        Rainbow("MlpPolicy", "CartPole-v1", replay_buffer_class=PrioritizedDictReplayBuffer)
    with pytest.raises(ValueError, match="optimize_memory_usage=True is not available with Dict observations"):
        Rainbow("MultiInputPolicy", DictChain(), n_steps=1, optimize_memory_usage=True)


def test_dict_n_step_buffer_defaults_to_sb3s_n_steps() -> None:
    """SB3's DQN given the class passes no n_steps (it only warns): the default must be SB3's 3, not 1."""
    assert DictNStepReplayBuffer(10, DICT, ACT, device="cpu").n_steps == 3
    assert DictNStepReplayBuffer(10, DICT, ACT, device="cpu", n_steps=np.int64(2)).n_steps == 2
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        DictNStepReplayBuffer(10, DICT, ACT, device="cpu", n_steps=0)
