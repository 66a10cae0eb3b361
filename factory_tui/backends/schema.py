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

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _v1(conn: sqlite3.Connection) -> None:
    # sqlite-utils nests its own work in a savepoint, so these statements are
    # part of the migration's one transaction.
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db["tasks"].create(
        {
            "seq": int,
            "id": str,
            "title": str,
            "body": str,
            "state": str,
            "priority": int,
            "attempts": int,
            "profile": str,
            "source": str,
            "feedback": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="seq",
        not_null={"id", "title", "body", "state", "priority", "attempts"},
        defaults={"body": "", "priority": 0, "attempts": 0},
        strict=True,
    )
    db["tasks"].create_index(["id"], unique=True)
    # The claim statement walks queued tasks in this order.
    db.execute(
        "CREATE INDEX idx_tasks_ready ON tasks(state, priority DESC, seq)"
    )
    db["deps"].create(
        {"task_id": str, "depends_on": str},
        pk=("task_id", "depends_on"),
        foreign_keys=[("task_id", "tasks", "id"), ("depends_on", "tasks", "id")],
        strict=True,
    )
    db["deps"].create_index(["depends_on"])
    db["leases"].create(
        {
            "token": str,
            "task_id": str,
            "worker": str,
            "claimed_at": float,
            "expires_at": float,
            "released_at": float,
            "outcome": str,
        },
        pk="token",
        not_null={"task_id", "worker", "claimed_at", "expires_at"},
        foreign_keys=[("task_id", "tasks", "id")],
        strict=True,
    )
    db["leases"].create_index(["task_id"])
    db.execute(
        "CREATE INDEX idx_leases_live ON leases(expires_at) WHERE released_at IS NULL"
    )
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
    db["events"].create_index(["task_id", "id"])
    db["events"].create_index(["kind", "id"])
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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
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
