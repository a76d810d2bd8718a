"""SB3's own DQN tests with ``stable_baselines3.DQN`` replaced by ``rainbow_ext.Rainbow`` at its defaults
(full Rainbow), the rest of each test as SB3 wrote it: the most direct check of "the same API".

SB3's tests ship in its source archive, not in the wheel. Fetch the ones of the installed version once:

    pip download --no-deps --no-binary :all: stable-baselines3==2.9.2 -d /tmp/sb3
    tar xzf /tmp/sb3/stable_baselines3-2.9.2.tar.gz -C /tmp/sb3
    python benchmarks/learning/sb3_dqn_tests.py /tmp/sb3/stable_baselines3-2.9.2/tests        # Rainbow in DQN's place
    python benchmarks/learning/sb3_dqn_tests.py /tmp/sb3/stable_baselines3-2.9.2/tests --sb3  # SB3's DQN (control)

The selection is every test that exercises DQN: parametrized with it, named after it, or building it
in its body. Test ids keep the name DQN in both runs, so the two reports line up. Extra arguments go to
pytest (``-k``, ``-x``, ``--junitxml=...``). The README lists the failures that are deliberate.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import pytest
import stable_baselines3
import stable_baselines3.dqn

OTHER_ALGOS = tuple(getattr(stable_baselines3, name) for name in ("A2C", "PPO", "SAC", "TD3", "DDPG"))
USES_DQN = re.compile(r"\bDQN\b")


class DQNSelection:
    """A pytest plugin: only the tests that exercise DQN, with ids that name it DQN whichever class runs."""

    def __init__(self, dqn_class: type, original: type) -> None:
        self.classes = (dqn_class, original)

    def pytest_make_parametrize_id(self, config: Any, val: Any, argname: str) -> str | None:
        return "DQN" if any(val is cls for cls in self.classes) else None

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        keep = [item for item in items if self.exercises_dqn(item)]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep

    def exercises_dqn(self, item: Any) -> bool:
        callspec = getattr(item, "callspec", None)
        params = list(callspec.params.values()) if callspec is not None else []
        if any(value is cls for value in params for cls in self.classes):
            return True
        if any(isinstance(value, type) and value in OTHER_ALGOS for value in params):
            return False  # parametrized over algorithms, and this case is another one
        if "dqn" in item.name.lower():
            return True
        try:
            source = inspect.getsource(item.function)
        except (AttributeError, OSError, TypeError):
            return False
        lines = [line for line in source.splitlines() if "import" not in line and not line.lstrip().startswith("#")]
        return bool(USES_DQN.search("\n".join(lines)))


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    tests, rest = argv[0], argv[1:]
    control = "--sb3" in rest
    rest = [arg for arg in rest if arg != "--sb3"]
    original = stable_baselines3.DQN
    if not control:  # before pytest imports the test modules, which import DQN from stable_baselines3
        from rainbow_ext import Rainbow

        stable_baselines3.DQN = stable_baselines3.dqn.DQN = Rainbow  # type: ignore[misc]
    plugin = DQNSelection(stable_baselines3.DQN, original)
    return int(pytest.main(["-p", "no:cacheprovider", "-rfE", "--tb=line", tests, *rest], plugins=[plugin]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
