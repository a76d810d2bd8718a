"""The algorithms every command knows, by name: each Rainbow preset, and what users of SB3 would run instead
(sb3-contrib's QR-DQN, SB3's own DQN), each with its class, its shipped config file and the module its saved
policies come from (rl-zoo3's ``ALGOS``, as one dict)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from rainbow_ext.presets import PRESETS
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.errors import UsageError


@dataclass(frozen=True)
class AlgoSpec:
    """An algorithm of the registry: how to get its class, the config file it reads by default, and the
    module prefix of the policies its saved models hold."""

    load_class: Callable[[], type[BaseAlgorithm]]
    config_file: str
    policy_module: str


def _rainbow() -> type[BaseAlgorithm]:
    from rainbow_ext.rainbow import Rainbow

    return Rainbow


def _qrdqn() -> type[BaseAlgorithm]:
    from sb3_contrib import QRDQN

    return QRDQN


def _sb3_dqn() -> type[BaseAlgorithm]:
    from stable_baselines3 import DQN

    return DQN


# Every preset is Rainbow with its flags; the baselines have rl-zoo3's hyperparameters in their own files.
ALGOS: dict[str, AlgoSpec] = {
    **{preset: AlgoSpec(_rainbow, "rainbow.yml", "rainbow_ext.") for preset in PRESETS},
    "qrdqn": AlgoSpec(_qrdqn, "qrdqn.yml", "sb3_contrib.qrdqn."),
    "sb3-dqn": AlgoSpec(_sb3_dqn, "sb3_dqn.yml", "stable_baselines3.dqn."),
}
BASELINES = tuple(name for name in ALGOS if name not in PRESETS)


def algo_class(algo: str) -> type[BaseAlgorithm]:
    return ALGOS[algo].load_class()


def check_algo(algo: str) -> None:
    if algo not in ALGOS:
        close = difflib.get_close_matches(algo, list(ALGOS), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown algo {algo!r}{hint}; valid: {', '.join(ALGOS)}")


def default_config_file(algo: str) -> Path:
    return cfg.CONFIG_DIR / ALGOS[algo].config_file


def foreign_model(path: Path, algo: str) -> str | None:
    """What the model file at ``path`` is when another algorithm than ``algo`` saved it (None otherwise, or
    when the file does not say)."""
    saved_as = saved_algorithm(path)
    if saved_as is None or algo_class(saved_as) is algo_class(algo):
        return None
    name = "a Rainbow (preset)" if saved_as == "rainbow" else f"a {saved_as}"
    return f"this file is {name} model, not {algo}; pass --algo accordingly"


def saved_algorithm(path: Path) -> str | None:
    """The algo a model zip was saved from, read from its policy class's module: ``"rainbow"`` (any
    preset), ``"qrdqn"`` or ``"sb3-dqn"``; None when the file does not say."""
    data = runs.saved_model_data(path)
    if data is None:
        return None  # load() reports what is wrong with the file
    policy_class = data.get("policy_class")
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    families = {"rainbow": ALGOS["rainbow"], **{name: ALGOS[name] for name in BASELINES}}
    return next((name for name, spec in families.items() if module.startswith(spec.policy_module)), None)
