"""Opening the execution log: refusing files it must not touch, a busy
writer, and the schema brought current exactly once."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.backends.schema import SCHEMA_VERSION, open_connection
from factory_tui.errors import FactoryError, LogBusy, LogCorrupt, LogError, LogTooNew
from factory_tui.model import Action, NewTask, State


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def assert_one_line(error: FactoryError) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message


def a_real_log(path: Path, tasks: int = 40) -> None:
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks([NewTask(title=f"task {n}", body="x" * 300) for n in range(tasks)], actor="t")


def _random_bytes(size: int) -> bytes:
    data = random.Random(size).randbytes(size)
    assert not data.startswith(b"SQLite format 3")
    return data


CORRUPT = {
    "random bytes": lambda real: _random_bytes(8192),
    "a text file": lambda real: ("# notes\nthis is not a database\n" * 40).encode(),
    "an empty file": lambda real: b"",
    "two bytes": lambda real: b"hi",
    "truncated log": lambda real: real[: len(real) // 2],
    "just the header": lambda real: real[:100],
    "garbled first page": lambda real: real[:100] + _random_bytes(3996) + real[4096:],
}


@pytest.mark.parametrize("make", list(CORRUPT.values()), ids=list(CORRUPT))
def test_a_corrupt_log_is_refused_and_left_as_it_is(tmp_path: Path, make) -> None:
    real_path = tmp_path / "real.db"
    a_real_log(real_path)
    path = tmp_path / "log.db"
    path.write_bytes(make(real_path.read_bytes()))
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = fingerprint(path)
    files = siblings(path)
    for opener in (
        lambda: ExecutionLog.open(path),
        lambda: ExecutionLog.open(path, create=True),
        lambda: LogReader(path),
        lambda: open_connection(path),
    ):
        with pytest.raises(LogCorrupt) as caught:
            opener()
        assert_one_line(caught.value)
        assert str(path) in str(caught.value)
        assert "not a readable SQLite database" in str(caught.value)
    assert fingerprint(path) == before
    assert siblings(path) == files


def test_a_log_corrupt_past_its_first_page_fails_on_use_not_silently(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a_real_log(path, tasks=200)
    data = path.read_bytes()
    path.write_bytes(data[:8192] + _random_bytes(len(data) - 8192))
    before = fingerprint(path)
    try:
        log = ExecutionLog.open(path)
    except LogCorrupt as error:  # also acceptable: refused up front
        assert_one_line(error)
    else:
        with log, pytest.raises(LogCorrupt) as caught:
            log.list_tasks()
        assert_one_line(caught.value)
    assert fingerprint(path)[0] == before[0]


@pytest.mark.parametrize("wal", [False, True], ids=["rollback journal", "wal"])
def test_a_log_from_a_newer_factory_is_never_changed(tmp_path: Path, wal: bool) -> None:
    path = tmp_path / "log.db"
    a_real_log(path)
    conn = sqlite3.connect(path, isolation_level=None)
    if not wal:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = fingerprint(path)
    files = siblings(path)
    for opener in (
        lambda: ExecutionLog.open(path),
        lambda: ExecutionLog.open(path, create=True),
        lambda: LogReader(path),
    ):
        with pytest.raises(LogTooNew) as caught:
            opener()
        assert_one_line(caught.value)
        message = str(caught.value)
        assert f"version {SCHEMA_VERSION + 1}" in message
        assert "not changed" in message
    assert fingerprint(path) == before
    assert siblings(path) == files
    conn = sqlite3.connect(path)
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert mode == ("wal" if wal else "delete")


def test_a_missing_log_is_not_created_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with pytest.raises(LogError, match="factory init"):
        ExecutionLog.open(path)
    assert not path.exists()
    ExecutionLog.open(path, create=True).close()
    assert path.exists()


def test_a_held_write_lock_gives_log_busy_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks([NewTask(title="a"), NewTask(title="b")], actor="t")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE tasks SET title = 'renamed' WHERE seq = 1")
    try:
        with ExecutionLog.open(path, busy_timeout_ms=200) as log:
            for write in (
                lambda: log.apply("T-1", Action.HOLD, actor="o"),
                lambda: log.add_task(NewTask(title="c"), actor="o"),
                lambda: log.claim_next("w"),
                lambda: log.add_note(None, "hello", actor="o"),
                lambda: log.reap_expired(),
            ):
                with pytest.raises(LogBusy) as caught:
                    write()
                assert_one_line(caught.value)
                assert "locked" in str(caught.value)
            # Reads are not blocked by a writer (WAL), and see the last commit.
            assert [(t.title, t.state) for t in log.list_tasks()] == [
                ("a", State.QUEUED), ("b", State.QUEUED)]
            # The failed writes left no transaction open behind them.
            holder.execute("COMMIT")
            assert log.apply("T-1", Action.HOLD, actor="o").state is State.HELD
            assert log.add_task(NewTask(title="c"), actor="o").id == "T-3"
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    with ExecutionLog.open(path) as log:
        assert [(t.id, t.title, t.state) for t in log.list_tasks()] == [
            ("T-1", "renamed", State.HELD), ("T-2", "b", State.QUEUED), ("T-3", "c", State.QUEUED)]
        assert [e.kind for e in log.events()] == ["created", "created", "held", "created"]


def test_a_fresh_log_is_wal_with_synchronous_normal(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    conn = open_connection(path, create=True)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert not conn.in_transaction
    finally:
        conn.close()
    # WAL is a property of the file: a plain connection sees it too.
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_an_old_rollback_journal_log_is_switched_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a_real_log(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    with ExecutionLog.open(path) as log:
        assert len(log.list_tasks()) == 40
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def _schema(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with ExecutionLog.open(path, create=True) as log:
        log.add_task(NewTask(title="a"), actor="t")
    schema = _schema(path)
    assert {name for kind, name, *_ in schema if kind == "table"} >= {
        "tasks", "task_bodies", "deps", "events", "meta"}
    assert {name for kind, name, *_ in schema if kind == "trigger"} == {
        "events_append_only_update", "events_append_only_delete",
        # readiness: each task's count of blockers (schema 11)
        "deps_blockers_insert", "deps_blockers_delete", "deps_blockers_update", "tasks_blockers_done",
        # the runs' cost per quarter hour (schema 12)
        "events_usage"}
    for _ in range(2):
        with ExecutionLog.open(path) as log:
            assert [t.title for t in log.list_tasks()] == ["a"]
            assert len(log.events()) == 1
        assert _schema(path) == schema
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_a_migration_that_lost_the_race_does_nothing(tmp_path: Path) -> None:
    """A second opener that saw the old version before a first one migrated
    reads the version again under the write lock and leaves the log alone."""
    from factory_tui.backends.schema import _migrate

    path = tmp_path / "log.db"
    with ExecutionLog.open(path, create=True) as log:
        log.add_task(NewTask(title="a"), actor="t")
    schema = _schema(path)
    late = sqlite3.connect(path, isolation_level=None)
    try:
        _migrate(late)  # would fail with "table tasks already exists" if it ran _v1
        assert not late.in_transaction
        assert late.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        late.close()
    assert _schema(path) == schema
    with ExecutionLog.open(path) as log:
        assert [t.title for t in log.list_tasks()] == ["a"]
