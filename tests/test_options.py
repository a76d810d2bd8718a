"""Presets and bad input: a ValueError naming the problem, raised before anything is built."""

import warnings

import pytest
from stable_baselines3.common.buffers import NStepReplayBuffer

from rainbow_ext import PRESETS, Rainbow, preset_flags

COMPONENT_FLAGS = {"double": "double_q", "dueling": "dueling", "noisy": "noisy", "c51": "distributional"}


def _components(flags: dict) -> set[str]:
    on = {name for name, flag in COMPONENT_FLAGS.items() if flags[flag]}
    return on | ({"nstep"} if flags["n_steps"] > 1 else set()) | ({"per"} if flags["prioritized"] else set())


def test_preset_registry() -> None:
    everything = {"double", "dueling", "noisy", "c51", "nstep", "per"}
    assert _components(PRESETS["dqn"]) == set()
    assert _components(PRESETS["rainbow"]) == everything
    for component in everything:
        assert _components(PRESETS[component]) == {component}
        assert _components(PRESETS[f"rainbow-no-{component}"]) == everything - {component}
    assert PRESETS["rainbow"]["n_steps"] == 3
    # beyond the paper: the quantile heads in C51's place, and Munchausen's target, on DQN or Rainbow
    assert PRESETS["qr"] == {**PRESETS["dqn"], "distributional": "qr"}
    assert PRESETS["iqn"] == {**PRESETS["dqn"], "distributional": "iqn"}
    assert PRESETS["rainbow-iqn"] == {**PRESETS["rainbow"], "distributional": "iqn"}
    assert PRESETS["m-dqn"] == {**PRESETS["dqn"], "munchausen": True}
    assert not any(flags["munchausen"] for name, flags in PRESETS.items() if name != "m-dqn")
    assert len(PRESETS) == 14 + 4


def test_preset_builds_model_with_its_flags_and_overrides() -> None:
    model = Rainbow.from_preset("rainbow-no-noisy", "MlpPolicy", "CartPole-v1", n_steps=5, learning_rate=1e-3)
    assert (model.noisy, model.dueling, model.double_q, model.distributional) == (False, True, True, True)
    assert model.n_steps == 5 and model.replay_buffer.n_steps == 5
    assert model.learning_rate == 1e-3
    assert model.exploration_initial_eps == 1.0  # epsilon-greedy back without noisy nets


def test_preset_flags_is_a_copy() -> None:
    preset_flags("rainbow")["noisy"] = False
    assert PRESETS["rainbow"]["noisy"] is True


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'rainbow-no-prioritized'.*rainbow-no-per"):
        Rainbow.from_preset("rainbow-no-prioritized", "MlpPolicy", "CartPole-v1")


def test_unknown_flag_lists_valid_arguments() -> None:
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['dueling_q'\].*'dueling'"):
        Rainbow.from_preset("rainbow", "MlpPolicy", "CartPole-v1", dueling_q=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(v_min=1.0, v_max=1.0), "v_min must be < v_max"),
        (dict(v_min=5.0, v_max=-5.0), "v_min must be < v_max"),
        (dict(n_atoms=1), "n_atoms must be an integer >= 2"),
        (dict(n_atoms=2.5), "n_atoms must be an integer >= 2"),
        (dict(n_steps=0), "n_steps must be an integer >= 1"),
        (dict(noisy_sigma0=0.0), "noisy_sigma0 must be a finite number > 0"),
        (dict(noisy_sigma0=-0.1), "noisy_sigma0 must be a finite number > 0"),
        (dict(per_alpha=1.5), r"per_alpha must be a finite number in \[0, 1\]"),
        (dict(per_beta0=-0.1), r"per_beta0 must be a finite number in \[0, 1\]"),
        (dict(per_eps=0.0), "per_eps must be a finite number > 0"),
        (dict(replay_buffer_class=NStepReplayBuffer), "prioritized=True needs a prioritized buffer"),
        (dict(optimize_memory_usage=True), "optimize_memory_usage=True needs n_steps=1"),
        (dict(policy_kwargs=dict(noisy=False)), r"policy_kwargs\['noisy'\]=False conflicts with noisy=True"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rainbow("MlpPolicy", "CartPole-v1", **kwargs)


def test_non_discrete_action_space() -> None:
    with pytest.raises(ValueError, match="Discrete action space, got Box"):
        Rainbow("MlpPolicy", "Pendulum-v1")


def test_explicit_n_step_buffer_gets_n_steps_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = Rainbow(
            "MlpPolicy", "CartPole-v1", n_steps=4, gamma=0.9, prioritized=False, replay_buffer_class=NStepReplayBuffer
        )
    assert (model.replay_buffer.n_steps, model.replay_buffer.gamma) == (4, 0.9)


def test_replay_buffer_kwargs_must_agree_with_rainbow_arguments() -> None:
    with pytest.raises(ValueError, match=r"replay_buffer_kwargs\['n_steps'\]=5 conflicts with n_steps=3"):
        Rainbow("MlpPolicy", "CartPole-v1", replay_buffer_kwargs=dict(n_steps=5))
    with pytest.raises(ValueError, match=r"replay_buffer_kwargs\['gamma'\]=0.9 conflicts with gamma=0.99"):
        Rainbow("MlpPolicy", "CartPole-v1", replay_buffer_kwargs=dict(gamma=0.9))


def test_load_refuses_to_change_the_network(tmp_path) -> None:
    Rainbow("MlpPolicy", "CartPole-v1", buffer_size=100).save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match=r"\['noisy'\] cannot change at load"):
        Rainbow.load(tmp_path / "m.zip", noisy=False)
