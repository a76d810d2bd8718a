"""Ctrl-C while a command starts: ``python -m rainbow_ext.train`` (or ``enjoy``, ``tune``, ``ablate``)
spends a second or two importing torch and SB3 before its ``main`` runs. A Ctrl-C then exits with
status 130 and one line, as it does later, instead of a traceback from deep inside an import.

Nothing has been written at that point, so the process exits at once. Each command installs it as its
first statement (``import rainbow_ext`` loads nothing heavy and changes no handler); only a command run
with ``-m`` is affected: a program or a test that imports a command's module keeps Python's own handler.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

COMMANDS = frozenset(f"rainbow_ext.{name}" for name in ("train", "enjoy", "tune", "ablate"))
EXIT_INTERRUPTED = 130


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def running_a_command(argv: list[str]) -> bool:
    """Whether ``argv`` (the interpreter's, ``sys.orig_argv``) starts ``python [options] -m
    rainbow_ext.<command>``. The interpreter's own options end at ``-m``, ``-c`` or a script."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) in COMMANDS
        if arg.startswith("-m"):
            return arg[2:] in COMMANDS
        if arg in ("-X", "-W"):  # options that take the next argument
            next(args, None)
        elif not arg.startswith("-") or arg.startswith("-c") or arg == "-":
            return False
    return False


def exit_quietly_while_starting() -> None:
    """Until :func:`started`, Ctrl-C exits with 130 (each command calls this before its other imports)."""
    if running_a_command(sys.orig_argv) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_interrupted)


def started() -> None:
    """The command's ``main`` runs: Ctrl-C raises KeyboardInterrupt again, which the command handles."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is _exit_interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
