"""Classes named in configs by strings (``"torch.nn.ReLU"``, ``"nn.ReLU"``, ``"DataEfficientTrunk"``): imported
from an allow-list of packages, never evaluated, and checked to be classes of the expected kind. Shared by
the config layer (``policy_kwargs``) and the env builder (``env_wrapper``)."""

from __future__ import annotations

import importlib
import inspect

# The packages a config may name classes from: importing a module runs its code, so not any module.
CLASS_MODULES = ("torch", "stable_baselines3", "sb3_contrib", "gymnasium", "rainbow_ext")
# Bare names a config may give for classes outside torch.nn and torch.optim: the trunks of the networks
SHORT_CLASS_NAMES = {
    "NatureCNNTrunk": "rainbow_ext.layers.NatureCNNTrunk",
    "MinAtarTrunk": "rainbow_ext.layers.MinAtarTrunk",
    "DataEfficientTrunk": "rainbow_ext.layers.DataEfficientTrunk",
    "NatureCNN": "stable_baselines3.common.torch_layers.NatureCNN",
}
# rl-zoo3 configs write nn.ReLU (its module imports torch.nn as nn)
MODULE_ALIASES = {"nn": "torch.nn", "th.nn": "torch.nn", "optim": "torch.optim", "th.optim": "torch.optim"}


class ConfigError(ValueError):
    """A config file, entry or ``-params`` value that cannot be used."""


def import_object(path: str, what: str, base: str | None = None) -> type:
    """``"torch.nn.ReLU"``, ``"nn.ReLU"``, ``"ReLU"`` (torch.nn, then torch.optim) or a trunk's bare name
    (``"DataEfficientTrunk"``, see ``SHORT_CLASS_NAMES``) -> the class.

    It must be a class, and a subclass of ``base`` (an import path) when given: a config names a
    class for the library to build, never a function to call (``os.system`` is refused, not run)."""
    module_name, _, name = SHORT_CLASS_NAMES.get(path, path).rpartition(".")
    candidates = [MODULE_ALIASES.get(module_name, module_name)] if module_name else ["torch.nn", "torch.optim"]
    for candidate in candidates:
        if candidate.split(".")[0] not in CLASS_MODULES:
            raise ConfigError(
                f"{what}: {path!r} is outside the modules a config may name classes from ({', '.join(CLASS_MODULES)})"
            )
        try:
            found = getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
        expected = _class_at(base) if base is not None else object
        if not (inspect.isclass(found) and issubclass(found, expected)):
            kind = f"a subclass of {base}" if base is not None else "a class"
            raise ConfigError(f"{what}: {path!r} is not {kind}")
        return found
    raise ConfigError(f"{what}: cannot import {path!r} (give module.Name, e.g. torch.nn.ReLU)")


def _class_at(path: str) -> type:
    module_name, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def check_class_use(key: str, cls: type, where: str) -> None:
    """A class a config names must be able to serve as ``key``, checked by use before any run folder exists:
    not abstract; an ``activation_fn`` built without arguments (as SB3 builds it) and run on a batch; an
    ``optimizer_class`` whose ``step`` runs without a closure (SB3's train loop passes none). A
    ``features_extractor_class`` needs the env's spaces: the model's dry run checks it
    (:func:`rainbow_ext.zoo.models.build_model`)."""
    import torch as th

    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(f"{where}: {cls.__name__} is abstract (it does not implement {missing}) and cannot be built")
    if key == "activation_fn":
        try:
            activation = cls()
            activation(th.zeros(2, 3))
        except Exception as error:  # any failure to build or run is the class's unfitness here
            raise ConfigError(
                f"{where}: {cls.__name__} cannot serve as an activation (built as {cls.__name__}() and run on a "
                f"batch: {type(error).__name__}: {error})"
            ) from None
    if key == "optimizer_class":
        if cls.step is th.optim.Optimizer.step:
            raise ConfigError(f"{where}: {cls.__name__} implements no step (torch.optim.Optimizer is the base class)")
        closure = inspect.signature(cls.step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise ConfigError(
                f"{where}: {cls.__name__}.step needs a closure (it re-evaluates the loss), which SB3's train loop "
                "does not pass; use an optimizer whose step takes none (torch.optim.Adam, RMSprop, SGD, ...)"
            )
