"""Train an agent: ``python -m rainbow_ext.train --algo rainbow`` (full Rainbow on CartPole-v1).

rl-zoo3's command line and YAML layout (``zoo_configs/``): ``--algo`` is any preset (``rainbow``,
``dqn``, ``rainbow-no-per``, ...) or ``qrdqn`` (sb3-contrib) as a baseline; hyperparameters come from
the config file's entry for ``--env`` and ``-params key:value`` overrides. Each run gets a folder
``<log folder>/<algo>/<env>_<n>/`` with the resolved config, the command line, the final and best
models, ``evaluations.npz``, checkpoints and TensorBoard events. Ctrl-C (or SIGTERM) stops at the next
step and saves the model and replay buffer; ``-i <run>/<env>.zip`` continues that run where it
stopped. Bad input prints a message and exits with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import pickle
import shlex
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv

from rainbow_ext import config as cfg
from rainbow_ext import runs
from rainbow_ext.envs.atari import VEC_ENV_KINDS
from rainbow_ext.envs.make import env_family, make_env
from rainbow_ext.evaluation import EvalCallback
from rainbow_ext.presets import PRESETS, preset_flags
from rainbow_ext.rainbow import Rainbow

BASELINES = ("qrdqn",)
ALGOS = (*PRESETS, *BASELINES)


class UsageError(ValueError):
    """Bad input: reported with exit status 2."""


def algo_class(algo: str) -> type[BaseAlgorithm]:
    if algo == "qrdqn":
        from sb3_contrib import QRDQN

        return QRDQN
    return Rainbow


def check_algo(algo: str) -> None:
    if algo not in ALGOS:
        close = difflib.get_close_matches(algo, ALGOS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown algo {algo!r}{hint}; valid: {', '.join(ALGOS)}")


def default_config_file(algo: str) -> Path:
    return cfg.CONFIG_DIR / ("qrdqn.yml" if algo == "qrdqn" else "rainbow.yml")


@dataclass
class RunConfig:
    """What a run needs besides the model: written to the run folder as config.yml."""

    algo: str
    env: str
    seed: int
    n_timesteps: int
    policy: str
    n_envs: int = 1
    vec_env: str = "dummy"
    frame_stack: int | None = None
    env_wrapper: Any = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_max_steps: int | None = None  # evaluation episodes (Atari: games) end after this many agent steps
    hyperparams: dict[str, Any] = field(default_factory=dict)  # constructor arguments, as given
    source: str = ""

    def make_env(
        self, n_envs: int | None = None, seed: int | None = None, max_episode_steps: int | None = None
    ) -> VecEnv:
        return make_env(
            self.env,
            n_envs=self.n_envs if n_envs is None else n_envs,
            seed=self.seed if seed is None else seed,
            vec_env=self.vec_env,
            frame_stack=self.frame_stack,
            env_wrapper=self.env_wrapper,
            env_kwargs=self.env_kwargs,
            max_episode_steps=max_episode_steps,
        )

    def make_eval_env(self, n_envs: int, seed: int) -> VecEnv:
        """The env evaluations play, with episodes cut at ``eval_max_steps``."""
        return self.make_env(n_envs=n_envs, seed=seed, max_episode_steps=self.eval_max_steps)


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The config entry for the env, checked and merged with ``-params`` and the flags."""
    check_algo(args.algo)
    path = Path(args.conf_file) if args.conf_file else default_config_file(args.algo)
    entries = cfg.load_entries(path)
    family = env_family(args.env)
    key, entry = cfg.select_entry(entries, args.env, family)
    overrides = cfg.parse_params(args.hyperparams)
    flags = preset_flags(args.algo) if args.algo in PRESETS else {}
    cls = algo_class(args.algo)
    noisy = bool({**flags, **entry, **overrides}.get("noisy", False))
    one_step = flags.get("n_steps") == 1
    merged = cfg.resolve(entry, overrides, cls, noisy=noisy, source=f"{path.name}[{key!r}]", one_step=one_step)
    run_keys = {k: merged.pop(k) for k in cfg.RUN_KEYS if k in merged}
    n_envs = args.n_envs if args.n_envs is not None else int(run_keys.get("n_envs", 1))
    n_timesteps = args.n_timesteps if args.n_timesteps is not None else int(run_keys.get("n_timesteps", 100_000))
    if n_timesteps < 1:
        raise UsageError(f"n_timesteps must be >= 1, got {n_timesteps}")
    eval_max_steps = args.eval_max_steps if args.eval_max_steps is not None else run_keys.get("eval_max_steps")
    check_eval_max_steps(eval_max_steps)
    return RunConfig(
        algo=args.algo,
        env=args.env,
        seed=args.seed,
        n_timesteps=n_timesteps,
        policy=run_keys.get("policy", "MlpPolicy"),
        n_envs=n_envs,
        vec_env=args.vec_env,
        frame_stack=run_keys.get("frame_stack"),
        env_wrapper=run_keys.get("env_wrapper"),
        env_kwargs=run_keys.get("env_kwargs", {}),
        eval_max_steps=eval_max_steps,
        hyperparams={**flags, **merged},
        source=f"{path}[{key!r}]",
    )


