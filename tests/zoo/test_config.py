"""Config files (zoo_configs/, -params, -conf): typed values, presets' rules, every shipped entry."""

import re
from pathlib import Path

import pytest
import yaml

from rainbow_ext import DataEfficientTrunk, Rainbow
from rainbow_ext.train import main
from rainbow_ext.zoo import config as cfg
from rainbow_ext.zoo.algorithms import algo_class
from rainbow_ext.zoo.config import CONFIG_DIR
from rainbow_ext.zoo.resolution import resolve_run, zoo_config
from tests.helpers.commands import write_config


def test_noisy_presets_drop_the_entrys_epsilon() -> None:
    assert "exploration_final_eps" not in zoo_config("rainbow", "CartPole-v1").hyperparams
    given = zoo_config("rainbow", "CartPole-v1", "exploration_final_eps:0.2")
    assert given.hyperparams["exploration_final_eps"] == 0.2  # given explicitly: applies
    assert zoo_config("dqn", "CartPole-v1").hyperparams["exploration_final_eps"] == 0.04
    # noisy nets switched off by -params: the run explores with epsilon, the entry's schedule applies
    assert zoo_config("rainbow", "CartPole-v1", "noisy:false").hyperparams["exploration_final_eps"] == 0.04


def test_presets_without_nstep_drop_the_entrys_n(tmp_path: Path) -> None:
    conf = tmp_path / "conf.yml"
    conf.write_text("CartPole-v1:\n  n_steps: 20\n")
    for algo, n in (("rainbow", 20), ("rainbow-no-nstep", 1), ("dqn", 1), ("nstep", 20)):
        assert zoo_config(algo, "CartPole-v1", conf_file=conf).hyperparams["n_steps"] == n, algo
    given = zoo_config("rainbow-no-nstep", "CartPole-v1", "n_steps:5", conf_file=conf)
    assert given.hyperparams["n_steps"] == 5  # given explicitly: applies


@pytest.mark.parametrize(
    ("entry", "algo", "against"),
    [
        ("dueling: false", "rainbow", "dueling: False (the preset: True)"),
        ("noisy: true", "dqn", "noisy: True (the preset: False)"),
        ("n_steps: 1", "rainbow", "n_steps: 1 (the preset: 3)"),
        ("prioritized: false", "per", "prioritized: False (the preset: True)"),
    ],
)
def test_an_entry_cannot_set_a_component_flag_against_its_preset(
    entry: str, algo: str, against: str, tmp_path: Path
) -> None:
    conf = tmp_path / "conf.yml"
    conf.write_text(f"CartPole-v1:\n  {entry}\n")
    with pytest.raises(cfg.ConfigError, match=re.escape(f"conf.yml['CartPole-v1'] sets {against} against the preset")):
        zoo_config(algo, "CartPole-v1", conf_file=conf)
    # the same flag as the preset's is no contradiction, and -params may change a flag on purpose (the
    # entry's then agrees with the run)
    assert zoo_config(algo, "CartPole-v1", entry.replace(" ", ""), conf_file=conf)
    flag = entry.split(":")[0]
    assert zoo_config(algo, "CartPole-v1", f"{flag}:{zoo_config(algo, 'CartPole-v1').hyperparams[flag]}")
    assert zoo_config(algo, "CartPole-v1", entry.replace(" ", "")).hyperparams[flag] == yaml.safe_load(
        entry.split(": ")[1]
    )


def test_der_config_resolves_for_every_preset() -> None:
    der = CONFIG_DIR / "rainbow_der.yml"
    run = zoo_config("rainbow", "ALE/Pong-v5", conf_file=der)
    assert (run.hyperparams["n_steps"], run.hyperparams["train_freq"], run.n_timesteps) == (20, 1, 100_000)
    network = {"features_extractor_class": DataEfficientTrunk, "net_arch": [256]}
    assert run.hyperparams["policy_kwargs"] == network and "exploration_fraction" not in run.hyperparams
    assert zoo_config("rainbow-no-noisy", "ALE/Pong-v5", conf_file=der).hyperparams["exploration_final_eps"] == 0.01


def test_yaml_wrong_type_is_an_error(tmp_path: Path, capsys) -> None:
    conf = write_config(tmp_path, "  n_timesteps: 100\n  gamma: high\n")
    assert main(["-conf", conf, "-f", str(tmp_path / "logs")]) == 2
    assert "gamma in conf.yml['CartPole-v1'] must be int or float, got 'high'" in capsys.readouterr().err


@pytest.mark.parametrize("config_file", ["rainbow.yml", "qrdqn.yml", "sb3_dqn.yml"])
def test_every_zoo_config_entry_is_valid(config_file: str) -> None:
    """Every entry passes the typed checks for its algo, and its policy_kwargs import."""
    algo = {"qrdqn.yml": "qrdqn", "sb3_dqn.yml": "sb3-dqn"}.get(config_file, "rainbow")
    entries = cfg.load_entries(cfg.CONFIG_DIR / config_file)
    assert {"default", "atari", "minatar", "CartPole-v1", "Acrobot-v1", "LunarLander-v3"} <= set(entries)
    assert {f"MinAtar/{game}-v1" for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")} <= set(
        entries
    )
    for key, entry in entries.items():
        cfg.check_keys(entry, algo_class(algo), key)
        resolved = cfg.apply_preset({}, entry, {}, key)
        assert isinstance(resolved.get("n_timesteps"), int), key


