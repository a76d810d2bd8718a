"""A non-editable install: the wheel ships the configs and search spaces inside the package, and the
commands run from another folder with nothing of the checkout on the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves build/ behind, whose stale modules would reach later wheels
    source = out / "source"
    skip = shutil.ignore_patterns(".*", "build", "logs", "*.egg-info", "__pycache__", "benchmarks", "tests")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("rainbow_ext-*.whl")
    return path


def test_the_wheel_ships_configs_and_search_spaces(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rainbow_ext/zoo_configs/{name}.yml" for name in ("rainbow", "qrdqn", "rainbow_der")}
    spaces = {f"rainbow_ext/tuning/{name}.py" for name in ("rainbow", "qrdqn")}
    shipped = {"rainbow_ext/data/atari_human_random.csv", "rainbow_ext/zoo/experiment.py", "rainbow_ext/zoo/resume.py"}
    assert configs | spaces | shipped <= names
    assert not any(name.startswith(("zoo_configs/", "tuning/", "tests/")) for name in names)


def test_an_installed_wheel_trains_and_tunes_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    # the installed copy first; torch, SB3 and the rest from this environment
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *argv], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(
        "-c", "import rainbow_ext.zoo.config as c, rainbow_ext.zoo.tuning as t; print(c.CONFIG_DIR, t.TUNING_DIR)"
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(site / "rainbow_ext" / "zoo_configs"), str(site / "rainbow_ext" / "tuning")]
    trained = run("-m", "rainbow_ext.train", "--algo", "rainbow", "-n", "3000", "--no-progress-bar", "--verbose", "0")
    assert trained.returncode == 0, trained.stderr
    assert "rainbow.yml['CartPole-v1']" in trained.stdout and (work / "logs" / "rainbow" / "CartPole-v1_1").is_dir()
    tuned = run("-m", "rainbow_ext.tune", "--help")
    assert tuned.returncode == 0 and "--n-trials" in tuned.stdout
