"""Search space of `python -m rainbow_ext.tune` for every Rainbow preset: the DQN space (`tuning/dqn.py`)
extended by Adam's eps and the parameters of the components that are on.

`sample(trial, flags)` returns constructor arguments for one trial. The preset's component flags are
fixed (they are constructor arguments, not policy_kwargs, so sampling cannot drop them), and only the
parameters of components that are on are sampled: n for n-step, alpha and beta0 for prioritized
replay, sigma0 for noisy nets (epsilon-greedy otherwise), atoms and support for C51, the number of
quantiles for QR-DQN and IQN (and IQN's K), and Munchausen's tau, alpha and l0. Adam's eps goes to
`policy_kwargs["optimizer_kwargs"]` and `net_arch` to `policy_kwargs`; both are merged into the config
entry's policy_kwargs, never replacing them.
"""

from __future__ import annotations

from typing import Any

import optuna
from rainbow_ext.tuning.dqn import sample_dqn_params, sample_exploration

from rainbow_ext.zoo.config import explores_with_epsilon, n_step_on


def sample(trial: optuna.Trial, flags: dict[str, Any]) -> dict[str, Any]:
    params = sample_dqn_params(trial)
    params["policy_kwargs"]["optimizer_kwargs"] = {"eps": trial.suggest_float("adam_eps", 1e-8, 1e-2, log=True)}
    if n_step_on(flags):
        params["n_steps"] = trial.suggest_categorical("n_steps", [2, 3, 5, 10])
    if flags.get("prioritized"):
        params["per_alpha"] = trial.suggest_float("per_alpha", 0.2, 0.9)
        params["per_beta0"] = trial.suggest_float("per_beta0", 0.2, 0.8)
    if not explores_with_epsilon(flags):
        params["noisy_sigma0"] = trial.suggest_float("noisy_sigma0", 0.05, 1.0, log=True)
    else:
        params.update(sample_exploration(trial))
    distributional = flags.get("distributional")
    if distributional == "qr":
        params["n_quantiles"] = trial.suggest_categorical("n_quantiles", [25, 50, 100, 200])
    elif distributional == "iqn":
        params["n_quantiles"] = trial.suggest_categorical("n_quantiles", [16, 32, 64])  # N = N'
        params["n_acting_quantiles"] = trial.suggest_categorical("n_acting_quantiles", [8, 16, 32])
    elif distributional:  # True or "c51"
        params["n_atoms"] = trial.suggest_categorical("n_atoms", [21, 51, 101])
        v_max = trial.suggest_categorical("v_max", [10.0, 50.0, 100.0, 200.0, 500.0])
        # symmetric support, or a non-negative one for envs whose returns are never negative
        params["v_max"] = v_max
        params["v_min"] = (
            -v_max if trial.suggest_categorical("support", ["symmetric", "positive"]) == "symmetric" else 0.0
        )
    if flags.get("munchausen"):
        # around the paper's tau 0.03, alpha 0.9, l0 -1 (Vieillard et al. 2020, section 4)
        params["munchausen_tau"] = trial.suggest_float("munchausen_tau", 0.003, 0.3, log=True)
        params["munchausen_alpha"] = trial.suggest_float("munchausen_alpha", 0.5, 1.0)
        params["munchausen_l0"] = trial.suggest_categorical("munchausen_l0", [-2.0, -1.0, -0.5])
    return params
