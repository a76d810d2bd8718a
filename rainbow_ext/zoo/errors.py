"""One path from bad input to exit statuses for every command: each checks its input before it writes
anything, and what that check raises is printed as ``error: <message>`` with exit status 2. Ctrl-C
exits with 130."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import gymnasium as gym

from rainbow_ext import startup

EXIT_FAILED = 1  # the input was good, the work failed (every run of a grid, say)
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """Bad input: reported with exit status 2."""


# What bad input raises on its way through configs, envs, storages and constructors: the library's own
# checks (ValueError, with UsageError and ConfigError), an env id gymnasium does not know, a space SB3 does
# not support, a file or folder that is missing or refused, an optional package that is not installed
# (wandb for --track, minatar). Anything else (a TypeError, an ImportError of a name) is a bug: its
# traceback is shown.
BAD_INPUT: tuple[type[BaseException], ...] = (
    ValueError,
    gym.error.Error,
    NotImplementedError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ModuleNotFoundError,
)


def bad_input(error: BaseException) -> int:
    """Report ``error`` (one of :data:`BAD_INPUT`, raised while checking a command's input)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def interruptible(main: Callable[..., int]) -> Callable[..., int]:
    """A command's ``main`` that exits with 130 on Ctrl-C at any moment, without a traceback."""

    @functools.wraps(main)
    def wrapped(*args: object, **kwargs: object) -> int:
        startup.started()
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    return wrapped
