"""inotify for one folder (backends/file_events.py), with real files and a
real second process: the descriptor turns readable when a named file
changes, the others are read and left aside, and a folder that goes away
ends the watch. The engine's noticing of new tasks is in test_engine.py."""

from __future__ import annotations

import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.file_events import FolderEvents

DEADLINE = 10.0


@pytest.fixture
def watched(tmp_path: Path):
    events = FolderEvents.open(tmp_path, ["log.db", "log.db-wal"])
    if events is None:
        pytest.skip("no inotify here")
    yield events
    events.close()


def readable(events: FolderEvents, timeout: float = DEADLINE) -> bool:
    ready, _, _ = select.select([events.fileno()], [], [], timeout)
    return bool(ready)


def test_nothing_is_waiting_before_anything_changed(watched: FolderEvents) -> None:
    assert watched.drain() is False


def test_a_named_file_written_by_another_process_is_told(tmp_path: Path, watched: FolderEvents) -> None:
    # Another process commits to a WAL-mode database in the folder.
    subprocess.run([sys.executable, "-c", (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('pragma journal_mode=wal');"
        "db.execute('create table t (x)'); db.execute('insert into t values (1)'); db.commit()"
    ), str(tmp_path / "log.db")], check=True)
    assert readable(watched)
    assert watched.drain() is True
    assert watched.drain() is False  # all of it was read


def test_other_files_in_the_folder_are_read_and_left_aside(tmp_path: Path, watched: FolderEvents) -> None:
    (tmp_path / "engine.log").write_text("a line\n")
    (tmp_path / "runs").mkdir()
    assert readable(watched)
    assert watched.drain() is False
    # Then a named one, renamed into place, is told.
    (tmp_path / "staged").write_text("x")
    (tmp_path / "staged").rename(tmp_path / "log.db")
    assert readable(watched)
    assert watched.drain() is True


def test_a_write_to_an_open_database_is_told_each_time(tmp_path: Path, watched: FolderEvents) -> None:
    db = sqlite3.connect(tmp_path / "log.db")
    db.execute("pragma journal_mode=wal")
    db.execute("create table t (x)")
    db.commit()
    assert readable(watched) and watched.drain() is True
    db.execute("insert into t values (2)")
    db.commit()
    assert readable(watched) and watched.drain() is True
    db.close()


def test_a_folder_that_goes_away_ends_the_watch(tmp_path: Path) -> None:
    folder = tmp_path / "factory"
    folder.mkdir()
    events = FolderEvents.open(folder, ["log.db"])
    if events is None:
        pytest.skip("no inotify here")
    try:
        folder.rmdir()
        assert readable(events)
        assert events.drain() is True and events.gone
    finally:
        events.close()


def test_a_folder_that_is_not_there_cannot_be_watched(tmp_path: Path) -> None:
    assert FolderEvents.open(tmp_path / "missing", ["log.db"]) is None