def check_eval_max_steps(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"eval_max_steps must be an integer >= 1 (agent steps per evaluation episode), got {value!r}")


def zoo_config(algo: str, env_id: str, *params: str, conf_file: str | Path | None = None) -> RunConfig:
    """The resolved config entry of ``algo`` on ``env_id`` (with ``key:value`` overrides, from
    ``conf_file`` or the default zoo_configs file), as the command would train it:
    ``Rainbow(run.policy, env, **run.hyperparams)``."""
    argv = ["--algo", algo, "--env", env_id, *(["-params", *params] if params else [])]
    args = parser().parse_args([*argv, *(["-conf", str(conf_file)] if conf_file is not None else [])])
    return resolve_config(args)


def build_model(run: RunConfig, env: VecEnv, args: argparse.Namespace, tensorboard_log: str | None) -> BaseAlgorithm:
    kwargs = dict(run.hyperparams)
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = cfg.learning_rate_schedule(kwargs["learning_rate"])
    cls = algo_class(run.algo)
    return cls(  # type: ignore[call-arg]
        run.policy,
        env,
        seed=run.seed,
        device=args.device,
        verbose=args.verbose,
        tensorboard_log=tensorboard_log,
        **kwargs,
    )


def used_hyperparams(model: BaseAlgorithm, run: RunConfig) -> dict[str, Any]:
    """Every constructor argument as the model holds it (component flags included)."""
    used: dict[str, Any] = {}
    for name in inspect.signature(type(model).__init__).parameters:
        if name in cfg.COMMAND_ARGS or name == "policy_kwargs":
            continue
        value = getattr(model, name, getattr(model, f"_{name}", None))
        if name == "learning_rate" and callable(value):
            value = run.hyperparams.get("learning_rate", repr(value))  # the schedule as written, lin_...
        if name == "train_freq" and hasattr(value, "unit"):
            value = [value.frequency, value.unit.value]
        used[name] = cfg.to_yaml_value(value)
    used["policy_kwargs"] = cfg.to_yaml_value(model.policy_kwargs)
    if isinstance(model, Rainbow):
        used["frame_stack"] = model.frame_stack  # frames per observation kept by frame storage (0: off)
    return used


def run_config_dict(run: RunConfig, model: BaseAlgorithm) -> dict[str, Any]:
    return {
        "algo": run.algo,
        "env": run.env,
        "seed": run.seed,
        "n_timesteps": run.n_timesteps,
        "policy": run.policy,
        "n_envs": run.n_envs,
        "vec_env": run.vec_env,
        "frame_stack": run.frame_stack,
        "env_wrapper": run.env_wrapper,
        "env_kwargs": cfg.to_yaml_value(run.env_kwargs),
        "eval_max_steps": run.eval_max_steps,
        "source": run.source,
        "hyperparams": used_hyperparams(model, run),
    }


def run_from_folder(run_dir: Path, args: argparse.Namespace) -> RunConfig:
    """The RunConfig an earlier run saved, for ``-i``."""
    saved = runs.read_yaml(run_dir / runs.CONFIG_FILE)
    if saved.get("algo") != args.algo or saved.get("env") != args.env:
        raise UsageError(
            f"-i {args.trained_agent}: that run trained {saved.get('algo')} on {saved.get('env')}, "
            f"not {args.algo} on {args.env}; pass --algo {saved.get('algo')} --env {saved.get('env')}"
        )
    n_timesteps = args.n_timesteps if args.n_timesteps is not None else int(saved["n_timesteps"])
    return RunConfig(
        algo=saved["algo"],
        env=saved["env"],
        seed=int(saved["seed"]),
        n_timesteps=n_timesteps,
        policy=saved["policy"],
        n_envs=int(saved["n_envs"]),
        vec_env=args.vec_env if args.vec_env != "dummy" else saved.get("vec_env", "dummy"),
        frame_stack=saved.get("frame_stack"),
        env_wrapper=saved.get("env_wrapper"),
        env_kwargs=saved.get("env_kwargs") or {},
        eval_max_steps=args.eval_max_steps if args.eval_max_steps is not None else saved.get("eval_max_steps"),
        hyperparams={},
        source=f"{run_dir / runs.CONFIG_FILE}",
    )


