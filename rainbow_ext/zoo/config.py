"""Hyperparameters in rl-zoo3's YAML layout, parsed with types and never evaluated.

A config file (``zoo_configs/rainbow.yml`` for every preset, ``qrdqn.yml`` for QR-DQN, ``sb3_dqn.yml``
for SB3's DQN) maps env ids to entries; an env without its own entry takes ``atari`` (Atari games), ``minatar``
(MinAtar games) or ``default``. An entry holds constructor arguments of the algorithm plus rl-zoo3's
keys for the run: ``n_timesteps``, ``policy``, ``n_envs``, ``frame_stack``, ``env_wrapper``,
``env_kwargs``, and one of its own, ``eval_max_steps`` (evaluation episodes are cut after that many
agent steps).

Differences from rl-zoo3, which ``eval``s strings: values are YAML values checked against the type of
their key; ``policy_kwargs`` may be a YAML mapping or rl-zoo3's ``"dict(net_arch=[64, 64])"`` string,
read as literals only; classes (``activation_fn``, ``optimizer_class``, ``features_extractor_class``,
``env_wrapper``) are named by import path and imported, never evaluated; an unknown key is an error
that lists the valid ones. How a preset, an entry and ``-params`` combine is decided in one place,
:func:`apply_preset`.
"""

from __future__ import annotations

import ast
import collections.abc
import difflib
import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.utils import LinearSchedule

from rainbow_ext.classes import ConfigError, check_class_use, import_object
from rainbow_ext.domains import check_values


def shipped_folder(package: str, top_level: str) -> Path:
    """A folder that ships inside rainbow_ext as ``package`` (``rainbow_ext.zoo_configs``,
    ``rainbow_ext.tuning``); from a source checkout used without installing (on ``PYTHONPATH``), the
    repository's top-level folder ``top_level`` that it is built from."""
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / top_level


CONFIG_DIR = shipped_folder("rainbow_ext.zoo_configs", "zoo_configs")

# Keys of an entry that configure the run rather than the algorithm's constructor.
RUN_KEYS = ("n_timesteps", "policy", "n_envs", "frame_stack", "env_wrapper", "env_kwargs", "eval_max_steps")
EXPLORATION_KEYS = ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")
# Constructor arguments set by the command itself, not by configs.
COMMAND_ARGS = ("self", "policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")

