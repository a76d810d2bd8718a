"""The Optuna layer that ``tune`` and ``ablate`` share: the storage (SQLite by default, a file and no server;
PostgreSQL, or any RDB URL, for workers on several machines, with heartbeats so that the trial of a worker
that died is failed and run again), creating or joining a study, recording a trial's error, and reporting
the trials of a call that failed."""

from __future__ import annotations

import datetime
import socket
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rainbow_ext.zoo.errors import EXIT_FAILED

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


def storage_url(storage: str | None, folder: Path) -> str:
    """``storage``, or a SQLite file ``study.db`` in the study's folder."""
    return storage or f"sqlite:///{(folder / 'study.db').resolve()}"


def create_or_join(
    name: str, url: str, pruner: Any = None, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS
) -> tuple[Any, bool]:
    """The study ``name`` in ``url`` (maximizing), and whether this call created it: the storage's unique
    study name decides between workers that start together."""
    import optuna

    storage = open_storage(url, heartbeat, grace)
    try:
        study = optuna.create_study(study_name=name, storage=storage, pruner=pruner, direction="maximize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
        created = False
    except ValueError as error:
        raise ValueError(f"study {name!r}: {error}") from error
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {name!r} in {url} minimizes; this command maximizes the return")
    return study, created


def recording_errors(trial: Any, value: Callable[[], float]) -> float:
    """``value()``, with an error recorded on the trial (user attribute ``error``) before the trial fails;
    a pruned trial and Ctrl-C pass through as they are."""
    import optuna

    try:
        return value()
    except (optuna.TrialPruned, KeyboardInterrupt):
        raise
    except Exception as error:
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        raise


def failed_since(study: Any, started: datetime.datetime, this_host: bool = False) -> list[Any]:
    """The trials that failed after ``started`` (on this machine only, with ``this_host``)."""
    host = socket.gethostname()
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL"
        and t.datetime_start is not None
        and t.datetime_start >= started
        and (not this_host or t.user_attrs.get("host") == host)
    ]


def report_failures(failed: list[Any], what: str) -> int:
    """One line with the count and the first error of ``failed`` trials (``what``: "trial(s)", "run(s)");
    the exit status: EXIT_FAILED when there are some, else 0."""
    if not failed:
        return 0
    first = failed[0].user_attrs.get("error", "no error recorded")
    print(f"error: {len(failed)} {what} failed; the first: {first}", file=sys.stderr)
    return EXIT_FAILED
