"""Every hyperparameter has a domain (rainbow_ext/domains.py), and a seeded generator of bad values over every
key finds each refused: by Rainbow(...) with a ValueError, and by the experiment layer with exit-2 errors that
name the key, the value, the domain and where it was given, before anything is written."""

import inspect
import math
import random
from pathlib import Path

import pytest
from sb3_contrib import QRDQN
from stable_baselines3 import DQN

from rainbow_ext import Rainbow
from rainbow_ext.classes import ConfigError
from rainbow_ext.domains import CHECKED_ELSEWHERE, DOMAINS, Domain
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.resolution import resolve_run

# kinds of bad values, each a function of the generator: non-finite, negative, zero, huge, wrong type, wrong class
BAD_KINDS = {
    "nan": lambda rng: math.nan,
    "inf": lambda rng: math.inf,
    "-inf": lambda rng: -math.inf,
    "negative": lambda rng: -rng.uniform(0.001, 1e6),
    "negative int": lambda rng: -rng.randint(1, 10**6),
    "zero": lambda rng: 0,
    "zero float": lambda rng: 0.0,
    "huge": lambda rng: rng.uniform(1e12, 1e300),
    "fraction": lambda rng: rng.uniform(0.01, 0.99) + rng.randint(0, 5),
    "string": lambda rng: rng.choice(["abc", "1e-3x", "", "True"]),
    "list": lambda rng: [rng.randint(0, 3)],
    "bool": lambda rng: rng.choice([True, False]),
    "class": lambda rng: rng.choice([int, object, Path]),
}


def bad_values(key: str, seed: int = 0) -> list[tuple[str, object]]:
    """The generated values that lie outside ``key``'s domain (with the kind of each)."""
    rng = random.Random(f"{seed}:{key}")
    domain = DOMAINS[key]
    candidates = [(kind, make(rng)) for kind, make in BAD_KINDS.items()]
    return [(kind, value) for kind, value in candidates if not domain.contains(value)]


def constructor_keys(algo: type) -> set[str]:
    return set(inspect.signature(algo.__init__).parameters) - set(cfg.COMMAND_ARGS)


@pytest.mark.parametrize("algo", [Rainbow, DQN, QRDQN])
def test_every_key_has_a_domain_or_a_named_checker(algo: type) -> None:
    """A new constructor argument or run key cannot be added without a domain (or the place that checks it)."""
    keys = constructor_keys(algo) | set(cfg.RUN_KEYS)
    assert not sorted(keys - set(DOMAINS) - set(CHECKED_ELSEWHERE))


def test_the_generator_finds_bad_values_for_every_key() -> None:
    for key in DOMAINS:
        kinds = {kind for kind, _ in bad_values(key)}
        assert {"nan", "inf", "string", "list", "class"} <= kinds, key


def test_domains_describe_and_contain() -> None:
    unit = Domain(0.0, 1.0)
    assert unit.contains(0) and unit.contains(1.0) and not unit.contains(1.5) and not unit.contains(math.nan)
    assert not unit.contains(True) and not unit.contains("0.5")
    assert unit.describe() == "a finite number in [0, 1]"
    count = Domain(1, integer=True)
    assert count.contains(3) and not count.contains(3.0) and not count.contains(0)
    assert DOMAINS["gradient_steps"].contains(-1) and not DOMAINS["gradient_steps"].contains(0)
    assert DOMAINS["tau"].describe().startswith("a finite number in (0, 1]")
    assert DOMAINS["munchausen_l0"].contains(-1.0) and not DOMAINS["munchausen_l0"].contains(0.0)


RAINBOW_KEYS = sorted(constructor_keys(Rainbow) & set(DOMAINS))


@pytest.mark.parametrize("key", RAINBOW_KEYS)
def test_rainbow_refuses_every_bad_value_of_every_argument(key: str) -> None:
    for kind, value in bad_values(key):
        if key == "learning_rate" and kind in ("string", "class"):
            continue  # a schedule: a callable in Python, rl-zoo3's lin_<start> in configs (tested below)
        with pytest.raises(ValueError, match=f"^{key} must be ") as raised:
            Rainbow("MlpPolicy", "CartPole-v1", **{key: value})
        assert repr(value) in str(raised.value), (key, kind)


@pytest.mark.parametrize("key", sorted(set(DOMAINS) - {"policy", "distributional"}))
def test_configs_and_params_with_bad_values_exit_before_anything_is_written(key: str, tmp_path: Path) -> None:
    """A bad value from -params is named as such; from a config file, with its file and entry."""
    # the epsilon keys reach only presets that explore with epsilon; n is the preset's own under rainbow
    algo = "dqn" if key in cfg.EXPLORATION_KEYS else "rainbow"
    for kind, value in bad_values(key, seed=1):
        if kind not in ("nan", "negative int", "string") or (kind == "string" and key == "learning_rate"):
            continue
        if kind == "nan" and key in cfg.INTEGER_KEYS:
            continue  # counts written as floats are read as integers first (as_integer's own error)
        with pytest.raises(ConfigError, match=f"^{key} in -params must be ") as raised:
            resolve_run(algo, "CartPole-v1", {key: value})
        assert repr(value) in str(raised.value)
        if key == "n_steps":
            continue  # an entry's n against the preset's is refused by the preset's rule, naming the entry
        config = tmp_path / "bad.yml"
        config.write_text(f"CartPole-v1:\n  n_timesteps: 1000\n  {key}: {value!r}\n".replace("nan", ".nan"))
        with pytest.raises(ConfigError, match=rf"^{key} in bad.yml\['CartPole-v1'\] must be "):
            resolve_run(algo, "CartPole-v1", {}, conf_file=config)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["bad.yml"])  # nothing else written


@pytest.mark.parametrize("value", ["lin_-1", "lin_inf", "lin_0"])
def test_a_learning_rate_schedule_must_start_above_zero(value: str) -> None:
    with pytest.raises(ConfigError, match="learning_rate's schedule must start at a finite number > 0"):
        cfg.learning_rate_schedule(value)


def test_a_buffer_larger_than_memory_is_refused_before_it_is_allocated() -> None:
    with pytest.raises(ValueError, match=r"buffer_size=1000000000000 needs at least .* GiB .* more than this machine"):
        Rainbow("MlpPolicy", "CartPole-v1", buffer_size=10**12)