def test_rainbow_yml_atari_entry_is_the_papers() -> None:
    atari = zoo_config("rainbow", "ALE/Breakout-v5")
    h = atari.hyperparams
    assert (h["learning_rate"], h["n_steps"], h["target_update_interval"], h["learning_starts"]) == (
        6.25e-5,
        3,
        8000,
        20000,
    )
    assert (h["buffer_size"], h["n_atoms"], h["v_min"], h["v_max"]) == (1_000_000, 51, -10.0, 10.0)
    assert (h["per_alpha"], h["per_beta0"], h["batch_size"], h["train_freq"]) == (0.5, 0.4, 32, 4)
    assert atari.frame_stack == 4 and atari.policy == "CnnPolicy"


def test_numbers_in_exponent_form_are_numbers(tmp_path: Path) -> None:
    """YAML 1.2 floats: 1e-3 and 1e6 are numbers in configs and -params (PyYAML alone reads strings)."""
    assert cfg.parse_params(["learning_rate:1e-3", "n:1e6", "a:[64, 64]", "b:true", "c:auto"]) == {
        "learning_rate": 0.001,
        "n": 1e6,
        "a": [64, 64],
        "b": True,
        "c": "auto",
    }
    conf = write_config(tmp_path, "  n_timesteps: 1e6\n  learning_rate: 6.25e-5\n  buffer_size: 5E4\n")
    run = resolve_run("rainbow", "CartPole-v1", conf_file=conf)
    assert run.n_timesteps == 1_000_000 and run.hyperparams["learning_rate"] == 6.25e-5
    assert run.hyperparams["buffer_size"] == 50_000


def test_key_types_come_from_the_constructors_type_hints() -> None:
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN

    rainbow = cfg.key_types(Rainbow)
    assert rainbow["noisy"] == (bool,) and rainbow["n_atoms"] == (int,) and rainbow["v_min"] == (int, float)
    assert rainbow["frame_storage"] == (bool, type(None)) and rainbow["train_freq"] == (int, list)
    assert rainbow["buffer_size"] == (int, float)  # a count may be written 1e6
    assert rainbow["learning_rate"] == (int, float, str)  # a number or lin_<start>
    assert set(rainbow["policy_kwargs"]) == {dict, str, type(None)}
    assert "noisy" not in cfg.key_types(DQN) and cfg.key_types(QRDQN)["max_grad_norm"] == (int, float, type(None))
    # every constructor argument of Rainbow that a YAML value can stand for is checked
    unchecked = set(cfg.valid_keys(Rainbow)) - set(rainbow)
    assert unchecked == {"replay_buffer_class"}  # a class: SB3 takes the class itself
    with pytest.raises(cfg.ConfigError, match=r"noisy in -params must be bool, got 1 \(int\)"):
        cfg.check_keys({"noisy": 1}, Rainbow, "-params")
    with pytest.raises(cfg.ConfigError, match=re.escape("batch_size in x must be int, got 32.0")):
        cfg.check_keys({"batch_size": 32.0}, Rainbow, "x")
    for count in (float("inf"), float("nan"), 1.5):
        with pytest.raises(cfg.ConfigError, match="buffer_size must be a whole number"):
            cfg.apply_preset({}, {"buffer_size": count}, {}, "x")


def test_params_given_with_i_are_read_as_a_config_entrys() -> None:
    kwargs = cfg.load_overrides({"learning_rate": "lin_1e-3", "buffer_size": 1e5, "n_timesteps": 5}, Rainbow)
    assert kwargs["buffer_size"] == 100_000 and isinstance(kwargs["buffer_size"], int)
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and "n_timesteps" not in kwargs  # a run key
    with pytest.raises(cfg.ConfigError, match="unknown hyperparameter"):
        cfg.load_overrides({"learnig_rate": 1e-3}, Rainbow)


def test_entry_params_follow_the_presets_rules() -> None:
    """A grid's values for the config entry (an epsilon schedule for its budget) reach only the runs
    the preset's rules give them to, unlike -params."""
    entry = {"exploration_fraction": 0.2, "n_steps": 5}
    assert "exploration_fraction" not in resolve_run("rainbow", "CartPole-v1", entry_params=entry).hyperparams
    assert resolve_run("rainbow", "CartPole-v1", entry_params=entry).hyperparams["n_steps"] == 5
    dqn = resolve_run("dqn", "CartPole-v1", entry_params=entry).hyperparams
    assert dqn["exploration_fraction"] == 0.2 and dqn["n_steps"] == 1
    assert (
        resolve_run("sb3-dqn", "CartPole-v1", entry_params={"exploration_fraction": 0.2}).hyperparams[
            "exploration_fraction"
        ]
        == 0.2
    )
