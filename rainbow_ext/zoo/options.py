"""How a run is trained and recorded besides its config: the train command's flags, as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainOptions:
    """How a run is trained and recorded, besides its config (the train command's flags)."""

    log_folder: Path = Path("logs")
    run_dir: Path | None = None  # a new or empty folder for the run instead of <algo>/<env>_<n>
    trained_agent: Path | None = None  # -i: continue this model
    device: str = "auto"
    verbose: int = 1
    eval_freq: int = 10_000
    eval_episodes: int = 5
    n_eval_envs: int = 1
    save_freq: int = -1
    checkpoint_freq: int = 0  # a resumable checkpoint (runs.Checkpointer) every N steps; 0: none
    save_replay_buffer: bool = False
    tensorboard_log: str | None = None
    progress_bar: bool = True
    track: bool = False
    wandb_project_name: str = "rainbow_ext"
    wandb_entity: str | None = None
    command: str = ""  # the command line, appended to the run's command.txt
    args: dict[str, Any] = field(default_factory=dict)  # the command's arguments, written to args.yml
