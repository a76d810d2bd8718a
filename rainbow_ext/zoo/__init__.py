"""The experiment layer under the commands: a small, typed rl-zoo3.

- :mod:`~rainbow_ext.zoo.algorithms`: the algorithm registry (``ALGOS``: every preset, QR-DQN, SB3's DQN);
- :mod:`~rainbow_ext.zoo.resolution`: :class:`RunConfig` and ``resolve_run`` (a config entry, a preset and
  overrides, checked and merged);
- :mod:`~rainbow_ext.zoo.models`, :mod:`~rainbow_ext.zoo.resume`, :mod:`~rainbow_ext.zoo.callbacks`,
  :mod:`~rainbow_ext.zoo.options`: a run's model, its continuation (``-i``), its callbacks, its flags;
- :mod:`~rainbow_ext.zoo.experiment`: ``prepare_run`` and ``train_run`` (one run of ``python -m
  rainbow_ext.train``);
- :mod:`~rainbow_ext.zoo.config`: config files in rl-zoo3's YAML layout, ``-params``, and
  ``apply_preset``, the one place where a preset, a config entry and overrides combine;
- :mod:`~rainbow_ext.zoo.tuning` and :mod:`~rainbow_ext.zoo.ablation`: Optuna studies and grids;
- :mod:`~rainbow_ext.zoo.runs`: run folders, atomic writes, a clean stop on signals;
- :mod:`~rainbow_ext.zoo.studies`: Optuna storage (SQLite, PostgreSQL);
- :mod:`~rainbow_ext.zoo.stats` and :mod:`~rainbow_ext.zoo.ablation_report`: statistics and reports;
- :mod:`~rainbow_ext.zoo.tracking`: Weights & Biases;
- :mod:`~rainbow_ext.zoo.errors`: bad input and exit statuses.

The commands (``python -m rainbow_ext.train|enjoy|tune|ablate``) only parse arguments and call these.
"""

from rainbow_ext.zoo.algorithms import ALGOS, algo_class
from rainbow_ext.zoo.errors import UsageError
from rainbow_ext.zoo.experiment import prepare_run, train_run
from rainbow_ext.zoo.models import build_model
from rainbow_ext.zoo.options import TrainOptions
from rainbow_ext.zoo.resolution import RunConfig, resolve_run, zoo_config

__all__ = [
    "ALGOS",
    "RunConfig",
    "TrainOptions",
    "UsageError",
    "algo_class",
    "build_model",
    "prepare_run",
    "resolve_run",
    "train_run",
    "zoo_config",
]
