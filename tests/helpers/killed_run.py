"""``python tests/helpers/killed_run.py KIND N LOG -- <train arguments>``: ``python -m rainbow_ext.train`` that
SIGKILLs itself at the N-th rename onto a file named KIND (``rl_model_<steps>_steps.zip`` stands for
SB3's numbered checkpoints). Each rename is logged to LOG first. Every file a run writes whole reaches
its name through one rename (``os.replace`` or ``os.rename``), so this kills a run in the middle of
each kind of write: its bytes are staged, the file it replaces is still the previous one."""

import os
import runpy
import signal
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any


def kind(destination: Any) -> str:
    name = os.path.basename(os.fspath(destination))
    return "rl_model_<steps>_steps.zip" if name.startswith("rl_model_") else name


def killing(rename: Callable[..., None], target: str, nth: int, log: str, counts: Counter) -> Callable[..., None]:
    def wrapped(source: Any, destination: Any, *args: Any, **kwargs: Any) -> None:
        counts[kind(destination)] += 1
        with open(log, "a") as file:
            file.write(f"{kind(destination)}\t{os.fspath(destination)}\n")
        if kind(destination) == target and counts[target] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        rename(source, destination, *args, **kwargs)

    return wrapped


if __name__ == "__main__":
    target, nth, log, separator, *train_args = sys.argv[1:]
    assert separator == "--", "usage: killed_run.py KIND N LOG -- <train arguments>"
    counts: Counter = Counter()
    os.replace = killing(os.replace, target, int(nth), log, counts)
    os.rename = killing(os.rename, target, int(nth), log, counts)
    sys.argv = ["rainbow_ext.train", *train_args]
    runpy.run_module("rainbow_ext.train", run_name="__main__", alter_sys=True)
