"""Reads that stay flat as the log grows: a task's events by an index, the
runs' cost from sums kept as runs end, `factory log` and `plan list`
streaming in constant memory. Real logs, the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog, LogReader, start_of_day
from factory_tui.model import STATE_ORDER, Action, NewTask, State
from factory_tui.text import dumps_json
from tests.engine_helpers import environment
from tests.test_cli import ok


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    """Each statement that reads the events table, with its query plan."""
    plans = []
    for sql in statements:
        if "FROM events" not in sql or not sql.lstrip().upper().startswith("SELECT"):
            continue
        plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        plans.append((sql, plan))
    return plans


def _traced(log: ExecutionLog, call) -> list[str]:
    statements: list[str] = []
    log._conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        log._conn.set_trace_callback(None)
    return statements


def test_a_tasks_events_are_read_by_the_index_on_events_by_task(log: ExecutionLog) -> None:
    first = log.add_task(NewTask(title="first"), actor="t")
    second = log.add_task(NewTask(title="second", after=(first.id,)), actor="t")
    claim = log.claim_next("w")
    assert claim is not None
    log.add_progress(claim.token, "working")
    log.finish(claim.token, State.FAILED, note="it broke", data={"run": "runs/T-1/1", "cost_usd": 0.5})
    log.add_note(None, "about the whole base", actor="op")
    reads = [
        lambda: log.events(task_id=second.id),
        # The prompt's look-ups: how a dependency's run ended, what ended
        # the task's own last run.
        lambda: log.events(task_id=first.id, kinds=["finished"], last=1),
        lambda: log.events(task_id=first.id, kinds=["claimed", "expired", "stopped"], last=2),
        lambda: list(log.event_pages(task_id=first.id)),
        lambda: list(log.event_pages(task_id=first.id, last=1)),
        lambda: log.failures([first.id]),
        lambda: log.usage(task_ids=[first.id]),
        lambda: log.run_totals(first.id),
    ]
    for read in reads:
        plans = _plans(log._conn, _traced(log, read))
        assert plans, "no read of the events was traced"
        for sql, plan in plans:
            if "task_id = " in sql or "task_id IN" in sql:
                assert "INDEX idx_events_task" in plan, (sql, plan)
    reader = LogReader(log.path)
    try:
        statements: list[str] = []
        reader._conn.set_trace_callback(statements.append)
        assert [e.kind for e in reader.task_history(first.id)][:2] == ["created", "claimed"]
        reader._conn.set_trace_callback(None)
        [(_, plan)] = _plans(reader._conn, statements)
        assert "INDEX idx_events_task" in plan
    finally:
        reader.close()


def _run_end_rows(count: int, seed: int, now: float) -> list[tuple]:
    """Run ends (and other events) over the last ten days, some with odd
    figures an agent could report."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        at = now - rng.uniform(0, 10 * 86400)
        kind = rng.choice(["finished", "failed", "checking", "progress", "note", "finished"])
        figures = {
            "run": f"runs/T-{n % 7 + 1}/1" if rng.random() < 0.9 else None,
            "cost_usd": rng.choice([round(rng.uniform(0, 3), 4), None, "a lot", 2]),
            "input_tokens": rng.choice([rng.randint(0, 10**6), None, 1.0, "x"]),
            "output_tokens": rng.randint(0, 10**5),
            "turns": rng.choice([rng.randint(1, 90), None]),
        }
        data = json.dumps({k: v for k, v in figures.items() if v is not None}) if rng.random() < 0.95 else None
        rows.append((at, f"T-{n % 7 + 1}", kind, "engine", None, None, "x", data))
    rows.sort()
    return rows


def _scanned_totals(path: Path, since: float) -> tuple:
    """What the runs cost, today and in all, straight from the events."""
    conn = sqlite3.connect(path)
    try:
        def one(extra: str, params: tuple) -> tuple:
            return conn.execute(
                "SELECT count(run), round(total(cost), 6), total(tin), total(tout), total(turns) FROM ("
                "SELECT json_extract(data, '$.run') AS run, CAST(json_extract(data, '$.cost_usd') AS REAL) AS cost, "
                "CAST(json_extract(data, '$.input_tokens') AS INTEGER) AS tin, "
                "CAST(json_extract(data, '$.output_tokens') AS INTEGER) AS tout, "
                "CAST(json_extract(data, '$.turns') AS INTEGER) AS turns FROM events "
                f"WHERE kind IN ('finished', 'failed', 'checking') AND data IS NOT NULL {extra}) WHERE run IS NOT NULL",
                params,
            ).fetchone()
        return one("AND at >= ?", (since,)), one("", ())
    finally:
        conn.close()


def _figures(totals) -> tuple:
    return (totals.runs, round(totals.cost_usd, 6), totals.input_tokens, totals.output_tokens, totals.turns)


