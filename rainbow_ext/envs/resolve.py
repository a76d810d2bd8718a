"""What an env id names, decided once: its family, its ALE ROM, whether it exists.

:func:`resolve_env_id` is the one place that reads ``gym.registry`` for these decisions. A registered
id is decided from its spec (ale-py's entry point and its ``game``); only ids that are not registered
(ROM names, misspelt versions, unknown ids) need :func:`registry_index`, built in one pass over the
registry. Both are cached until the registry grows.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

EnvFamily = Literal["atari", "minatar"]

MINATAR_PREFIX = "MinAtar/"
_MINATAR_REGISTERED = f"{MINATAR_PREFIX}Breakout-v1"  # one of the ids minatar.gym registers together


def register_ale() -> None:
    """Register the ``ALE/...`` and ``...-v4`` ids with gymnasium (ale-py ships the ROMs)."""
    try:
        import ale_py
    except ImportError as error:  # pragma: no cover - ale-py is a dependency of the atari extra
        raise ImportError('Atari needs ale-py: pip install "rainbow_ext[atari]"') from error
    gym.register_envs(ale_py)


def register_minatar() -> None:
    """Register the ``MinAtar/...`` ids with gymnasium (idempotent)."""
    if _MINATAR_REGISTERED in gym.registry:
        return
    try:
        import minatar.gym
    except ImportError as error:  # pragma: no cover - minatar is a dependency of the atari extra
        raise ImportError('MinAtar needs the minatar package: pip install "rainbow_ext[atari]"') from error
    minatar.gym.register_envs()


def ale_game(spec: EnvSpec) -> str | None:
    """The ROM name of a spec registered by ale-py, else None."""
    entry_point = spec.entry_point
    if isinstance(entry_point, str) and entry_point.startswith("ale_py") and "game" in spec.kwargs:
        return str(spec.kwargs["game"])
    return None


def game_key(name: str) -> str:
    """``"ALE/MsPacman-v5"``, ``"MsPacmanNoFrameskip-v4"``, ``"ms_pacman"`` -> ``"mspacman"``."""
    name = name.split("/")[-1].split("-v")[0].removesuffix("NoFrameskip").removesuffix("Deterministic")
    return name.replace("_", "").lower()


@dataclass(frozen=True)
class RegistryIndex:
    """``gym.registry`` read in one pass: every id, the ALE ids by ROM, the MinAtar ids."""

    ids: tuple[str, ...]
    atari_games: Mapping[str, tuple[str, ...]]  # ROM -> its ids, in registration order
    roms_by_key: Mapping[str, str]  # game_key(ROM) -> ROM
    minatar_ids: tuple[str, ...]  # sorted


@lru_cache(maxsize=1)
def _registry_index(size: int) -> RegistryIndex:
    """The index of a registry of ``size`` ids (the key: a registration since makes a new one)."""
    ids: list[str] = []
    games: dict[str, list[str]] = {}
    for env_id, spec in gym.registry.items():
        ids.append(env_id)
        rom = ale_game(spec)
        if rom is not None:
            games.setdefault(rom, []).append(env_id)
    minatar = tuple(sorted(env_id for env_id in ids if env_id.startswith(MINATAR_PREFIX)))
    roms_by_key = {game_key(rom): rom for rom in games}
    return RegistryIndex(tuple(ids), {rom: tuple(game) for rom, game in games.items()}, roms_by_key, minatar)


def registry_index() -> RegistryIndex:
    """The index of ``gym.registry`` as it is now (rebuilt only after it grew)."""
    return _registry_index(len(gym.registry))


@dataclass(frozen=True)
class EnvResolution:
    """What ``env_id`` names. ``error`` says why it cannot be made (naming the closest ids), else None."""

    env_id: str
    family: EnvFamily | None  # None: any other gymnasium id
    rom: str | None = None  # the ALE ROM of an Atari id, also of a misspelt version of one
    error: str | None = None
    missing_package: bool = False  # the error is the family's package not being installed

    @property
    def exists(self) -> bool:
        return self.error is None

    def check(self) -> None:
        """Raise the error of an id that cannot be made: ImportError for a missing package, else ValueError."""
        if self.error is not None:
            raise (ImportError if self.missing_package else ValueError)(self.error)


def resolve_env_id(env_id: str) -> EnvResolution:
    """The resolution of an env id or ALE ROM name, after registering the package of its family."""
    if env_id.startswith(MINATAR_PREFIX):
        try:
            register_minatar()
        except ImportError as error:
            return EnvResolution(env_id, "minatar", error=str(error), missing_package=True)
    else:
        with contextlib.suppress(ImportError):  # no ale-py: nothing is Atari
            register_ale()
    return _resolve(env_id, len(gym.registry))


def clear_cache() -> None:
    """Forget the resolutions and the registry index (they are also renewed when the registry grows)."""
    _resolve.cache_clear()
    _registry_index.cache_clear()


@lru_cache(maxsize=256)
def _resolve(env_id: str, registry_size: int) -> EnvResolution:
    if env_id.startswith(MINATAR_PREFIX):
        return _resolve_minatar(env_id)
    spec = gym.registry.get(env_id)
    if spec is not None:
        rom = ale_game(spec)
        return EnvResolution(env_id, "atari" if rom is not None else None, rom)
    return _resolve_unregistered(env_id, registry_index())


def _resolve_minatar(env_id: str) -> EnvResolution:
    if env_id in gym.registry:
        return EnvResolution(env_id, "minatar")
    return EnvResolution(env_id, "minatar", error=unknown_minatar_message(env_id))


def unknown_minatar_message(env_id: str) -> str:
    return f"unknown MinAtar env id {env_id!r}; valid: {', '.join(registry_index().minatar_ids)}"


def _resolve_unregistered(env_id: str, index: RegistryIndex) -> EnvResolution:
    """A ROM name, a misspelt id of an ALE game (named by the ids of that game), or an unknown id."""
    if env_id in index.atari_games:
        return EnvResolution(env_id, "atari", env_id)
    rom = index.roms_by_key.get(game_key(env_id))
    if rom is not None:
        ids = ", ".join(sorted(index.atari_games[rom]))
        return EnvResolution(env_id, "atari", rom, f"unknown Atari env id {env_id!r}; the ids for {rom!r} are: {ids}")
    close = difflib.get_close_matches(env_id, index.ids, n=5, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return EnvResolution(env_id, None, error=f"unknown env id {env_id!r}{hint}")


def unknown_atari_game_message(name: str) -> str:
    """For a name that is no ALE game: how many are installed, and the closest."""
    index = registry_index()
    by_key = index.roms_by_key
    close = difflib.get_close_matches(game_key(name), list(by_key), n=5, cutoff=0.6)
    hint = f"; closest games: {', '.join(by_key[key] for key in close)}" if close else ""
    return f"unknown Atari game {name!r} ({len(index.atari_games)} games are installed){hint}"


def atari_rom(env_id: str) -> str:
    """The ROM name (``"breakout"``) of an ALE gymnasium id or ROM name. An id that does not exist
    is a ValueError naming the ids that exist for that game, or the closest games."""
    register_ale()
    resolved = resolve_env_id(env_id)
    if resolved.family != "atari" or resolved.rom is None:
        raise ValueError(unknown_atari_game_message(env_id))
    resolved.check()
    return resolved.rom
