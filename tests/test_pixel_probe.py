"""The Atari learning pipeline on a probe with known values: frames (36x36 uint8, one channel) through
SB3's VecFrameStack, frame storage, the Nature convolutions of CnnPolicy, 3-step returns, prioritized
replay, C51, noisy and dueling heads. Full Rainbow must learn the four-step chain's values,
V(step k) = gamma^(3 - k), from pixels, as tests/test_probes.py asks of vector observations."""

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

from rainbow_ext import PrioritizedReplayBuffer, Rainbow
from rainbow_ext.layers import NatureCNNTrunk, noise_disabled
from tests.helpers.probes import GAMMA, PixelChain


def test_full_rainbow_learns_a_chains_values_from_stacked_frames() -> None:
    env = VecFrameStack(DummyVecEnv([PixelChain]), n_stack=4)
    model = Rainbow(
        "CnnPolicy",
        env,
        learning_rate=1e-3,
        buffer_size=5_000,
        learning_starts=200,
        gradient_steps=4,
        target_update_interval=100,
        gamma=GAMMA,
        exploration_initial_eps=0.5,
        exploration_final_eps=0.5,
        policy_kwargs=dict(net_arch=[64]),
        seed=0,
    )
    # the Atari path: frame storage behind a prioritized n-step buffer, the Nature trunk
    assert model.frame_stack == 4 and isinstance(model.replay_buffer, PrioritizedReplayBuffer)
    assert model.replay_buffer.n_steps == 3 and isinstance(model.q_net.features_extractor, NatureCNNTrunk)
    model.learn(2500)

    stacks = [env.reset()]  # the four stacks of an episode, as the env shows them (zero-padded first)
    for _ in range(3):
        stacks.append(env.step(np.zeros(1, dtype=int))[0])
    observations = np.concatenate(stacks)
    with th.no_grad(), noise_disabled(model.q_net):
        q = model.q_net(model.policy.obs_to_tensor(observations)[0]).cpu().numpy()
    expected = np.array([GAMMA**3, GAMMA**2, GAMMA, 1.0])[:, None].repeat(2, axis=1)
    np.testing.assert_allclose(q, expected, atol=0.1)
