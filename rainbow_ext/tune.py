"""Tune hyperparameters: ``python -m rainbow_ext.tune --algo rainbow --env CartPole-v1 --n-trials 100``.

rl-zoo3's optimize, as its own command. Each trial samples from ``tuning/<family>.py`` (``rainbow.py``
for every preset, whose component flags stay fixed; ``qrdqn.py``), trains on the config entry of the
env with the sample merged in, evaluates ``--n-evaluations`` times and reports each to the pruner; its
value is the last evaluation's mean return (averaged over ``--seeds-per-trial`` seeds). Trials that
diverge (NaN or infinite weights or returns) are pruned, never best.

The study lives in a local SQLite file by default (``<folder>/study.db``, no server;
``optuna-dashboard sqlite:///<folder>/study.db`` opens it); ``--storage postgresql://...`` lets
workers on several machines join it, with heartbeats so that a killed worker's trial runs again.
``--n-trials`` counts finished trials of the whole study, over every worker. The best
hyperparameters are written as a zoo_configs entry (``<folder>/best.yml``) that ``train -conf``
takes; ``--plot`` writes the optimization history, parameter importances and a parallel-coordinate plot.
"""

from __future__ import annotations

from rainbow_ext.startup import exit_quietly_while_starting

exit_quietly_while_starting()  # before torch and SB3 load: see rainbow_ext.startup

import argparse
import sys

from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.algorithms import ALGOS
from rainbow_ext.zoo.errors import BAD_INPUT, bad_input, interruptible
from rainbow_ext.zoo.studies import GRACE_SECONDS, HEARTBEAT_SECONDS
from rainbow_ext.zoo.tuning import PRUNERS, SAMPLERS, TuneOptions, prepare, run_study


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rainbow_ext.tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--algo", default="rainbow", help=f"one of {', '.join(ALGOS)}")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--n-trials", type=int, default=100, help="finished trials of the study, over all workers")
    p.add_argument("--n-jobs", type=int, default=1, help="trials run in parallel threads of this process")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS)
    p.add_argument("--pruner", default="median", choices=PRUNERS)
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the folder)")
    p.add_argument("--study-name", default=None, help="default: <algo>-<env>")
    p.add_argument("--n-startup-trials", type=int, default=5, help="random trials before the sampler and pruner act")
    p.add_argument("--n-evaluations", type=int, default=10, help="evaluations per trial (pruning points)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--seeds-per-trial", type=int, default=1, help="objective: mean final return over seeds")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="per trial (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--folder", default=None, help="default logs/tuning/<study name>")
    p.add_argument("-conf", "--conf-file", default=None)
    p.add_argument("-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE", help="fixed for all trials")
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", action="store_true")
    p.add_argument("--track", action="store_true", help="a wandb run per trial, grouped by study")
    p.add_argument("--wandb-project-name", default="rainbow_ext-tuning")
    p.add_argument("--wandb-entity", default=None)
    p.add_argument("--heartbeat-interval", type=int, default=HEARTBEAT_SECONDS)
    p.add_argument("--grace-period", type=int, default=GRACE_SECONDS)
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = vars(parser().parse_args(argv))
    pairs = args.pop("hyperparams")
    try:
        options = TuneOptions(**args, params=cfg.parse_params(pairs))
        prepared = prepare(options)
    except BAD_INPUT as error:
        return bad_input(error)
    return run_study(options, *prepared)


if __name__ == "__main__":
    sys.exit(main())
