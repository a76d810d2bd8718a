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

from rainbow_ext.startup import exit_quietly_while_starting

exit_quietly_while_starting()  # before torch and SB3 load: see rainbow_ext.startup

import argparse
import shlex
import sys
from pathlib import Path

from rainbow_ext.envs.atari import VEC_ENV_KINDS
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.algorithms import ALGOS
from rainbow_ext.zoo.errors import BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, bad_input, interruptible
from rainbow_ext.zoo.experiment import SaveError, prepare_run, train_run
from rainbow_ext.zoo.options import TrainOptions


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
    cut = "cut evaluation episodes (Atari: games) after N agent steps; overrides the config's eval_max_steps"
    p.add_argument("--eval-max-steps", type=int, default=None, help=cut)
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every N steps (-1: never)")
    p.add_argument("--save-replay-buffer", action="store_true", help="also save the replay buffer at the end")
    resumable = "resumable checkpoint every N steps (-i <run>/checkpoint/model.zip)"
    p.add_argument("--checkpoint-freq", type=int, default=0, help=resumable)
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("-conf", "--conf-file", default=None, help="YAML config file (default: the shipped zoo_configs)")
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


def options(args: argparse.Namespace, argv: list[str]) -> TrainOptions:
    return TrainOptions(
        log_folder=Path(args.log_folder),
        run_dir=None if args.run_dir is None else Path(args.run_dir),
        trained_agent=None if args.trained_agent is None else Path(args.trained_agent),
        device=args.device,
        verbose=args.verbose,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        n_eval_envs=args.n_eval_envs,
        save_freq=args.save_freq,
        save_replay_buffer=args.save_replay_buffer,
        checkpoint_freq=args.checkpoint_freq,
        tensorboard_log=args.tensorboard_log,
        progress_bar=not args.no_progress_bar,
        track=args.track,
        wandb_project_name=args.wandb_project_name,
        wandb_entity=args.wandb_entity,
        command="python -m rainbow_ext.train " + shlex.join(argv),
        args=vars(args),
    )


@interruptible
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        session = prepare_run(
            options(args, argv),
            args.algo,
            args.env,
            cfg.parse_params(args.hyperparams),
            args.conf_file,
            seed=args.seed,
            n_timesteps=args.n_timesteps,
            n_envs=args.n_envs,
            vec_env=args.vec_env,
            eval_max_steps=args.eval_max_steps,
        )
    except BAD_INPUT as error:
        return bad_input(error)
    try:
        result = train_run(session)
    except SaveError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_INTERRUPTED if result.interrupted_by is not None else 0


if __name__ == "__main__":
    sys.exit(main())
