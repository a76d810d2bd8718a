"""The domain of every hyperparameter that ``train``, ``tune`` and ``ablate`` accept, in one table.

``Rainbow(...)`` checks its arguments against it (a ``ValueError``), the experiment layer checks a run's
config entry and ``-params`` against it before anything is written (exit 2, naming the file and entry),
and every value an Optuna search space samples is checked against it before a trial trains. A key that
takes a structure rather than a number (``policy_kwargs``, ``replay_buffer_class``, ...) is listed in
:data:`CHECKED_ELSEWHERE` with the place that checks it, so that every key has a home.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Domain:
    """A set of values: numbers in an interval (``integer`` ones, or any finite real), a set of choices,
    or either of two domains (``alternative``); ``none_ok`` admits None as well."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None
    none_ok: bool = False
    alternative: Domain | None = None
    meaning: str = ""

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        if self.alternative is not None and self.alternative.contains(value):
            return True
        if self.choices is not None:
            return any(value is c or (type(value) is type(c) and value == c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = "an integer" if self.integer else "a finite number"
            if self.low is not None and self.high is not None:
                opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
                text += f" in {opening}{_number(self.low)}, {_number(self.high)}{closing}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_number(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_number(self.high)}"
        if self.alternative is not None:
            text += f", or {self.alternative.describe()}"
        if self.none_ok:
            text += ", or None (null in YAML)"
        return text + (f" ({self.meaning})" if self.meaning else "")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _unit(meaning: str = "") -> Domain:
    return Domain(0.0, 1.0, meaning=meaning)


def _count(smallest: int = 1, meaning: str = "") -> Domain:
    return Domain(smallest, integer=True, meaning=meaning)


def _positive(meaning: str = "") -> Domain:
    return Domain(0.0, low_open=True, meaning=meaning)


BOOL = Domain(choices=(True, False))
# (frequency, unit) as SB3 takes train_freq, after the zoo reads a YAML list into a tuple
TRAIN_FREQ_UNITS = ("step", "episode")

DOMAINS: dict[str, Domain] = {
    # SB3's DQN arguments
    "learning_rate": _positive("or a schedule: rl-zoo3's lin_<number>, or a callable in Python"),
    "buffer_size": _count(1, "transitions; the buffer must also fit in the machine's memory"),
    "learning_starts": _count(0),
    "batch_size": _count(1),
    "tau": Domain(0.0, 1.0, low_open=True, meaning="1 copies the online network; 0 would never update the target"),
    "gamma": _unit("the discount"),
    "train_freq": _count(1, "or [n, 'step' | 'episode']"),
    "gradient_steps": Domain(1, integer=True, alternative=Domain(choices=(-1,)), meaning="-1: one per env step"),
    "target_update_interval": _count(1),
    "exploration_fraction": Domain(0.0, 1.0, none_ok=True, meaning="of the run"),
    "exploration_initial_eps": Domain(0.0, 1.0, none_ok=True, meaning="a probability"),
    "exploration_final_eps": Domain(0.0, 1.0, none_ok=True, meaning="a probability"),
    "max_grad_norm": _positive(),
    "stats_window_size": _count(1),
    "optimize_memory_usage": BOOL,
    "n_steps": _count(1),
    # Rainbow's components
    "double_q": BOOL,
    "dueling": BOOL,
    "noisy": BOOL,
    "noisy_sigma0": _positive(),
    "distributional": Domain(choices=(True, False, "c51", "qr", "iqn")),
    "n_atoms": _count(2),
    "v_min": Domain(meaning="below v_max"),
    "v_max": Domain(meaning="above v_min"),
    "n_quantiles": Domain(1, integer=True, none_ok=True),
    "n_acting_quantiles": _count(1),
    "cosine_embedding_dim": _count(1),
    "munchausen": BOOL,
    "munchausen_tau": _positive(),
    "munchausen_alpha": _unit(),
    "munchausen_l0": Domain(high=0.0, high_open=True, meaning="the lower clip of tau log pi <= 0"),
    "prioritized": BOOL,
    "per_alpha": _unit(),
    "per_beta0": _unit(),
    "per_eps": _positive(),
    "frame_storage": Domain(choices=(True, False), none_ok=True),
    "cuda_graphs": Domain(choices=(True, False), none_ok=True),
    "flush_denormal": BOOL,
    # the run keys of a config entry
    "n_timesteps": _count(1),
    "n_envs": _count(1),
    "frame_stack": _count(1),
    "eval_max_steps": Domain(1, integer=True, none_ok=True, meaning="agent steps per evaluation episode"),
}

# Keys without a numeric domain, and where each is checked.
CHECKED_ELSEWHERE = {
    "policy_kwargs": "policies (net_arch, classes, optimizer_kwargs) and HeadOptions",
    "replay_buffer_class": "arguments.check_prioritized and replay.replay_buffer_choice",
    "replay_buffer_kwargs": "arguments.check_replay_buffer_kwargs",
    "policy": "SB3's policy aliases",
    "env_wrapper": "zoo.config (imported by path)",
    "env_kwargs": "the env's constructor",
}


def domain_error(name: str, value: Any, domain: Domain, where: str = "") -> str:
    place = f" in {where}" if where else ""
    return f"{name}{place} must be {domain.describe()}, got {value!r}"


def check_value(name: str, value: Any, where: str = "") -> None:
    """A ValueError naming ``name``, ``value`` and the domain when ``value`` lies outside it; keys
    without a domain pass (they are checked where :data:`CHECKED_ELSEWHERE` says)."""
    domain = DOMAINS.get(name)
    if domain is None:
        return
    if name == "learning_rate" and (callable(value) or isinstance(value, str)):
        return  # a schedule: its start is checked where it is read (zoo.config.parse_learning_rate)
    if name == "train_freq" and isinstance(value, (tuple, list)):
        if len(value) == 2 and domain.contains(value[0]) and value[1] in TRAIN_FREQ_UNITS:
            return
        raise ValueError(domain_error(name, value, domain, where))
    if not domain.contains(value):
        raise ValueError(domain_error(name, value, domain, where))


def check_values(values: dict[str, Any], where: str = "", error: Callable[[str], Exception] = ValueError) -> None:
    """:func:`check_value` for every key of ``values``, raising ``error(message)``."""
    for name, value in values.items():
        try:
            check_value(name, value, where)
        except ValueError as problem:
            raise error(str(problem)) from None
