from collections.abc import Iterator

import pytest
import torch as th
from stable_baselines3.common import base_class, buffers, save_util

# Tiny networks: one thread is fastest and keeps timings independent of the machine's core count.
th.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="device that models built with device='auto' (every test's default) run on, e.g. cuda",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped without one")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if th.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> th.device:
    """The device of the run (``--device``), for tensors a test builds beside a model."""
    name = pytestconfig.getoption("--device")
    resolved = th.device(name)
    if resolved.type == "cuda" and not th.cuda.is_available():
        raise pytest.UsageError(f"--device {name}: no CUDA device here")
    return resolved


@pytest.fixture(autouse=True)
def _auto_device(device: th.device, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SB3 resolves ``device='auto'`` to CUDA whenever it is there; the suite runs on ``--device``."""
    original = base_class.get_device
    run_device = device

    def get_device(device: th.device | str = "auto") -> th.device:  # SB3's signature
        return original(run_device if device == "auto" else device)

    for module in (base_class, buffers, save_util):
        monkeypatch.setattr(module, "get_device", get_device)
    yield
