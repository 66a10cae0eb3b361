"""The benchmarks' big base (benchmarks/big_base.py), built small: it makes
what it says, a real base that the product opens and works on, and the
cache gives it back without building it again."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.schema import SCHEMA_VERSION
from factory_tui.model import State

ROOT = Path(__file__).resolve().parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location("big_base", ROOT / "benchmarks" / "big_base.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_builder_makes_every_state_blocked_chains_events_and_worktrees(tmp_path):
    big_base = _builder()
    root = big_base.build_big_base(tmp_path / "big", tasks=400, events=5000, worktrees=8, quiet=True)
    base = FactoryBase(root)
    with ExecutionLog.open(base.log_path) as log:
        tasks = log.list_tasks(bodies=False)
        assert len(tasks) == 400
        assert {task.state for task in tasks} == set(State)
        queued = [task for task in tasks if task.state is State.QUEUED]
        blocked = [task for task in queued if task.blocked_by]
        # Most queued tasks wait behind others, at a higher priority than
        # the few that are ready.
        assert len(blocked) > len(queued) // 2
        assert len(blocked) < len(queued)
        assert max(t.priority for t in blocked) > max(t.priority for t in queued if not t.blocked_by)
        assert log.last_event_id() == 5000
        assert log.usage(per_task=False, since=0).total.runs > 0
    conn = sqlite3.connect(base.log_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        assert kinds["progress"] == max(kinds.values())
        assert {"created", "depends", "claimed", "finished", "checking", "qa", "passed", "failed",
                "requeued", "approved", "note", "held"} <= set(kinds)
        assert conn.execute("SELECT count(*) FROM events WHERE task_id IS NULL").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM landings").fetchone()[0] == kinds["approved"]
        assert conn.execute("SELECT count(*) FROM qa_runs").fetchone()[0] == kinds["qa"]
        # Ids follow time, as an appended log's do.
        times = [row[0] for row in conn.execute("SELECT at FROM events ORDER BY id")]
        assert times == sorted(times)
        with_worktrees = {
            f"T-{seq}" for (seq,) in conn.execute(
                "SELECT seq FROM tasks WHERE state IN ('running', 'checking', 'review', 'failed')")
        }
    finally:
        conn.close()
    listing = subprocess.run(["git", "-C", str(root), "worktree", "list", "--porcelain"],
                             capture_output=True, text=True, check=True).stdout
    branches = {line.removeprefix("branch refs/heads/factory/") for line in listing.splitlines()
                if line.startswith("branch refs/heads/factory/")}
    assert branches == with_worktrees and len(branches) == 8
    one = root / ".factory" / "worktrees" / sorted(branches)[0]
    status = subprocess.run(["git", "-C", str(one), "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == ""
    ahead = subprocess.run(["git", "-C", str(one), "rev-list", "--count", "main..HEAD"],
                           capture_output=True, text=True, check=True).stdout
    assert ahead.strip() == "1"


def test_the_cache_gives_the_base_back_without_building_it_again(tmp_path):
    big_base = _builder()
    first = big_base.cached_big_base(tasks=200, events=2000, worktrees=4, cache=tmp_path, quiet=True)
    marker = (first / ".complete").stat()
    again = big_base.cached_big_base(tasks=200, events=2000, worktrees=4, cache=tmp_path, quiet=True)
    assert again == first
    assert (again / ".complete").stat().st_ino == marker.st_ino
    other = big_base.cached_big_base(tasks=200, events=2500, worktrees=4, cache=tmp_path, quiet=True)
    assert other != first and (other / ".complete").exists()
