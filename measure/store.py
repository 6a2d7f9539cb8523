"""The results store: every bench row of every run, appended to one SQLite file, never overwritten.

Rows are keyed by run, device fingerprint, engine, precision and noise condition. WAL journaling and a busy
timeout let several bench runs append at once; a damaged or locked file gives a StoreError that says what
to do.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path

from asr_engines.measure.results import BenchRow, row_from_record

DEFAULT_STORE = Path(os.environ.get("ASR_ENGINES_STORE", "results/store.sqlite"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    engine TEXT NOT NULL,
    precision TEXT NOT NULL,
    condition TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    created_at TEXT NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (run_id, device_id, engine, precision, condition)
)
"""


class StoreError(RuntimeError):
    """The store cannot be read or written; the message says why and what to do. `locked`: another process
    holds it (worth trying again), rather than a damaged file."""

    def __init__(self, message: str, locked: bool = False):
        super().__init__(message)
        self.locked = locked


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(str(path), timeout=timeout_s)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(SCHEMA)
    except sqlite3.DatabaseError as error:
        raise _explain(path, error) from None
    return connection


def _explain(path: Path, error: sqlite3.Error) -> StoreError:
    if "locked" in str(error) or "busy" in str(error):
        return StoreError(f"{path}: locked by another process for too long ({error}); retry when it is done", locked=True)
    return StoreError(f"{path}: not a readable results store ({error}); move it aside or choose another with --store")


def append_rows(rows: list[BenchRow], path: Path = DEFAULT_STORE, timeout_s: float = 5.0, retry_for_s: float = 60.0) -> None:
    """Add rows in one transaction. A row already stored (same key) is an error, never a silent overwrite.

    A store another process holds locked is tried again, waiting twice as long each time, for `retry_for_s`;
    then, or at once for a damaged file, StoreError says why."""
    deadline, wait = time.monotonic() + retry_for_s, 0.25
    while True:
        try:
            return _insert(rows, Path(path), timeout_s)
        except StoreError as error:
            if not error.locked or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(2 * wait, 8.0)


def _insert(rows: list[BenchRow], path: Path, timeout_s: float) -> None:
    connection = _connect(path, timeout_s)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(row.run_id, row.device_id, row.engine, str(row.precision), row.noise or "none", row.model, row.backend,
                  row.started_at, json.dumps(asdict(row))) for row in rows],
            )
    except sqlite3.IntegrityError as error:
        raise StoreError(f"{path}: a row with this run, device, engine, precision and condition is stored already ({error})") from None
    except sqlite3.DatabaseError as error:
        raise _explain(path, error) from None
    finally:
        connection.close()


def load_rows(path: Path = DEFAULT_STORE, timeout_s: float = 30.0) -> list[BenchRow]:
    """Every stored row, oldest first."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no results store here; run `asr-engines bench ... --store {path}` first")
    connection = _connect(path, timeout_s)
    try:
        records = connection.execute("SELECT row FROM results ORDER BY created_at, rowid").fetchall()
    except sqlite3.DatabaseError as error:
        raise _explain(path, error) from None
    finally:
        connection.close()
    return [row_from_record(json.loads(record)) for (record,) in records]
