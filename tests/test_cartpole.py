"""Rainbow solves CartPole-v1 with the hyperparameters that `python -m rainbow_ext.train` uses.

About 7 minutes on one core, so marked slow: `python -m pytest -m slow`. benchmarks/learning/cartpole.py
runs the same over five seeds beside SB3's DQN.
"""

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from rainbow_ext import Rainbow
from rainbow_ext.zoo import zoo_config


@pytest.mark.slow
def test_rainbow_solves_cartpole_within_50k_steps(tmp_path: Path) -> None:
    config = zoo_config("rainbow", "CartPole-v1")
    n_timesteps = config.n_timesteps
    assert n_timesteps == 50_000
    model = Rainbow(config.policy, make_vec_env("CartPole-v1", seed=0), seed=0, **config.hyperparams)
    callback = EvalCallback(
        make_vec_env("CartPole-v1", seed=10_000), n_eval_episodes=20, eval_freq=5_000, log_path=str(tmp_path)
    )
    model.learn(n_timesteps, callback=callback)
    best = max(float(np.mean(returns)) for returns in callback.evaluations_results)
    assert best >= 475.0