NUMBER = (int, float)
# YAML types of the run keys; a constructor argument's come from its type hint (key_types).
RUN_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "n_timesteps": NUMBER,
    "policy": (str,),
    "n_envs": (int,),
    "frame_stack": (int,),
    "env_wrapper": (str, list, dict),
    "env_kwargs": (dict,),
    "eval_max_steps": (int,),
}
# Counts written as 1e6 in YAML are floats; they are integers.
INTEGER_KEYS = ("n_timesteps", "buffer_size", "learning_starts", "target_update_interval")
# policy_kwargs entries that name classes, and the class each must derive from.
CLASS_KWARGS = {
    "activation_fn": "torch.nn.Module",
    "optimizer_class": "torch.optim.Optimizer",
    "features_extractor_class": "stable_baselines3.common.torch_layers.BaseFeaturesExtractor",
}


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` and ``1e6`` as floats (YAML 1.2) rather than strings."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(stream: Any) -> Any:
    return yaml.load(stream, Loader=ConfigLoader)


def valid_keys(algo_class: type) -> list[str]:
    """Keys an entry may hold: the algorithm's constructor arguments and the run keys."""
    params = set(inspect.signature(algo_class.__init__).parameters) - set(COMMAND_ARGS)
    return sorted(params | set(RUN_KEYS))


def load_entries(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with open(path) as file:
            entries = load_yaml(file)
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path} does not exist") from error
    except IsADirectoryError as error:
        raise ConfigError(f"config file {path} is a directory, not a YAML file") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise ConfigError(f"config file {path} must map env ids to mappings of hyperparameters")
    return entries


def select_entry(entries: dict[str, dict[str, Any]], env_id: str, family: str | None) -> tuple[str, dict[str, Any]]:
    """The entry for ``env_id``, else its family's (``atari``, ``minatar``), else ``default``."""
    for key in (env_id, family, "default"):
        if key is not None and key in entries:
            return key, dict(entries[key])
    raise ConfigError(f"no entry for {env_id!r} (nor {family or 'default'!r}) in the config file")


@cache
def key_types(algo_class: type) -> dict[str, tuple[type, ...]]:
    """YAML types of an entry's keys for ``algo_class``: the run keys', and each constructor argument's,
    read from its type hint (a count such as ``buffer_size`` may be written ``1e6``; ``policy_kwargs``
    may be rl-zoo3's ``"dict(...)"`` string; a schedule is rl-zoo3's ``lin_<start>``). An argument
    whose hint has no YAML form (a class, a device) is not checked here."""
    types = dict(RUN_KEY_TYPES)
    namespace = vars(sys.modules[algo_class.__init__.__module__])
    for name, parameter in inspect.signature(algo_class.__init__).parameters.items():
        hint = parameter.annotation
        if name in COMMAND_ARGS or hint is inspect.Parameter.empty:
            continue
        if isinstance(hint, str):  # postponed annotations: the class's own source, in its module
            try:
                hint = eval(hint, namespace)
            except Exception:
                continue
        found = yaml_types(hint)
        if found is not None:
            types[name] = found + ((float,) if name in INTEGER_KEYS and float not in found else ())
    if "policy_kwargs" in types:
        types["policy_kwargs"] += (str,)
    return types


def yaml_types(hint: Any) -> tuple[type, ...] | None:
    """The YAML types that can stand for a value of type ``hint`` (None: no YAML form)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [yaml_types(arg) for arg in typing.get_args(hint)]
        if any(part is None for part in parts):
            return None
        return tuple(dict.fromkeys(t for part in parts for t in part))  # type: ignore[union-attr]
    origin = typing.get_origin(hint) or hint
    simple: dict[Any, tuple[type, ...]] = {
        type(None): (type(None),),
        bool: (bool,),
        int: (int,),
        float: NUMBER,
        str: (str,),
        dict: (dict,),
        collections.abc.Mapping: (dict,),
        tuple: (list,),
        list: (list,),
        collections.abc.Callable: (str,),  # a schedule: rl-zoo3's lin_<start>
    }
    return simple.get(origin)


def check_keys(values: dict[str, Any], algo_class: type, where: str) -> None:
    """An entry's (or ``-params``') keys must be the algorithm's constructor arguments or run keys,
    each of its YAML type; a ConfigError names the unknown key (and the closest valid one)."""
    keys = valid_keys(algo_class)
    unknown = sorted(set(values) - set(keys))
    if unknown:
        hints = {key: difflib.get_close_matches(key, keys, n=1) for key in unknown}
        hint = "".join(f" (did you mean {match[0]!r}?)" for match in hints.values() if match)
        raise ConfigError(f"unknown hyperparameter(s) {unknown} in {where}{hint}; valid keys: {', '.join(keys)}")
    expected = key_types(algo_class)
    for key, value in values.items():
        check_type(key, value, where, expected.get(key))


def explores_with_epsilon(hyperparams: dict[str, Any]) -> bool:
    """Epsilon-greedy exploration: only without noisy nets, which explore by themselves."""
    return not hyperparams.get("noisy", False)


def n_step_on(hyperparams: dict[str, Any]) -> bool:
    """n-step returns are on: ``n_steps`` is a switch (presets hold 1 or 3) and, when on, the n."""
    return int(hyperparams.get("n_steps", 1)) > 1


def apply_preset(
    flags: dict[str, Any], entry: dict[str, Any], overrides: dict[str, Any], source: str
) -> dict[str, Any]:
    """Constructor and run arguments of a run from its preset's component ``flags``, its config
    ``entry`` and the ``-params`` ``overrides``. The only place these rules are decided:

    - the preset sets the component flags: an entry that sets one against it is an error, so that an
      entry cannot silently turn ``--algo rainbow`` into something else;
    - ``-params`` win over both: an explicit choice, recorded in the run's config.yml;
    - the entry's epsilon-greedy keys apply only to a run that explores with epsilon
      (:func:`explores_with_epsilon`), and its ``n_steps`` (a tuned n) only to a run with n-step
      returns on (:func:`n_step_on`); given as ``-params`` they always apply.

    Counts written as floats become integers, ``train_freq`` lists become tuples and ``policy_kwargs``
    are read (their classes imported)."""
    against = {
        key: value
        for key, value in entry.items()
        if key in flags and key not in overrides and _against(key, value, flags)
    }
    if against:
        listed = ", ".join(f"{key}: {value!r} (the preset: {flags[key]!r})" for key, value in against.items())
        raise ConfigError(
            f"{source} sets {listed} against the preset, which sets the component flags; remove it from the "
            "entry, or pick the preset that has it (--algo), or give it with -params"
        )
    switched = {**flags, **{k: v for k, v in overrides.items() if k in flags}}
    dropped = set() if explores_with_epsilon(switched) else set(EXPLORATION_KEYS)
    if flags and not n_step_on(switched):
        dropped.add("n_steps")
    merged = {**flags, **{k: v for k, v in entry.items() if k not in dropped}, **overrides}
    for key in INTEGER_KEYS:
        if key in merged:
            merged[key] = as_integer(key, merged[key])
    if isinstance(merged.get("train_freq"), list):
        merged["train_freq"] = parse_train_freq(merged["train_freq"])
    if "policy_kwargs" in merged:
        merged["policy_kwargs"] = parse_policy_kwargs(merged["policy_kwargs"])
        where = "-params" if "policy_kwargs" in overrides else source
        check_net_arch(merged["policy_kwargs"].get("net_arch"), f"policy_kwargs['net_arch'] in {where}")
        for name, value in merged["policy_kwargs"].items():  # head options, QR-DQN's n_quantiles: their domains
            check_values({name: value}, f"policy_kwargs of {where}", ConfigError)
    return merged


def check_net_arch(net_arch: Any, where: str) -> None:
    """None, or a list of hidden-layer sizes, each an integer >= 1 (SB3's DQN policies take no dict form)."""
    if net_arch is None:
        return
    if not isinstance(net_arch, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in net_arch
    ):
        raise ConfigError(f"{where} must be a list of layer sizes, each an integer >= 1, got {net_arch!r}")


def _against(key: str, value: Any, flags: dict[str, Any]) -> bool:
    """An entry's component flag contradicts its preset. ``n_steps`` is the n of a preset with n-step
    returns on, so only a value that turns them off contradicts it; under a preset without them,
    apply_preset drops the entry's n."""
    if key == "n_steps":
        return n_step_on(flags) and not n_step_on({key: value})
    return value != flags[key]


def check_type(key: str, value: Any, where: str, expected: tuple[type, ...] | None) -> None:
    # bool is an int in Python, but not a valid count or rate here
    bad_bool = isinstance(value, bool) and expected is not None and bool not in expected
    if expected is not None and (bad_bool or not isinstance(value, expected)):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
        raise ConfigError(f"{key} in {where} must be {names}, got {value!r} ({type(value).__name__})")


def as_integer(key: str, value: float) -> int:
    try:
        whole = int(value)
    except (OverflowError, ValueError) as error:  # inf, nan
        raise ConfigError(f"{key} must be a whole number, got {value!r}") from error
    if float(value) != whole:
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    return whole


def parse_train_freq(value: list) -> tuple[int, str]:
    if len(value) != 2 or not isinstance(value[0], int) or value[1] not in ("step", "episode"):
        raise ConfigError(f"train_freq must be an integer or [n, 'step' | 'episode'], got {value!r}")
    return value[0], value[1]


def load_overrides(overrides: dict[str, Any], algo_class: type) -> dict[str, Any]:
    """``-params`` for ``algo_class.load`` (continuing a model): checked, read as a config entry's values
    are (counts, ``train_freq``, ``policy_kwargs``, the learning-rate schedule); run keys are not the
    model's."""
    check_keys(overrides, algo_class, "-params")
    kwargs = {k: v for k, v in apply_preset({}, {}, overrides, "-params").items() if k not in RUN_KEYS}
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = learning_rate_schedule(kwargs["learning_rate"])
    return kwargs


def learning_rate_schedule(value: float | str) -> float | Callable[[float], float]:
    """A number, or rl-zoo3's ``lin_<start>``: linear decay from start to 0 over the run."""
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ConfigError(f"learning_rate must be a number or 'lin_<number>', got {value!r}")
        try:
            start = float(value.removeprefix("lin_"))
        except ValueError as error:
            raise ConfigError(f"learning_rate must be a number or 'lin_<number>', got {value!r}") from error
        if not (math.isfinite(start) and start > 0):
            raise ConfigError(f"learning_rate's schedule must start at a finite number > 0, got {value!r}")
        return LinearSchedule(start, 0.0, 1.0)
    return float(value)


def parse_policy_kwargs(value: dict[str, Any] | str) -> dict[str, Any]:
    """A mapping, or rl-zoo3's ``"dict(key=literal, ...)"`` string read without evaluation; entries
    naming classes are imported."""
    if isinstance(value, str):
        value = parse_dict_call(value, "policy_kwargs")
    kwargs = dict(value)
    for key, base in CLASS_KWARGS.items():
        if isinstance(kwargs.get(key), str):
            kwargs[key] = import_object(kwargs[key], f"policy_kwargs[{key!r}]", base)
            check_class_use(key, kwargs[key], f"policy_kwargs[{key!r}]")
    return kwargs


def parse_dict_call(text: str, what: str) -> dict[str, Any]:
    """``"dict(a=1, b=[2, 3])"`` -> ``{"a": 1, "b": [2, 3]}``; values must be literals or dotted
    names (kept as strings, for classes)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ConfigError(f"{what}: cannot read {text!r}: {error.msg}") from error
    if not (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args
    ):
        raise ConfigError(f"{what} must be a mapping or 'dict(key=value, ...)', got {text!r}")
    result = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ConfigError(f"{what}: '**' is not supported in {text!r}")
        result[keyword.arg] = literal_or_name(keyword.value, what, text)
    return result


def literal_or_name(node: ast.expr, what: str, text: str) -> Any:
    if isinstance(node, (ast.Name, ast.Attribute)):
        return ast.unparse(node)  # a class name such as nn.ReLU, imported later
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return parse_dict_call(ast.unparse(node), what)
    try:
        return ast.literal_eval(node)
    except ValueError as error:
        raise ConfigError(f"{what}: only literals and class names are allowed, got {ast.unparse(node)!r}") from error


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``-params key:value`` pairs. Values are read as YAML scalars and flow collections
    (``1e-3``, ``true``, ``[64, 64]``, ``{net_arch: [64]}``), never evaluated."""
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition(":")
        if not sep or not key or not text:
            raise ConfigError(f"malformed -params entry {pair!r}: expected key:value")
        try:
            params[key] = load_yaml(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"malformed -params value in {pair!r}: {error}") from error
        if isinstance(params[key], str) and key == "policy_kwargs":
            params[key] = parse_dict_call(params[key], "-params policy_kwargs")
    return params


def to_yaml_value(value: Any) -> Any:
    """A YAML-safe form of a resolved value (classes and schedules by name)."""
    if isinstance(value, dict):
        return {str(k): to_yaml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_yaml_value(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return repr(value)
