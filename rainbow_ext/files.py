"""Files that are whole or absent: a rename after the bytes are on disk."""

from __future__ import annotations

import os
from pathlib import Path


def replace_durably(staged: str | Path, final: str | Path) -> None:
    """Rename ``staged`` over ``final`` after its bytes are on disk, and the rename too: a crash keeps
    the old file or the new one, whole."""
    with open(staged, "rb") as written:
        os.fsync(written.fileno())
    os.replace(staged, final)
    directory = os.open(os.path.dirname(os.path.abspath(final)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
