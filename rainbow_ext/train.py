"""Train a preset: ``python -m rainbow_ext.train --algo rainbow`` (CartPole-v1 by default).

Hyperparameters come from :data:`HYPERPARAMS` for known env ids (SB3 DQN's defaults otherwise);
``-params key:value`` overrides them. The final model is saved in SB3's zip format under
``<log-folder>/<algo>/<env>_<seed>/``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from rainbow_ext.presets import PRESETS
from rainbow_ext.rainbow import Rainbow

# Tuned per env id; the flags come from the preset. CartPole-v1 follows rl-zoo3's DQN schedule,
# with a C51 support covering discounted returns of up to 1 / (1 - gamma) = 100.
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(
        n_timesteps=50_000,
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1_000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        v_min=0.0,
        v_max=100.0,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key:value`` pairs; values are Python literals (numbers, booleans, lists, dicts, strings)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise ValueError(f"malformed -params entry {pair!r}: expected key:value")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="rainbow", choices=list(PRESETS), help="preset name")
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium env id")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("-f", "--log-folder", default="logs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    try:
        hyperparams = {**HYPERPARAMS.get(args.env, {}), **parse_params(args.hyperparams)}
        n_timesteps = args.n_timesteps or int(hyperparams.pop("n_timesteps", 100_000))
        hyperparams.pop("n_timesteps", None)
        env = make_vec_env(args.env, n_envs=1, seed=args.seed)
        model = Rainbow.from_preset(
            args.algo, "MlpPolicy", env, seed=args.seed, device=args.device, verbose=args.verbose, **hyperparams
        )
    except (
        ValueError,
        TypeError,
        NotImplementedError,
        gym.error.Error,
    ) as error:  # bad flags, params or env id: exit 2
        print(f"error: {error}", file=sys.stderr)
        return 2

    run_dir = Path(args.log_folder) / args.algo / f"{args.env}_{args.seed}"
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000)
    callback = EvalCallback(
        eval_env, n_eval_episodes=args.eval_episodes, eval_freq=args.eval_freq, best_model_save_path=str(run_dir)
    )
    model.learn(n_timesteps, callback=callback, progress_bar=False)
    model.save(run_dir / args.env)
    print(f"saved {run_dir / args.env}.zip; last mean eval return {callback.last_mean_reward:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
