"""Weights & Biases tracking through wandb's own SB3 integration, imported only when asked for.

Without an API key, or when wandb's server cannot be reached, runs go to wandb's offline mode (a later
``wandb sync <run folder>/wandb/offline-run-*`` uploads them) instead of failing or waiting on the
network. ``WANDB_MODE`` set in the environment wins.
"""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

WANDB_HOST = "https://api.wandb.ai"


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(os.environ.get("WANDB_BASE_URL", WANDB_HOST)).hostname) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def server_reachable(timeout: float = 3.0) -> bool:
    url = urlparse(os.environ.get("WANDB_BASE_URL", WANDB_HOST))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else online with a key and a reachable server, else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_api_key() and server_reachable() else "offline"


def start_run(
    config: dict[str, Any],
    run_dir: Path,
    project: str,
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
) -> tuple[Any, Any]:
    """``wandb.init`` with the resolved hyperparameters as the run config, TensorBoard synced; returns
    the run and wandb's ``WandbCallback`` for SB3."""
    import wandb
    from wandb.integration.sb3 import WandbCallback

    mode = wandb_mode()
    if os.environ.get("WANDB_MODE") == "":
        del os.environ["WANDB_MODE"]  # wandb itself rejects an empty mode
    run = wandb.init(
        project=project,
        entity=entity,
        group=group,
        tags=tags,
        name=name or run_dir.name,
        config=config,
        dir=str(run_dir),
        mode=mode,  # type: ignore[arg-type]
        sync_tensorboard=True,
        save_code=False,
        reinit="finish_previous",
    )
    if mode == "offline":
        print(f"wandb: offline run in {run.dir}; upload it later with `wandb sync {Path(run.dir).parent}`")
    return run, WandbCallback(verbose=0)