def load_trained_agent(path: Path, run: RunConfig, env: VecEnv, args: argparse.Namespace) -> BaseAlgorithm:
    overrides = cfg.parse_params(args.hyperparams)
    try:
        model = algo_class(run.algo).load(path, env=env, device=args.device, verbose=args.verbose, **overrides)
    except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as error:
        raise UsageError(f"-i {path}: not a readable {run.algo} model ({type(error).__name__}: {error})") from error
    buffer = path.parent / runs.BUFFER_FILE
    if buffer.exists():
        try:
            model.load_replay_buffer(buffer)  # type: ignore[attr-defined]
        except (EOFError, pickle.UnpicklingError, AssertionError, AttributeError, ValueError) as error:
            raise UsageError(f"-i: replay buffer {buffer} is not readable ({type(error).__name__}: {error})") from error
        print(f"loaded the replay buffer ({model.replay_buffer.size()} transitions) from {buffer}")  # type: ignore[attr-defined]
    return model


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rainbow_ext.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--algo", default="rainbow", help=f"preset or baseline: {', '.join(ALGOS)}")
    p.add_argument("--env", default="CartPole-v1", help="gymnasium id, ALE id or MinAtar id")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="overrides the config's n_timesteps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-freq", type=int, default=10_000, help="evaluate every N steps (-1: never)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--n-eval-envs", type=int, default=1)
    p.add_argument(
        "--eval-max-steps",
        type=int,
        default=None,
        help="cut evaluation episodes (Atari: games) after N agent steps; overrides the config's eval_max_steps",
    )
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every N steps (-1: never)")
    p.add_argument("--save-replay-buffer", action="store_true", help="also save the replay buffer at the end")
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("-conf", "--conf-file", default=None, help="YAML config file (default: zoo_configs/)")
    p.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--n-envs", type=int, default=None, help="overrides the config's n_envs")
    p.add_argument("--vec-env", default="dummy", choices=VEC_ENV_KINDS, help="ale: ale-py's C++ vector env (Atari)")
    p.add_argument("--track", action="store_true", help="track the run with Weights & Biases")
    p.add_argument("--wandb-project-name", default="rainbow_ext")
    p.add_argument("--wandb-entity", default=None)
    p.add_argument("--tensorboard-log", default=None, help="TensorBoard folder (default: the run folder)")
    p.add_argument("-i", "--trained-agent", default=None, help="continue training this model (.zip)")
    p.add_argument("--run-dir", default=None, help="write the run to this new or empty folder, not <env>_<n>")
    p.add_argument("--no-progress-bar", action="store_true")
    p.add_argument("--verbose", type=int, default=1)
    return p


