"""Progress retention (``[log] keep_progress_days``) and the log's facts in
``factory status``: real logs, a real second writer, the real engine."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.log_upkeep import PRUNED_THROUGH
from factory_tui.config import config_from_dict
from factory_tui.errors import ConfigError
from factory_tui.model import Action, NewTask, State
from tests.engine_helpers import configure, environment, factory

DAY = 86400.0
NOW = 1_790_000_000.0


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def _rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, kind, note FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def prune_pass(log: ExecutionLog, before: float, window: int) -> list:
    """One pass of retention as the engine makes it: its steps."""
    steps = []
    after = None
    while True:
        step = log.prune_progress(before, after=after, window=window)
        steps.append(step)
        if step.done:
            return steps
        after = step.last_id


def _history(log: ExecutionLog, clock: Clock) -> None:
    """Forty days ago a run with progress, a note, QA and the operator's
    approval; a day ago another run's progress; mail and a base note."""
    clock.at = NOW - 40 * DAY
    log.add_tasks([NewTask(title="old"), NewTask(title="new")], actor="op")
    claim = log.claim_next("engine")
    assert claim is not None
    for n in range(25):
        clock.at += 1
        log.add_progress(claim.token, f"old line {n}")
    log.add_note("T-1", "an agent's note", actor="agent")
    log.add_note(None, "a note on the base", actor="op")
    log.finish(claim.token, State.REVIEW, note="agent finished", data={"run": "runs/T-1/1", "cost_usd": 1.0})
    log.apply("T-1", Action.APPROVE, actor="op")
    clock.at = NOW - DAY
    claim = log.claim_next("engine")
    assert claim is not None
    for n in range(5):
        clock.at += 1
        log.add_progress(claim.token, f"new line {n}")


def test_retention_deletes_old_progress_lines_only_in_small_batches(base: FactoryBase) -> None:
    clock = Clock(NOW)
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        _history(log, clock)
        before = _rows(base.log_path)
        usage = log.usage(per_task=False, since=0).total
        steps = prune_pass(log, NOW - 30 * DAY, window=7)
        # Batches of seven ids: several of them, each deleting what it saw.
        assert len(steps) > 3 and sum(s.deleted for s in steps) == 25
        after = _rows(base.log_path)
        assert after == [row for row in before if not (row[1] == "progress" and row[2].startswith("old"))]
        # The run's cost, its end and every other event are still there.
        assert log.usage(per_task=False, since=0).total == usage
        assert log.get_task("T-2").progress == "new line 4"
        # The next pass starts where this one stopped, and finds nothing new.
        mark = int(log._conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_THROUGH,)).fetchone()[0])
        assert 0 < mark < max(row[0] for row in after)
        assert [step.deleted for step in prune_pass(log, NOW - 30 * DAY, window=2000)] == [0]
        # A month on, the newer lines are old too.
        clock.at = NOW + 30 * DAY
        prune_pass(log, clock.at - 30 * DAY, window=2000)
        assert [row for row in _rows(base.log_path) if row[1] == "progress"] == []
        assert len(_rows(base.log_path)) == len(after) - 5


def test_a_line_dated_ahead_by_a_wrong_clock_does_not_stop_retention(log: ExecutionLog) -> None:
    clock = Clock(NOW - 40 * DAY)
    log._clock = clock
    log.add_task(NewTask(title="a"), actor="t")
    claim = log.claim_next("w")
    assert claim is not None
    clock.at = NOW + 365 * DAY  # the machine's clock a year ahead, for a moment
    log.add_progress(claim.token, "from the future")
    clock.at = NOW - 39 * DAY
    for n in range(20):
        clock.at += 1
        log.add_progress(claim.token, f"old {n}")
        log.add_note("T-1", f"note {n}", actor="agent")
    for _ in range(2):  # passes as the engine makes them, one after another
        prune_pass(log, NOW - 30 * DAY, window=3)
    progress = [e.note for e in log.events(kinds=["progress"])]
    assert progress == ["from the future"]
    assert len(log.events(kinds=["note"])) == 20


