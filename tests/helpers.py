"""Small checks shared by the test modules: a refused command's one line,
and the log's whole content read with plain sqlite3 (to show that a refused
command wrote nothing)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

LOG_TABLES = ("tasks", "task_bodies", "deps", "events", "meta")


def assert_one_line_error(exit_code: int, stdout: str, stderr: str, *, code: int = 1) -> str:
    """Exit ``code``, nothing on stdout, exactly one ``factory: …`` line on
    stderr and no traceback anywhere; returns the line."""
    assert "Traceback" not in stdout + stderr, stderr
    assert exit_code == code, (exit_code, stdout, stderr)
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("factory: "), stderr
    return lines[0]


def log_tables(path: Path, tables: tuple[str, ...] = LOG_TABLES) -> dict:
    """Every row of the log's tables, in order."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in tables
        }
    finally:
        conn.close()