def test_the_runs_cost_kept_as_they_end_equals_a_count_of_the_events(base: FactoryBase) -> None:
    now = 1_790_000_000.0
    with ExecutionLog.open(base.log_path, clock=lambda: now) as log:
        for n in range(7):
            log.add_task(NewTask(title=f"t{n}"), actor="t")
    conn = sqlite3.connect(base.log_path, isolation_level=None)
    try:
        # As any writer would: one insert at a time, each through the trigger.
        for row in _run_end_rows(600, seed=3, now=now):
            conn.execute(
                "INSERT INTO events (at, task_id, kind, actor, from_state, to_state, note, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
    finally:
        conn.close()
    with ExecutionLog.open(base.log_path, clock=lambda: now) as log:
        for since in (start_of_day(now), start_of_day(now) - 3 * 86400, now - 3600 * 5):
            usage = log.usage(per_task=False, since=since)
            today, total = _scanned_totals(base.log_path, since)
            assert (_figures(usage.today), _figures(usage.total)) == (today, total)
        # The per-task figures (a scan of the events) agree with the sums.
        per_task = log.usage(since=start_of_day(now))
        assert sum(t.runs for t in per_task.tasks.values()) == per_task.total.runs == usage.total.runs
        # Data that is not JSON (no writer of ours makes it) is not refused
        # by the sums' trigger, and counts as no run.
        log._conn.execute(
            "INSERT INTO events (at, task_id, kind, actor, data) VALUES (?, 'T-1', 'finished', 'x', '{not json')", (now,))
        assert log.usage(per_task=False, since=0).total.runs == usage.total.runs


def test_a_version_10_log_gains_events_by_task_and_the_runs_sums(tmp_path: Path) -> None:
    from tests.test_migrations import make_log_at

    path = tmp_path / "log.db"
    make_log_at(path, 10)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO events (at, task_id, kind, actor, from_state, to_state, note, data) VALUES "
        "(1800.0, 'T-1', 'finished', 'engine', 'running', 'review', 'done', "
        "'{\"run\": \"runs/T-1/1\", \"cost_usd\": 1.25, \"input_tokens\": 10, \"output_tokens\": 5, \"turns\": 3}')"
    )
    conn.execute("INSERT INTO events (at, task_id, kind, actor, note) VALUES (1900.0, 'T-1', 'progress', 'engine', 'half')")
    conn.close()
    with ExecutionLog.open(path) as log:
        usage = log.usage(per_task=False, since=0)
        assert (usage.total.runs, usage.total.cost_usd, usage.total.input_tokens, usage.total.turns) == (1, 1.25, 10, 3)
        assert [e.kind for e in log.events(task_id="T-1")] == ["created", "finished", "progress"]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        from factory_tui.backends.schema import SCHEMA_VERSION

        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'idx_events_task'").fetchone()[0] == 1
        # Progress lines may be deleted (retention); nothing else may.
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events WHERE kind = 'finished'")
        conn.execute("DELETE FROM events WHERE kind = 'progress'")
        assert [row[0] for row in conn.execute("SELECT kind FROM events ORDER BY id")] == ["created", "finished"]
    finally:
        conn.close()


# --- streaming -------------------------------------------------------------


def _fill_events(path: Path, count: int) -> None:
    """``count`` progress lines of two tasks, written straight to the log."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (at, task_id, kind, actor, note) VALUES (?, ?, 'progress', 'engine', ?)",
            ((1_790_000_000.0 + n / 10, f"T-{1 + n % 2}", f"⚙ Bash: pytest -q tests/test_{n}.py") for n in range(count)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _factory_peak(base: FactoryBase, *args: str) -> tuple[int, float, str, int]:
    """Run ``factory ARGS`` reading all it prints; (exit status, its own
    peak resident memory in MB, stderr, lines printed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(), cwd=base.root,
    )
    assert process.stdout is not None and process.stderr is not None
    lines = sum(1 for _ in process.stdout)
    error = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024, error, lines


@pytest.fixture
def two_tasks(base: FactoryBase) -> FactoryBase:
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="one"), actor="t")
        log.add_task(NewTask(title="two"), actor="t")
    return base


def test_factory_log_prints_200k_events_in_the_memory_it_needs_for_a_few(two_tasks: FactoryBase) -> None:
    code, small_peak, error, lines = _factory_peak(two_tasks, "log")
    assert (code, error, lines) == (0, "", 2)
    _fill_events(two_tasks.log_path, 200_000)
    code, big_peak, error, lines = _factory_peak(two_tasks, "log")
    assert (code, error, lines) == (0, "", 200_002)
    # Loading the history whole took ~190 MB more at this size.
    assert big_peak < small_peak + 30, (small_peak, big_peak)


