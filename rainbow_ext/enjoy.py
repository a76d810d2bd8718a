"""Watch a trained agent: ``python -m rainbow_ext.enjoy --algo rainbow --env CartPole-v1 -f logs/``.

Loads the best model of the latest run (``best_model.zip``, written by the evaluations), or with
``--load-last`` the final one, builds the env as the run did (same wrappers, frame stack, options),
runs episodes and prints their returns; ``--record-video`` writes MP4s with gymnasium's RecordVideo.
"""

from __future__ import annotations

from rainbow_ext.startup import exit_quietly_while_starting

exit_quietly_while_starting()  # before torch and SB3 load: see rainbow_ext.startup

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from rainbow_ext.envs.make import make_env
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.algorithms import ALGOS
from rainbow_ext.zoo.errors import BAD_INPUT, EXIT_INTERRUPTED, bad_input, interruptible
from rainbow_ext.zoo.experiment import check_device
from rainbow_ext.zoo.models import find_run_model, load_first_readable


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rainbow_ext.enjoy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--algo", default="rainbow", help=f"one of {', '.join(ALGOS)}")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("--exp-id", type=int, default=0, help="run number (<env>_<n>); 0: the latest")
    p.add_argument("--load-last", action="store_true", help="the final model rather than the best")
    p.add_argument("-n", "--n-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions (noise on) instead of greedy")
    p.add_argument("--record-video", action="store_true")
    p.add_argument("--video-folder", default=None, help="default: <run folder>/videos")
    p.add_argument("--device", default="auto")
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.n_episodes < 1:
            raise ValueError(f"-n must be >= 1 (episodes to play), got {args.n_episodes}")
        check_device(args.device)
        run_dir, paths = find_run_model(Path(args.log_folder), args.algo, args.env, args.exp_id, args.load_last)
        config = runs.read_yaml(run_dir / runs.CONFIG_FILE) if (run_dir / runs.CONFIG_FILE).exists() else {}
        config.setdefault("env", args.env)
        video_folder = Path(args.video_folder) if args.video_folder else run_dir / "videos"
        env = make_env(
            args.env,
            n_envs=1,
            seed=args.seed,
            frame_stack=config.get("frame_stack"),
            env_wrapper=config.get("env_wrapper"),
            env_kwargs=config.get("env_kwargs"),
            video_folder=str(video_folder) if args.record_video else None,
        )
        path, model = load_first_readable(paths, args.algo, args.device)
    except BAD_INPUT as error:
        return bad_input(error)

    print(f"{path} on {args.env}, {args.n_episodes} episodes, {'stochastic' if args.stochastic else 'greedy'}")
    returns, lengths = [], []
    try:
        obs = env.reset()
        while len(returns) < args.n_episodes:
            action, _ = model.predict(obs, deterministic=not args.stochastic)
            obs, _, _, infos = env.step(action)
            if "episode" in infos[0]:  # a whole game (Monitor's record), not a life
                returns.append(infos[0]["episode"]["r"])
                lengths.append(infos[0]["episode"]["l"])
                print(f"episode {len(returns)}: return {returns[-1]:.2f}, length {lengths[-1]}")
    except KeyboardInterrupt:
        print(f"interrupted after {len(returns)} episodes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except gym.error.DependencyNotInstalled as error:  # rendering for --record-video
        return bad_input(type(error)(f'{error} (pip install -e ".[video]")'))
    finally:
        env.close()
    print(f"mean return {np.mean(returns):.2f} +/- {np.std(returns):.2f} over {len(returns)} episodes")
    if args.record_video:
        print(f"videos: {video_folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
