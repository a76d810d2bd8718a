"""Search space of `python -m rainbow_ext.tune` for every Rainbow preset.

`sample(trial, flags)` returns constructor arguments for one trial. The preset's component flags are
fixed (they are constructor arguments, not policy_kwargs, so sampling cannot drop them), and only the
parameters of components that are on are sampled: n for n-step, alpha and beta0 for prioritized
replay, sigma0 for noisy nets (epsilon-greedy otherwise), atoms and support for C51. Adam's eps goes to
`policy_kwargs["optimizer_kwargs"]` and `net_arch` to `policy_kwargs`; both are merged into the config
entry's policy_kwargs, never replacing them.
"""

from __future__ import annotations

from typing import Any

import optuna

from rainbow_ext.zoo.config import explores_with_epsilon, n_step_on

NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def sample(trial: optuna.Trial, flags: dict[str, Any]) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 64, 256])
    # gradient steps per collection, as a fraction of the steps collected (rl-zoo3's subsample_steps)
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000, 1_000_000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1_000, 5_000, 20_000]),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 10, 100, 1_000, 8_000]),
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
        "policy_kwargs": {
            "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
            "optimizer_kwargs": {"eps": trial.suggest_float("adam_eps", 1e-8, 1e-2, log=True)},
        },
    }
    if n_step_on(flags):
        params["n_steps"] = trial.suggest_categorical("n_steps", [2, 3, 5, 10])
    if flags.get("prioritized"):
        params["per_alpha"] = trial.suggest_float("per_alpha", 0.2, 0.9)
        params["per_beta0"] = trial.suggest_float("per_beta0", 0.2, 0.8)
    if not explores_with_epsilon(flags):
        params["noisy_sigma0"] = trial.suggest_float("noisy_sigma0", 0.05, 1.0, log=True)
    else:
        params["exploration_fraction"] = trial.suggest_float("exploration_fraction", 0.0, 0.5)
        params["exploration_final_eps"] = trial.suggest_float("exploration_final_eps", 0.0, 0.2)
    if flags.get("distributional"):
        params["n_atoms"] = trial.suggest_categorical("n_atoms", [21, 51, 101])
        v_max = trial.suggest_categorical("v_max", [10.0, 50.0, 100.0, 200.0, 500.0])
        # symmetric support, or a non-negative one for envs whose returns are never negative
        params["v_max"] = v_max
        params["v_min"] = (
            -v_max if trial.suggest_categorical("support", ["symmetric", "positive"]) == "symmetric" else 0.0
        )
    return params