def test_nothing_but_progress_can_be_deleted(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="t")
    claim = log.claim_next("w")
    assert claim is not None
    log.add_progress(claim.token, "line")
    conn = sqlite3.connect(log.path, isolation_level=None)
    try:
        for kind in ("created", "claimed"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute("DELETE FROM events WHERE kind = ?", (kind,))
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET note = 'x' WHERE kind = 'progress'")
        conn.execute("DELETE FROM events WHERE kind = 'progress'")
    finally:
        conn.close()
    assert [e.kind for e in log.events()] == ["created", "claimed"]


WRITER = r"""
import sys, time
from pathlib import Path
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import LogBusy
log = ExecutionLog.open(Path(sys.argv[1]), busy_timeout_ms=int(sys.argv[3]))
stop = Path(sys.argv[2])
written = refused = 0
print("ready", flush=True)
while not stop.exists():
    try:
        log.add_note("T-1", f"beside retention {written}", actor="writer")
        written += 1
    except LogBusy:
        refused += 1
    time.sleep(0.001)
print(written, refused, flush=True)
"""


def test_a_writer_beside_retention_is_never_refused(base: FactoryBase, tmp_path: Path) -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="a"), actor="t")
    conn = sqlite3.connect(base.log_path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (at, task_id, kind, actor, note) VALUES (?, 'T-1', 'progress', 'engine', ?)",
        ((NOW - 40 * DAY + n, f"⚙ Bash: pytest -q tests/test_{n}.py") for n in range(60_000)),
    )
    conn.execute("COMMIT")
    conn.close()
    stop = tmp_path / "stop"
    # A writer whose busy timeout is a tenth of the default: a batch that
    # held the lock longer would turn it away.
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(base.log_path), str(stop), "500"],
                              stdout=subprocess.PIPE, text=True, env=environment())
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        with ExecutionLog.open(base.log_path) as log:
            batches = len(prune_pass(log, time.time(), window=2000))
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    written, refused = map(int, out.split())
    assert batches >= 30
    assert refused == 0 and written > 0
    kinds = dict(sqlite3.connect(base.log_path).execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    assert kinds == {"created": 1, "note": written}


def test_the_engine_applies_keep_progress_days_and_status_shows_the_log(base: FactoryBase) -> None:
    configure(base, extra="\n[log]\nkeep_progress_days = 30\n")
    clock = Clock(NOW)
    real = time.time()
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        clock.at = real - 45 * DAY
        log.add_task(NewTask(title="ran long ago"), actor="op")
        claim = log.claim_next("engine:gone")
        assert claim is not None
        for n in range(3000):
            clock.at += 1
            log.add_progress(claim.token, f"line {n}")
        log.finish(claim.token, State.FAILED, note="gave up")
        clock.at = real - 60
        log.add_note("T-1", "recent", actor="op")
    shown = json.loads(factory(base, "status", "--json").stdout)["log"]
    assert shown["events"] == 3000 + 4 and shown["keep_progress_days"] == 30
    assert shown["bytes"] > 0 and shown["oldest_event_at"] == pytest.approx(real - 45 * DAY)
    result = factory(base, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "deleted 3,000 progress lines older than 30 days" in result.stdout + result.stderr
    shown = json.loads(factory(base, "status", "--json").stdout)["log"]
    assert shown["events"] == 4
    # The pages the lines took are free for new events before the file grows.
    assert shown["free_bytes"] > 0
    text = factory(base, "status").stdout
    assert "log: " in text and "4 events since" in text and "(progress kept 30 days)" in text


@pytest.mark.parametrize("value", ["0", "-1", '"30"', "true", "inf"])
def test_keep_progress_days_must_be_a_number_of_days(value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[log\] keep_progress_days must be a number of days above 0"):
        config_from_dict({"log": {"keep_progress_days": float(value) if value in ("inf",) else json.loads(value)}})


def test_log_takes_only_known_keys() -> None:
    with pytest.raises(ConfigError, match=r"\[log\]"):
        config_from_dict({"log": {"keep_progress": 3}})
    assert config_from_dict({"log": {"keep_progress_days": 0.5}}).log.keep_progress_days == 0.5
    assert config_from_dict({}).log.keep_progress_days is None
