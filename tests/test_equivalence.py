"""With every component off, Rainbow is SB3's DQN: identical parameters after training."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN

from rainbow_ext import Rainbow

HYPERPARAMS = dict(learning_starts=100, buffer_size=5_000, train_freq=1, target_update_interval=200, batch_size=32)


@pytest.mark.parametrize("n_steps", [1, 3])
def test_dqn_preset_equals_sb3_dqn(n_steps: int) -> None:
    kwargs = dict(HYPERPARAMS, n_steps=n_steps, seed=7)
    sb3 = DQN("MlpPolicy", "CartPole-v1", **kwargs).learn(1_500)
    ours = Rainbow.from_preset(
        "dqn",
        "MlpPolicy",
        "CartPole-v1",
        policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-8)),  # Adam's default, which DQN uses
        # eager on a GPU too: a captured step runs Adam with capturable=True and a float32 learning
        # rate, the same update rounded differently
        cuda_graphs=False,
        **kwargs,
    ).learn(1_500)
    assert ours._n_updates == sb3._n_updates > 1_000
    sb3_params = list(sb3.policy.state_dict().values())
    our_params = list(ours.policy.state_dict().values())
    assert len(sb3_params) == len(our_params)
    for a, b in zip(sb3_params, our_params, strict=True):
        assert th.equal(a, b)
    assert ours.exploration_rate == sb3.exploration_rate
    # One more gradient step on the same batch: the same loss is logged (Rainbow logs the mean over
    # the steps since the last record, read at dump time) and the parameters stay identical.
    ours.record_train_stats()
    for model in (sb3, ours):
        np.random.seed(3)
        model.train(gradient_steps=1, batch_size=32)
    ours.record_train_stats()
    assert ours.logger.name_to_value["train/loss"] == pytest.approx(sb3.logger.name_to_value["train/loss"], rel=1e-6)
    for a, b in zip(sb3.policy.state_dict().values(), ours.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)


def test_defaults_differ_from_dqn_only_where_rainbow_does() -> None:
    ours = Rainbow("MlpPolicy", "CartPole-v1")
    assert (ours.double_q, ours.dueling, ours.noisy, ours.distributional, ours.n_steps) == (True, True, True, True, 3)
    assert ours.policy.optimizer.defaults["eps"] == 1.5e-4
    assert ours.exploration_initial_eps == ours.exploration_final_eps == 0.0
    no_noisy = Rainbow.from_preset("rainbow-no-noisy", "MlpPolicy", "CartPole-v1")
    sb3 = DQN("MlpPolicy", "CartPole-v1")
    for name in (
        "exploration_initial_eps",
        "exploration_final_eps",
        "exploration_fraction",
        "learning_rate",
        "buffer_size",
        "learning_starts",
        "batch_size",
        "gamma",
        "target_update_interval",
    ):
        assert getattr(no_noisy, name) == getattr(sb3, name), name
    # An explicit schedule turns epsilon-greedy back on for noisy nets.
    explicit = Rainbow("MlpPolicy", "CartPole-v1", exploration_final_eps=0.01)
    assert (explicit.exploration_initial_eps, explicit.exploration_final_eps) == (1.0, 0.01)
