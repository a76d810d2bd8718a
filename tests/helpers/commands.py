"""Running the commands in tests, and what their runs share."""

import os
import subprocess
import sys
from pathlib import Path

# Small CartPole runs: the config's schedule, with fewer gradient steps per collection.
FAST = ["train_freq:16", "gradient_steps:2", "learning_starts:200"]


def run_command(module: str, *argv: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``python -m module argv``; ``env`` entries set (None: remove) environment variables."""
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={key: value for key, value in environ.items() if value is not None},
    )


def write_config(tmp_path: Path, entry: str) -> str:
    path = tmp_path / "conf.yml"
    path.write_text(f"CartPole-v1:\n{entry}")
    return str(path)
