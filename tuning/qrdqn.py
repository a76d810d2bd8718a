"""Search space of `python -m rainbow_ext.tune --algo qrdqn` (sb3-contrib QR-DQN, the baseline): the DQN
space (`tuning/dqn.py`) with epsilon-greedy, plus the number of quantiles, merged into the config entry's
policy_kwargs."""

from __future__ import annotations

from typing import Any

import optuna
from rainbow_ext.tuning.dqn import sample_dqn_params, sample_exploration


def sample(trial: optuna.Trial, flags: dict[str, Any]) -> dict[str, Any]:
    params = {**sample_dqn_params(trial), **sample_exploration(trial)}
    params["policy_kwargs"]["n_quantiles"] = trial.suggest_categorical("n_quantiles", [10, 25, 50, 200])
    return params