BAD_INPUT = (ValueError, TypeError, NotImplementedError, gym.error.Error, ImportError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        session = prepare(args)
    except BAD_INPUT as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    session.train(argv)
    return 0


@dataclass
class Session:
    """A checked run, ready to write its folder and train."""

    args: argparse.Namespace
    run: RunConfig
    model: BaseAlgorithm
    run_dir: Path | None  # set when continuing a run in its own folder
    remaining: int

    def train(self, argv: list[str]) -> TrainResult:
        args, run, model = self.args, self.run, self.model
        resuming = self.run_dir is not None
        if resuming:
            run_dir = self.run_dir
        elif args.run_dir is not None:
            run_dir = Path(args.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = runs.new_run_dir(Path(args.log_folder), run.algo, run.env)
        assert run_dir is not None
        config = run_config_dict(run, model)
        runs.write_yaml(run_dir / runs.CONFIG_FILE, config)
        runs.write_yaml(run_dir / runs.ARGS_FILE, vars(args))
        with open(run_dir / runs.COMMAND_FILE, "a") as file:
            file.write("python -m rainbow_ext.train " + shlex.join(argv) + "\n")
        if model.tensorboard_log is None:
            model.tensorboard_log = str(run_dir / "tensorboard")
        print(f"run folder: {run_dir} ({run.algo} on {run.env}, {run.source})")

        callbacks: list[BaseCallback] = []
        stop = runs.StopOnSignal()
        callbacks.append(stop)
        eval_env = None
        if args.eval_freq > 0:
            eval_env = run.make_eval_env(n_envs=args.n_eval_envs, seed=run.seed + 10_000)
            evaluation = EvalCallback(
                eval_env,
                n_eval_episodes=args.eval_episodes,
                eval_freq=max(args.eval_freq // run.n_envs, 1),
                best_model_save_path=str(run_dir),
                log_path=str(run_dir),
                verbose=args.verbose,
            )
            if resuming:
                runs.restore_evaluations(evaluation, run_dir / runs.EVALUATIONS_FILE)
            callbacks.append(evaluation)
        if args.save_freq > 0:
            callbacks.append(
                CheckpointCallback(max(args.save_freq // run.n_envs, 1), str(run_dir), name_prefix="rl_model")
            )
        wandb_run = None
        if args.track:
            from rainbow_ext.tracking import start_run

            tags = [run.algo, *(k for k, v in run.hyperparams.items() if v is True)]
            wandb_run, wandb_callback = start_run(
                config, run_dir, args.wandb_project_name, args.wandb_entity, group=run.algo, tags=tags
            )
            callbacks.append(wandb_callback)

        with stop:
            model.learn(
                self.remaining,
                callback=CallbackList(callbacks),
                reset_num_timesteps=not resuming and args.trained_agent is None,
                tb_log_name=run.algo,
                progress_bar=not args.no_progress_bar,
            )
        path = runs.model_file(run_dir, run.env)
        runs.save_model(model, path)
        if stop.received or args.save_replay_buffer:
            runs.save_replay_buffer(model, run_dir / runs.BUFFER_FILE)
        if stop.received:
            print(
                f"{stop.received}: stopped at step {model.num_timesteps:,} of {run.n_timesteps:,}; saved {path} and "
                f"{run_dir / runs.BUFFER_FILE}. Continue with: python -m rainbow_ext.train --algo {run.algo} "
                f"--env {run.env} -i {path}"
            )
        else:
            print(f"saved {path} after {model.num_timesteps:,} steps")
        if wandb_run is not None:
            wandb_run.finish()
        for env in (model.get_env(), eval_env):
            if env is not None:
                env.close()
        return TrainResult(model, run_dir, stop.received)


@dataclass
class TrainResult:
    model: BaseAlgorithm
    run_dir: Path
    interrupted_by: str | None  # the signal that stopped training early, if one did


def prepare(args: argparse.Namespace) -> Session:
    """Everything that can fail on bad input, before anything is written."""
    check_algo(args.algo)
    check_eval_max_steps(args.eval_max_steps)
    runs.check_writable(Path(args.log_folder))
    if args.run_dir is not None:
        runs.check_writable(Path(args.run_dir))
        if Path(args.run_dir).exists() and any(Path(args.run_dir).iterdir()):
            raise UsageError(f"--run-dir {args.run_dir} is not empty")
    if args.trained_agent is None:
        run = resolve_config(args)
        env = run.make_env()
        tensorboard_log = args.tensorboard_log
        model = build_model(run, env, args, tensorboard_log)
        return Session(args, run, model, run_dir=None, remaining=run.n_timesteps)

    path = Path(args.trained_agent)
    if not path.is_file():
        raise UsageError(f"-i {path}: no such file")
    run_dir = path.parent if (path.parent / runs.CONFIG_FILE).exists() else None
    run = run_from_folder(run_dir, args) if run_dir is not None else resolve_config(args)
    env = run.make_env()
    model = load_trained_agent(path, run, env, args)
    if args.tensorboard_log is not None:
        model.tensorboard_log = args.tensorboard_log
    remaining = run.n_timesteps - model.num_timesteps if run_dir is not None else run.n_timesteps
    if remaining < 1:
        raise UsageError(
            f"-i {path}: the model has {model.num_timesteps:,} steps, n_timesteps is {run.n_timesteps:,}: nothing "
            "left to train (raise -n)"
        )
    return Session(args, run, model, run_dir=run_dir, remaining=remaining)


if __name__ == "__main__":
    sys.exit(main())