def test_factory_log_ends_at_once_when_its_reader_stops(two_tasks: FactoryBase) -> None:
    _fill_events(two_tasks.log_path, 20_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "factory_tui", "--base", str(two_tasks.root), "log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(), cwd=two_tasks.root,
    )
    assert process.stdout is not None and process.stderr is not None
    first = [process.stdout.readline() for _ in range(3)]
    assert b"created" in first[0]
    process.stdout.close()  # as `| head -3` does
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # It stopped at the page after the reader left, quietly: no traceback.
    assert process.returncode == 0
    assert process.stderr.read() == b""


def test_factory_log_last_and_follow_read_by_pages(two_tasks: FactoryBase) -> None:
    with ExecutionLog.open(two_tasks.log_path) as log:
        for n in range(2500):
            log.add_note("T-2" if n % 3 else "T-1", f"note {n}", actor="op")
        everything = [e.id for e in log.events()]
        paged = [e.id for page in log.event_pages(page=700) for e in page]
        assert paged == everything
        assert [e.id for page in log.event_pages(last=1500, page=400) for e in page] == everything[-1500:]
        mine = [e.id for e in log.events(task_id="T-1")]
        assert [e.id for page in log.event_pages(task_id="T-1", page=100) for e in page] == mine
        assert [e.id for page in log.event_pages(task_id="T-1", last=5, page=2) for e in page] == mine[-5:]
        assert list(log.event_pages(after_id=everything[-1])) == []
    lines = ok(two_tasks, "log", "--task", "T-1", "--last", "1001", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == mine[-1001:]


def test_plan_list_streams_the_same_plan_it_listed_whole(two_tasks: FactoryBase) -> None:
    with ExecutionLog.open(two_tasks.log_path) as log:
        made = log.add_tasks(
            [NewTask(title=f"task [bold]{n}[/]\u202e", priority=n % 5, body=f"body {n}",
                     after=(f"T-{n % 2 + 1}",) if n % 4 else ()) for n in range(2300)],
            actor="t",
        )
        for task in made[:40]:
            log.apply(task.id, Action.HOLD, actor="op")
        whole = log.list_tasks()
        paged = [task for page in log.task_pages(page=300) for task in page]
        assert [t.to_json() for t in paged] == [t.to_json() for t in whole]
        held = [task for page in log.task_pages([State.HELD], page=7) for task in page]
        assert [t.id for t in held] == [t.id for t in whole if t.state is State.HELD]
    listed = ok(two_tasks, "plan", "list", "--json").stdout
    assert listed == dumps_json([t.to_json() for t in whole]) + "\n"
    assert json.loads(ok(two_tasks, "plan", "list", "--json", "--state", "done").stdout) == []
    text = ok(two_tasks, "plan", "list").stdout.splitlines()
    rows = [line.split()[0] for line in text[1:]]
    rank = {state: n for n, state in enumerate(STATE_ORDER)}
    expected = sorted(whole, key=lambda t: (rank[t.state], -t.priority, t.seq))
    assert rows == [t.id for t in expected]


def test_plan_listing_says_what_the_tasks_say(two_tasks: FactoryBase) -> None:
    # The listing's rows are read without building tasks: they must say what
    # the tasks do (state order, priority, tries, the blockers not yet done,
    # in the order they were declared), page after page.
    with ExecutionLog.open(two_tasks.log_path) as log:
        made = log.add_tasks([NewTask(title=f"t{n}", priority=n % 3) for n in range(8)], actor="t")
        made += log.add_tasks(
            [NewTask(title=f"t{n}", priority=n % 3, state=State.PROPOSED if n % 7 == 0 else State.QUEUED,
                     after=(f"T-{n % 5 + 3}", f"T-{n % 2 + 1}")[: 1 + n % 2])
             for n in range(8, 60)],
            actor="t",
        )
        for task in made[10:20]:
            if task.state is State.QUEUED:
                log.apply(task.id, Action.HOLD, actor="op")
        claim = log.claim_next("w")
        assert claim is not None
        log.finish(claim.token, State.REVIEW)
        log.apply(claim.task.id, Action.APPROVE, actor="op")
        whole = log.list_tasks()
        rank = {state: n for n, state in enumerate(STATE_ORDER)}
        expected = [
            (t.seq, t.state.value, t.priority, t.attempts,
             ",".join(t.blocked_by) if t.blocked_by and t.state in (State.QUEUED, State.HELD, State.PROPOSED) else None,
             t.title)
            for t in sorted(whole, key=lambda t: (rank[t.state], -t.priority, t.seq))
        ]
        listed = [row for page in log.plan_listing(STATE_ORDER, page=7) for row in page]
        assert listed == expected
        assert any(row[4] and "," in row[4] for row in listed)  # several blockers, in their order
