"""Env-id resolution: one read of gym.registry per process, families decided from the specs."""

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gymnasium as gym
import pytest

from rainbow_ext.envs import atari_rom, is_atari_id, make_atari_vec_env, resolve_env_id
from rainbow_ext.envs.make import check_env_id, env_family, make_env
from rainbow_ext.envs.resolve import clear_cache


class CountingRegistry(Mapping[str, Any]):
    """``gym.registry`` that counts full iterations over it (lookups are free)."""

    def __init__(self, registry: Mapping[str, Any]) -> None:
        self.registry = registry
        self.passes = 0

    def __getitem__(self, env_id: str) -> Any:
        return self.registry[env_id]

    def __contains__(self, env_id: object) -> bool:
        return env_id in self.registry

    def __len__(self) -> int:
        return len(self.registry)

    def __iter__(self) -> Iterator[str]:
        self.passes += 1
        return iter(self.registry)


@pytest.fixture(autouse=True)
def _fresh_resolution() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CountingRegistry:
    counting = CountingRegistry(gym.registry)
    monkeypatch.setattr(gym, "registry", counting)
    return counting


def test_one_registry_pass_per_process(registry: CountingRegistry) -> None:
    for env_id in ("ALE/Pong-v5", "MinAtar/Breakout-v1", "CartPole-v1"):
        check_env_id(env_id)
        env_family(env_id)
        is_atari_id(env_id)
    atari_rom("ALE/Pong-v5")
    # ids that are not registered (a ROM name, a misspelt version, a typo) share one index of the registry
    assert atari_rom("pong") == "pong"
    for env_id in ("ALE/Pong-v9", "CartPol-v1"):
        with pytest.raises(ValueError):
            check_env_id(env_id)
    assert registry.passes <= 1


def test_registered_ids_need_no_pass(registry: CountingRegistry) -> None:
    for env_id in ("ALE/Pong-v5", "MinAtar/Breakout-v1", "CartPole-v1"):
        check_env_id(env_id)
        env_family(env_id)
    assert atari_rom("ALE/Pong-v5") == "pong"
    assert registry.passes == 0


@pytest.mark.parametrize(
    ("env_id", "family", "rom"),
    [
        ("ALE/Pong-v5", "atari", "pong"),
        ("PongNoFrameskip-v4", "atari", "pong"),
        ("ALE/MsPacman-v5", "atari", "ms_pacman"),
        ("breakout", "atari", "breakout"),
        ("MinAtar/Breakout-v1", "minatar", None),
        ("MinAtar/SpaceInvaders-v0", "minatar", None),
        ("CartPole-v1", None, None),
    ],
)
def test_families(env_id: str, family: str | None, rom: str | None) -> None:
    resolved = resolve_env_id(env_id)
    if family == "atari" and env_id != rom and env_id not in gym.registry:
        pytest.skip(f"{env_id} is not registered by this ale-py")
    assert (resolved.family, resolved.rom, resolved.exists) == (family, rom, True)
    assert env_family(env_id) == family
    assert is_atari_id(env_id) == (family == "atari")
    if family == "atari":
        assert atari_rom(env_id) == rom


def test_a_misspelt_version_is_atari_but_does_not_exist() -> None:
    resolved = resolve_env_id("ALE/Pong-v9")
    assert (resolved.family, resolved.rom, resolved.exists) == ("atari", "pong", False)
    assert is_atari_id("ALE/Pong-v9")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_env_id("CartPol-v1"), "unknown env id 'CartPol-v1'; closest: CartPole-v1"),
        (lambda: check_env_id("NoSuchEnv-v0"), r"^unknown env id 'NoSuchEnv-v0'$"),
        (lambda: check_env_id("ALE/Pong-v9"), "Atari env id 'ALE/Pong-v9'; the ids for 'pong' are: ALE/Pong-v5"),
        (lambda: check_env_id("MinAtar/Breakout-v3"), "unknown MinAtar env id 'MinAtar/Breakout-v3'; valid: MinAtar/"),
        (lambda: atari_rom("CartPole-v1"), r"unknown Atari game 'CartPole-v1' \(\d+ games are installed\)"),
        (lambda: atari_rom("ALE/Breakot-v5"), "closest games: breakout"),
    ],
)
def test_unknown_ids_name_the_closest(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_registered_id_is_decided_by_its_spec() -> None:
    # named like an ALE game, but registered by someone else: a gymnasium env, not a misspelt Atari id
    env_id = "Breakout-v42"
    assert resolve_env_id(env_id).family == "atari" and not resolve_env_id(env_id).exists
    gym.register(env_id, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    try:
        resolved = resolve_env_id(env_id)  # the registry grew: resolved anew
        assert (resolved.family, resolved.rom, resolved.exists) == (None, None, True)
        check_env_id(env_id)
    finally:
        del gym.registry[env_id]


@pytest.mark.parametrize("make", [make_env, make_atari_vec_env])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vec_env": "thread"}, r"vec_env must be one of \('dummy', 'subproc', 'ale'\), got 'thread'"),
        ({"n_envs": 0}, "n_envs must be >= 1, got 0"),
    ],
)
def test_vec_env_checks(make: Callable[..., Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make("ALE/Pong-v5", **kwargs)
