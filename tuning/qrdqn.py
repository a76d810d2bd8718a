"""Search space of `python -m rainbow_ext.tune --algo qrdqn` (sb3-contrib QR-DQN, the baseline):
rl-zoo3's DQN space plus the number of quantiles, merged into the config entry's policy_kwargs."""

from __future__ import annotations

from typing import Any

import optuna

NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def sample(trial: optuna.Trial, flags: dict[str, Any]) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 64, 256])
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
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "policy_kwargs": {
            "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
            "n_quantiles": trial.suggest_categorical("n_quantiles", [10, 25, 50, 200]),
        },
    }
