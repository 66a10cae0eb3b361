"""Importing long plans: a long ``after=`` chain is checked in linear time
and written in one short transaction, everything is checked before the write
lock is taken, and a refused import writes nothing.

Through the real CLI (``python -m factory_tui plan import``) where the
process boundary matters, on real bases and real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import DependencyCycle, LogBusy, UnknownTask
from factory_tui.model import NewTask, State
from factory_tui.plan_file import parse_plan
from tests.helpers import assert_one_line_error, log_tables


def factory(base: FactoryBase, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args],
        capture_output=True, text=True, env=environment, timeout=180, check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def one_line_error(done: subprocess.CompletedProcess) -> str:
    return assert_one_line_error(done.returncode, done.stdout, done.stderr)


def chain(n: int, *, first_after: str | None = None) -> str:
    """``n`` items, each after the one before it (the first after
    ``first_after``, if given), each with a one-line body."""
    lines = ["# A long chain", ""]
    for i in range(n):
        after = f"s{i - 1}" if i else first_after
        attrs = f"#s{i}" + (f" after={after}" if after else "")
        lines.append(f"- [ ] Step {i} {{{attrs}}}")
        lines.append(f"  Body of step {i}.")
    return "\n".join(lines) + "\n"


def seed(base: FactoryBase, count: int) -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"existing {n}") for n in range(count)], actor="seed")


def test_a_20000_item_chain_imports_whole(base: FactoryBase, tmp_path: Path) -> None:
    """Took minutes before (a search of the log per dependency, inside the
    write transaction); no time is asserted here, only that it ends and that
    every task, dependency and event is there."""
    n = 20_000
    seed(base, 2)  # T-1, T-2: the chain's first item depends on T-2
    plan = tmp_path / "chain.md"
    plan.write_text(chain(n, first_after="T-2"))
    done = factory(base, "plan", "import", str(plan))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Imported {n} tasks (T-3…T-{n + 2}), 0 of them done."
    conn = sqlite3.connect(base.log_path)
    try:
        tasks = conn.execute("SELECT seq, title, state, source FROM tasks WHERE seq > 2 ORDER BY seq").fetchall()
        assert tasks == [(i + 3, f"Step {i}", "proposed", "import:chain.md") for i in range(n)]
        bodies = conn.execute("SELECT seq, body FROM task_bodies ORDER BY seq").fetchall()
        assert bodies == [(i + 3, f"Body of step {i}.") for i in range(n)]
        deps = conn.execute("SELECT task, depends_on FROM deps ORDER BY rowid").fetchall()
        assert deps == [(3, 2)] + [(seq, seq - 1) for seq in range(4, n + 3)]
        events = conn.execute(
            "SELECT task_id, kind, actor, to_state, note, data FROM events WHERE id > 2 ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    # An event for every task created, then one for every dependency, as
    # before; the same actor throughout.
    created, depends = events[:n], events[n:]
    assert len(depends) == n
    assert created[0][:5] == ("T-3", "created", created[0][2], "proposed", "Step 0")
    assert all(e[1] == "created" and e[0] == f"T-{i + 3}" for i, e in enumerate(created))
    assert created[0][5] == '{"source": "import:chain.md"}'
    assert depends[0][0::4] == ("T-3", "depends on T-2")
    assert depends[1][0::4] == ("T-4", "depends on T-3")
    assert depends[-1][5] == f'{{"on": "T-{n + 1}"}}'
    assert {e[2] for e in events} == {events[0][2]}
    with ExecutionLog.open(base.log_path) as log:
        last = log.get_task(f"T-{n + 2}")
        assert (last.depends_on, last.blocked_by) == ((f"T-{n + 1}",), (f"T-{n + 1}",))
        # One dependency more across the whole chain: a search of it, once,
        # finds the loop and names every link of it.
        with pytest.raises(DependencyCycle) as caught:
            log.add_dependency("T-2", f"T-{n + 2}", actor="t")
        assert caught.value.cycle == ["T-2", *(f"T-{seq}" for seq in range(n + 2, 1, -1))]
        # …and one that closes no loop is taken.
        assert log.add_dependency(f"T-{n + 2}", "T-1", actor="t").depends_on == (
            f"T-{n + 1}", "T-1")
    # The CLI tells that loop in one short line.
    line = one_line_error(factory(base, "task", "depend", "T-2", f"T-{n + 2}"))
    assert line.startswith(f"factory: dependency cycle refused: T-2 → T-{n + 2} → T-{n + 1} → ")
    assert line.endswith(" → T-3 → T-2") and f"({n + 2 - 11:,} more)" in line
    assert len(line) < 200


def test_a_chain_written_last_to_first_is_checked_without_recursion() -> None:
    """Each item depends on the next one in the file: a recursive walk went
    one call deeper per item and died with RecursionError (a traceback)."""
    n = 5_000
    text = "".join(f"- [ ] Step {i} {{#s{i} after=s{i + 1}}}\n" for i in range(n - 1))
    items = parse_plan(text + f"- [ ] Step {n - 1} {{#s{n - 1}}}\n", "p.md")
    assert len(items) == n and items[0].after == ["s1"]


def test_a_loop_across_a_long_batch_is_refused_with_its_path_and_nothing_written(
    base: FactoryBase, tmp_path: Path
) -> None:
    n = 5_000
    seed(base, 1)
    before = log_tables(base.log_path)
    plan = tmp_path / "loop.md"
    plan.write_text(chain(n, first_after=f"s{n - 1}"))  # the first item needs the last
    line = one_line_error(factory(base, "plan", "import", str(plan)))
    # The first item is on line 3 of the file; its loop runs through all n.
    assert line.startswith(f"factory: loop.md:3: dependency cycle: #s0 → #s{n - 1} → #s{n - 2} → ")
    assert line.endswith(" → #s1 → #s0") and f"({n + 1 - 11:,} more)" in line
    assert log_tables(base.log_path) == before
    # A short loop in the middle of a plan: named in full, on its first item's line.
    plan.write_text(chain(50) + "- [ ] a {#a after=c}\n- [ ] b {#b after=a}\n- [ ] c {#c after=b,s3}\n")
    line = one_line_error(factory(base, "plan", "import", str(plan)))
    assert line == "factory: loop.md:103: dependency cycle: #a → #c → #b → #a"
    assert log_tables(base.log_path) == before


def test_add_tasks_refuses_a_loop_among_its_handles_and_writes_nothing(
    log: ExecutionLog,
) -> None:
    log.add_task(NewTask(title="existing"), actor="seed")
    before = log_tables(log.path)
    batch = [
        NewTask(title="a", after=("T-1", "c")),
        NewTask(title="b", after=("a",)),
        NewTask(title="c", after=("b",)),
    ]
    with pytest.raises(DependencyCycle) as caught:
        log.add_tasks(batch, actor="t", handles=["a", "b", "c"])
    assert caught.value.cycle == ["a", "c", "b", "a"]
    assert str(caught.value) == "dependency cycle refused: a → c → b → a"
    with pytest.raises(DependencyCycle) as caught:
        log.add_tasks([NewTask(title="a", after=("a",))], actor="t", handles=["a"])
    assert caught.value.cycle == ["a", "a"]
    # A task id names a task already in the log, never one of the batch.
    with pytest.raises(UnknownTask, match="T-2"):
        log.add_tasks([NewTask(title="a"), NewTask(title="b", after=("T-2",))], actor="t")
    assert log_tables(log.path) == before


def test_a_missing_task_id_is_refused_with_its_line_and_nothing_written(
    base: FactoryBase, tmp_path: Path
) -> None:
    seed(base, 3)
    before = log_tables(base.log_path)
    plan = tmp_path / "plan.md"
    text = chain(2_000, first_after="T-3")
    # Line 3001 (item 1500) also needs T-42, which the log does not hold.
    lines = text.splitlines()
    assert lines[3002].startswith("- [ ] Step 1500 ")
    lines[3002] = lines[3002].replace("after=s1499", "after=s1499,T-42")
    plan.write_text("\n".join(lines) + "\n")
    line = one_line_error(factory(base, "plan", "import", str(plan)))
    assert line == "factory: plan.md:3003: after=T-42: no such task in the log"
    assert log_tables(base.log_path) == before


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another writer, holding the log's write lock with a change of its own
    not yet committed."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute(
        "INSERT INTO events (at, task_id, kind, actor, note) VALUES (0, NULL, 'note', 'other', 'meanwhile')"
    )
    return holder


def test_an_import_is_checked_without_the_write_lock(base: FactoryBase, tmp_path: Path) -> None:
    """Shown by ordering, not by timing: while another process holds the
    write lock, the whole check of a plan (file, handles, loops, and the task
    ids it names, read from the log) runs to its verdict; only the write
    itself waits for the lock (and, with a short busy timeout, gives up
    without writing anything)."""
    seed(base, 1)
    before = log_tables(base.log_path)
    plan = tmp_path / "plan.md"
    holder = _hold_write_lock(base.log_path)
    try:
        plan.write_text(chain(1_000, first_after="T-1") + "- [ ] last {after=s999,T-7}\n")
        line = one_line_error(factory(base, "plan", "import", str(plan), FACTORY_BUSY_TIMEOUT_MS="50"))
        assert line == "factory: plan.md:2003: after=T-7: no such task in the log"
        plan.write_text(chain(1_000, first_after="T-1"))
        line = one_line_error(factory(base, "plan", "import", str(plan), FACTORY_BUSY_TIMEOUT_MS="50"))
        assert "locked by another writer" in line
        holder.execute("COMMIT")
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    assert log_tables(base.log_path)["tasks"] == before["tasks"]
    done = factory(base, "plan", "import", str(plan))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Imported 1000 tasks (T-2…T-1001), 0 of them done."


def test_another_process_writes_between_the_check_and_the_write(base: FactoryBase) -> None:
    """``check_tasks`` takes no lock: another process holds the write lock
    through it, and adds a task before ``add_checked``; the batch then takes
    the next ids, and its dependencies point where its handles said."""
    seed(base, 1)
    with ExecutionLog.open(base.log_path, busy_timeout_ms=50) as log:
        holder = _hold_write_lock(base.log_path)
        try:
            batch = log.check_tasks(
                [NewTask(title="deploy", after=("build",)), NewTask(title="build", after=("T-1",))],
                handles=[None, "build"],
            )
            with pytest.raises(LogBusy):
                log.add_checked(batch, actor="a")
            holder.execute("COMMIT")
        finally:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            holder.close()
        assert factory(base, "plan", "add", "meanwhile").stdout.strip() == "T-2"
        deploy, build = log.add_checked(batch, actor="a")
        assert (deploy.id, deploy.depends_on, deploy.blocked_by) == ("T-3", ("T-4",), ("T-4",))
        assert (build.id, build.depends_on) == ("T-4", ("T-1",))
        assert log.get_task("T-3").depends_on == ("T-4",)
        assert log.get_task("T-4").depends_on == ("T-1",)
        assert [t.title for t in log.list_tasks()] == ["existing 0", "meanwhile", "deploy", "build"]
        assert [(e.task_id, e.kind, e.note) for e in log.events(kinds=["depends"])] == [
            ("T-3", "depends", "depends on T-4"), ("T-4", "depends", "depends on T-1")]


def test_a_dependency_added_after_the_check_is_seen_before_the_write(
    base: FactoryBase,
) -> None:
    """``add_dependency`` searches for a loop before it takes the lock; a
    dependency added by another process between that search and the write
    makes it search again under the lock, so the loop is still refused."""
    seed(base, 3)
    with ExecutionLog.open(base.log_path) as log:
        with log._read() as conn:
            mark = log._check_dependency(conn, "T-1", "T-3")  # no loop yet
        done = factory(base, "task", "depend", "T-3", "T-1")  # another process
        assert done.returncode == 0, done.stderr
        with pytest.raises(DependencyCycle) as caught, log._write() as conn:
            log._add_dependency(conn, 0.0, "T-1", "T-3", "t", mark)
        assert caught.value.cycle == ["T-1", "T-3", "T-1"]
        assert log.get_task("T-1").depends_on == ()
        # With nothing added since its check, the write goes through.
        with log._read() as conn:
            mark = log._check_dependency(conn, "T-2", "T-1")
        with log._write() as conn:
            log._add_dependency(conn, 0.0, "T-2", "T-1", "t", mark)
        assert log.get_task("T-2").depends_on == ("T-1",)


def test_ticked_items_and_existing_done_tasks_do_not_block(log: ExecutionLog) -> None:
    from factory_tui.backends.plan_import import import_plan
    from factory_tui.model import Action

    log.add_task(NewTask(title="old", state=State.PROPOSED), actor="seed")
    log.add_task(NewTask(title="open"), actor="seed")
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == "T-2"
    log.finish(claim.token, State.REVIEW)
    log.apply("T-2", Action.APPROVE, actor="o")  # T-2 done
    text = "- [x] done here {#d}\n- [ ] next {after=d,T-1,T-2}\n"
    done_here, nxt = import_plan(log, text, source="p.md", actor="a").tasks
    assert done_here.state is State.DONE
    assert (nxt.depends_on, nxt.blocked_by) == (("T-3", "T-1", "T-2"), ("T-1",))
    assert log.get_task(nxt.id).blocked_by == nxt.blocked_by


def test_a_dense_batch_without_a_loop_is_taken(log: ExecutionLog) -> None:
    """Each item depends on the two before it (paths multiply like
    Fibonacci numbers): the walk visits each item once and finds no loop."""
    n = 3_000
    batch = [
        NewTask(title=f"step {i}", after=tuple(f"s{k}" for k in (i - 1, i - 2) if k >= 0))
        for i in range(n)
    ]
    tasks = log.add_tasks(batch, actor="t", handles=[f"s{i}" for i in range(n)])
    assert tasks[-1].depends_on == (f"T-{n - 1}", f"T-{n - 2}")
    assert len(log.events(kinds=["depends"])) == 2 * n - 3
