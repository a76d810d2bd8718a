"""Ablations: ``python -m rainbow_ext.ablate --env MinAtar/Breakout-v1 --seeds 5 -n 500000 --jobs 2``.

Runs the grid variants x envs x seeds (default variants: rainbow, every rainbow-no-X, and dqn), each
run through the same code as ``python -m rainbow_ext.train``, then writes the results to the
ablation folder (``-f``, default ``logs/ablations/<study name>``):

- ``curves.csv``: every evaluation of every run (variant, env, seed, timestep, return);
- ``final_scores.csv`` and ``summary.csv``: the last evaluation of each run, and per variant and env
  the mean with a 95% Student-t interval and the interquartile mean (IQM) with a 95% stratified
  bootstrap interval (Agarwal et al. 2021), human-normalized as well for Atari games;
- ``curves.png`` (mean evaluation return per variant with its 95% interval band, one panel per env)
  and ``final_scores.png`` (IQM and interval per variant);
- ``report.md`` embedding the table and plots.

Each (variant, env, seed) is a trial of an Optuna study whose grid is enqueued once; workers pop
waiting trials from the study's storage, which hands each one out once. The default storage is a
SQLite file in the ablation folder (no server); ``--storage postgresql://...`` started on several
machines runs one grid across them. A rerun skips finished runs and restarts unfinished ones (a run
killed on this machine at once; on another machine once its heartbeat is older than the grace period).
"""

from __future__ import annotations

from rainbow_ext.startup import exit_quietly_while_starting

exit_quietly_while_starting()  # before torch and SB3 load: see rainbow_ext.startup

import argparse
import sys
from pathlib import Path

from rainbow_ext.zoo.ablation import DEFAULT_VARIANTS, conf_file_map, make_grid, prepare, run_ablation
from rainbow_ext.zoo.errors import BAD_INPUT, UsageError, bad_input, interruptible


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rainbow_ext.ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", action="append", default=None, help="env id; repeat for several (default CartPole-v1)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated presets")
    p.add_argument("--seeds", type=int, default=5, help="runs per variant and env (seeds 0..N-1)")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="per run (default: the config's)")
    p.add_argument("--eval-freq", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--n-eval-envs", type=int, default=1, help="evaluation envs stepped together")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes on this machine")
    p.add_argument(
        "--checkpoint-freq", type=int, default=0, help="a resumable checkpoint of each run every N steps (0: none)"
    )
    p.add_argument("-f", "--folder", default=None, help="ablation folder (default logs/ablations/<study name>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the folder)")
    p.add_argument("--study-name", default="ablation")
    p.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE", help="for every run")
    p.add_argument(
        "--entry-params",
        nargs="+",
        default=[],
        metavar="KEY:VALUE",
        help="replace config entries' values (preset rules apply)",
    )
    p.add_argument(
        "-conf",
        "--conf-file",
        action="append",
        default=[],
        metavar="[ALGO=]FILE",
        help="config file of ALGO (repeatable), or of every preset without ALGO= (default: the shipped ones)",
    )
    p.add_argument("--report-only", action="store_true", help="write the results of the finished runs and stop")
    p.add_argument("--track", action="store_true", help="wandb runs grouped by variant, tagged with their flags")
    p.add_argument("--wandb-project-name", default="rainbow_ext-ablation")
    p.add_argument("--wandb-entity", default=None)
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    folder = Path(args.folder) if args.folder else Path("logs") / "ablations" / args.study_name
    try:
        if args.jobs < 1:
            raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
        variants = [v.strip() for v in args.variants.split(",")]  # an empty name is refused, not dropped
        conf_files = conf_file_map(args.conf_file, variants)
        grid = make_grid(
            variants,
            args.env or ["CartPole-v1"],
            args.seeds,
            args.n_timesteps,
            args.eval_freq,
            args.eval_episodes,
            args.hyperparams,
            conf_files,
            args.checkpoint_freq,
            args.entry_params,
            args.n_eval_envs,
        )
        url, study = prepare(grid, folder, args.storage, args.study_name)
    except BAD_INPUT as error:
        return bad_input(error)
    track = {"project": args.wandb_project_name, "entity": args.wandb_entity} if args.track else None
    return run_ablation(grid, folder, url, study, args.jobs, track, args.report_only)


if __name__ == "__main__":
    sys.exit(main())
