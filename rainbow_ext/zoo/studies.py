"""Optuna storage shared by the ablation and tuning commands: SQLite by default (a file, no server),
PostgreSQL (or any RDB URL) for workers on several machines, with heartbeats so that the trial of a
worker that died is failed and run again."""

from __future__ import annotations

import time
import warnings
from typing import Any

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS) -> Any:
    """An RDBStorage for ``url``. A malformed URL, or a server that cannot be reached within 10 s, is a
    ValueError at once; two processes creating the tables at once are retried."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                    # a trial whose heartbeat stopped (its machine died) is failed and enqueued again
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
            racing = isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e) or "locked" in str(e)
            if not racing:  # e.g. a server that cannot be reached: say so at once
                raise ValueError(f"cannot open storage {url!r}: {e.orig}") from e
            # two processes created the storage's tables at once; the other one finished: open again
            time.sleep(0.5 * (attempt + 1))
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as e:
            raise ValueError(f"cannot open storage {url!r}: {e}") from e
    raise ValueError(f"cannot open storage {url!r}: its tables could not be created")
