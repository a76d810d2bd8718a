"""Search space of `python -m rainbow_ext.tune --algo sb3-dqn` (SB3's DQN), and the DQN part that the
Rainbow and QR-DQN spaces extend, as rl-zoo3's `sample_qrdqn_params` calls `sample_dqn_params`: the
schedule (train_freq with rl-zoo3's subsample_steps, learning rate, batch, buffer, learning starts, target
update, gamma) and the network (`net_arch`, merged into the config entry's policy_kwargs).
"""

from __future__ import annotations

from typing import Any

import optuna

NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def sample_dqn_params(trial: optuna.Trial) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 64, 256])
    # gradient steps per collection, as a fraction of the steps collected (rl-zoo3's subsample_steps)
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000, 1_000_000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1_000, 5_000, 20_000]),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 10, 100, 1_000, 8_000]),
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
        "policy_kwargs": {"net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))]},
    }


def sample_exploration(trial: optuna.Trial) -> dict[str, Any]:
    """Epsilon-greedy: the fraction of the run over which epsilon falls, and where it ends."""
    return {
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
    }


def sample(trial: optuna.Trial, flags: dict[str, Any]) -> dict[str, Any]:
    return {**sample_dqn_params(trial), **sample_exploration(trial)}
