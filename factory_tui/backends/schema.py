"""The execution log's schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. ``open_connection`` refuses a
file that is not SQLite or that a newer factory-tui wrote, before it changes a
single byte of it; an older file is migrated forward, one version per
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from factory_tui.errors import LogBusy, LogCorrupt, LogError, LogTooNew

SCHEMA_VERSION = 3
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _v1(conn: sqlite3.Connection) -> None:
    # sqlite-utils nests its own work in a savepoint, so these statements are
    # part of the migration's one transaction.
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    # A task's id is "T-" and its seq. Its lease lives on its row: live while
    # lease_token is set (lease_worker and lease_expires describe the latest
    # lease). The body lives apart, so that state changes rewrite small rows.
    db["tasks"].create(
        {
            "seq": int,
            "title": str,
            "state": str,
            "priority": int,
            "attempts": int,
            "profile": str,
            "source": str,
            "feedback": str,
            "created_at": float,
            "updated_at": float,
            "lease_token": str,
            "lease_worker": str,
            "lease_expires": float,
        },
        pk="seq",
        not_null={"title", "state", "priority", "attempts", "created_at", "updated_at"},
        defaults={"priority": 0, "attempts": 0},
        strict=True,
    )
    # The claim walks the queued tasks in this order; no other state needs
    # an index, and a partial one is written only while a task is queued.
    db.execute(
        "CREATE INDEX idx_tasks_ready ON tasks(priority DESC, seq) WHERE state = 'queued'"
    )
    db["task_bodies"].create(
        {"seq": int, "body": str},
        pk="seq",
        not_null={"body"},
        foreign_keys=[("seq", "tasks", "seq")],
        strict=True,
    )
    db["deps"].create(
        {"task": int, "depends_on": int},
        not_null={"task", "depends_on"},
        foreign_keys=[("task", "tasks", "seq"), ("depends_on", "tasks", "seq")],
        strict=True,
    )
    db["deps"].create_index(["task", "depends_on"], unique=True)
    db["deps"].create_index(["depends_on"])
    db["events"].create(
        {
            "id": int,
            "at": float,
            "task_id": str,
            "kind": str,
            "actor": str,
            "from_state": str,
            "to_state": str,
            "note": str,
            "data": str,
        },
        pk="id",
        not_null={"at", "kind", "actor"},
        strict=True,
    )
    # No secondary index: the history is appended in order and read by id.
    # One task's history (the task screen, `plan show`) is a scan in a
    # worker, a few milliseconds per 100,000 events; an index would cost every
    # transition a page write.
    # The event table is the history: nothing may rewrite it.
    db.execute(
        "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db["meta"].create({"key": str, "value": str}, pk="key", strict=True)


def _v2(conn: sqlite3.Connection) -> None:
    """The production line: when a task's current run started, and the last
    line of progress its agent reported (the Worktrees pane shows both)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db["tasks"].add_column("started_at", float)
    db["tasks"].add_column("progress", str)


def _v3(conn: sqlite3.Connection) -> None:
    """Identity: the hash of the current run's agent secret (an agent proves
    who it is with the secret; the log keeps only its sha256), and the commit
    a task's branch was made at (from then on the branch is this plan's own,
    so that a branch left by another plan is never taken over)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db["tasks"].add_column("run_secret", str)
    db["tasks"].add_column("branch_start", str)
    # No index: a secret names its task (``T-3:…``), so it is checked by
    # the task's key, and the claim writes no more pages than before.


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
assert len(MIGRATIONS) == SCHEMA_VERSION


def describe_sqlite_error(path: Path, error: sqlite3.Error) -> LogError:
    """Turn an sqlite3 error into the one line a user should read."""
    text = str(error)
    if isinstance(error, sqlite3.OperationalError) and (
        "locked" in text or "busy" in text
    ):
        return LogBusy(
            f"the log {path} is locked by another writer; try again in a moment"
        )
    if isinstance(error, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return LogCorrupt(f"the log {path} is not a readable SQLite database ({text})")
    return LogError(f"the log {path} cannot be used: {text}")


def _py_lower(text: object) -> object:
    return text.lower() if isinstance(text, str) else text


def open_connection(
    path: Path, *, create: bool = False, busy_timeout_ms: int | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL,
    ``synchronous=NORMAL``, a busy timeout, and the schema brought current."""
    path = Path(path)
    if not create and not path.exists():
        raise LogError(f"no execution log at {path} (run `factory init` first)")
    if busy_timeout_ms is None:
        busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
        )
    except sqlite3.Error as error:
        raise describe_sqlite_error(path, error) from None
    # SQLite's own lower() folds ASCII only; the log filter's SQL side must
    # fold case exactly as its Python side (str.lower) does.
    conn.create_function("py_lower", 1, _py_lower, deterministic=True)
    try:
        # Read before writing anything: a corrupt or newer file must be left
        # exactly as it is.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if version > SCHEMA_VERSION:
            raise LogTooNew(
                f"the log {path} has schema version {version}, but this "
                f"factory-tui reads up to {SCHEMA_VERSION}; upgrade factory-tui "
                "(the log was not changed)"
            )
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        if version < SCHEMA_VERSION:
            _migrate(conn)
    except sqlite3.Error as error:
        conn.close()
        raise describe_sqlite_error(path, error) from None
    except LogError:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have
            # migrated while we waited for it.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
