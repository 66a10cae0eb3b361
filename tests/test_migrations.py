"""A log written by an earlier factory-tui is brought forward, one version
per transaction, without losing a row."""

from __future__ import annotations

import sqlite3

from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.schema import MIGRATIONS, SCHEMA_VERSION
from factory_tui.model import Action, NewTask, State


def make_log_at(path, version: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for migrate in MIGRATIONS[:version]:
        migrate(conn)
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute("COMMIT")
    conn.execute(
        "INSERT INTO tasks (title, state, priority, attempts, created_at, updated_at) "
        "VALUES ('from v1', 'queued', 2, 0, 1.0, 1.0)"
    )
    conn.execute(
        "INSERT INTO events (at, task_id, kind, actor, to_state, note) "
        "VALUES (1.0, 'T-1', 'created', 'old', 'queued', 'from v1')"
    )
    conn.close()


def test_a_version_1_log_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "log.db"
    make_log_at(path, 1)
    with ExecutionLog.open(path) as log:
        task = log.get_task("T-1")
        assert (task.title, task.state, task.priority) == ("from v1", State.QUEUED, 2)
        assert [e.note for e in log.events()] == ["from v1"]
        # The new columns work: a claim records when the run started.
        claim = log.claim_next("w")
        assert claim is not None and claim.task.started_at is not None
        log.add_progress(claim.token, "⚙ Bash: pytest")
        assert log.get_task("T-1").progress == "⚙ Bash: pytest"
        log.add_task(NewTask(title="after"), actor="t")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    assert {"started_at", "progress"} <= columns


def test_a_version_2_log_gains_run_secrets_and_branch_starts(tmp_path):
    path = tmp_path / "log.db"
    make_log_at(path, 2)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tasks SET started_at = 5.0, progress = 'half way'")
    conn.commit()
    conn.close()
    with ExecutionLog.open(path) as log:
        task = log.get_task("T-1")
        assert (task.title, task.progress, task.branch_start) == ("from v1", "half way", None)
        claim = log.claim_next("w")
        assert claim is not None and log.agent_for(claim.secret) == "T-1"
        log.record_branch_start("T-1", "ab" * 20)
        assert log.get_task("T-1").branch_start == "ab" * 20
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    assert {"run_secret", "branch_start"} <= columns
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2  # from v1, claimed


def test_a_version_4_log_gains_task_labels(tmp_path):
    path = tmp_path / "log.db"
    make_log_at(path, 4)
    with ExecutionLog.open(path) as log:
        # The task from before has no labels, and can be given some.
        assert log.get_task("T-1").labels == ()
        log.change_labels("T-1", add=["docs"], actor="op")
        assert log.get_task("T-1").labels == ("docs",)
        made = log.add_task(NewTask(title="after", labels=("ui", "docs")), actor="t")
        assert log.get_task(made.id).labels == ("ui", "docs")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "labels" in {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    assert conn.execute("SELECT count(*) FROM qa_runs").fetchone()[0] == 0  # v4's table kept


def test_a_version_6_log_gains_the_ids_of_imported_tasks(tmp_path):
    """The log before plans came in from other tools: its tasks keep their
    rows, have no ids elsewhere, and an import then records its ids."""
    from factory_tui.plan_formats.records import Intent, Kind, SourceBatch, SourceRecord

    path = tmp_path / "log.db"
    make_log_at(path, 6)
    with ExecutionLog.open(path) as log:
        assert log.get_task("T-1").title == "from v1"
        assert log.source_ids("T-1") == []
        record = SourceRecord("bd-1", "from beads", "open", Intent.OPEN, "issues.jsonl:1 (bd-1)", "issues.jsonl")
        made = log.import_source(SourceBatch(Kind.BEADS, [record]), actor="t").created
        assert [task.id for task in made] == ["T-2"]
        assert [(s.kind, s.source_id) for s in log.source_ids("T-2")] == [("beads", "bd-1")]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0  # v6's table kept
    # One task per id of a tool: the key refuses a second row for bd-1.
    try:
        conn.execute(
            "INSERT INTO task_sources (kind, source_id, task, status, fields, path, imported_at, updated_at) "
            "VALUES ('beads', 'bd-1', 1, 'open', '{}', 'x', 0, 0)"
        )
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("a second task for beads bd-1 was accepted")


def test_a_version_6_log_gains_prompt_provenance_and_the_session_history(tmp_path):
    from factory_tui.artifacts_model import Landing
    from factory_tui.model import Action

    path = tmp_path / "log.db"
    make_log_at(path, 6)
    with ExecutionLog.open(path) as log:
        assert log.get_task("T-1").title == "from v1"
        assert log.landing_count() == 0 and log.prompt_counts() == {}
        claim = log.claim_next("w")
        assert claim is not None
        log.record_prompt_documents("T-1", 1, [("conventions.md", "ab" * 20, 120, 120, True)])
        log.finish(claim.token, State.REVIEW)
        log.apply("T-1", Action.APPROVE, actor="op", landing=Landing(task_id="T-1", title="from v1", at=0.0, actor="op"))
        assert [(d.name, d.whole) for d in log.prompt_documents("T-1", 1)] == [("conventions.md", True)]
        [landed] = log.landings()
        assert (landed.task_id, landed.actor) == ("T-1", "op") and landed.at > 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {"prompt_documents", "landings"} <= {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0  # v6's tables kept


def test_a_version_10_log_gains_readiness_kept_on_every_task(tmp_path):
    """Migration 11 counts each task's blockers (dependencies not done) for
    the tasks already in the log; from then on the schema keeps the count."""
    path = tmp_path / "log.db"
    make_log_at(path, 10)  # T-1: queued, priority 2
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO tasks (seq, title, state, priority, attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 0, 1.0, 1.0)",
        [(2, "done", "done", 0), (3, "waits for T-1 and T-2", "queued", 9),
         (4, "waits for T-2", "queued", 5), (5, "cancelled", "cancelled", 0),
         (6, "waits for T-5", "held", 7)],
    )
    conn.executemany("INSERT INTO deps (task, depends_on) VALUES (?, ?)", [(3, 1), (3, 2), (4, 2), (6, 5)])
    conn.close()
    with ExecutionLog.open(path) as log:
        conn = sqlite3.connect(path)
        assert dict(conn.execute("SELECT seq, blockers FROM tasks")) == {1: 0, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()
        # T-3 has the highest priority, but waits for T-1.
        order = []
        while (claim := log.claim_next("w")) is not None:
            order.append(claim.task.id)
            log.finish(claim.token, State.REVIEW)
            log.apply(claim.task.id, Action.APPROVE, actor="op")
        assert order == ["T-4", "T-1", "T-3"]


def test_a_version_12_log_gains_the_plan_s_index(tmp_path):
    """Migration 13 indexes the plan in the console's order: the first look
    counts each state and reads its first rows as ranges of it."""
    path = tmp_path / "log.db"
    make_log_at(path, 12)  # T-1: queued, priority 2
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO tasks (seq, title, state, priority, attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 0, 1.0, 1.0)",
        [(2, "held", "held", 0), (3, "urgent", "queued", 9)],
    )
    conn.close()
    with ExecutionLog.open(path) as log:
        assert log.counts()[State.QUEUED] == 2
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "idx_tasks_plan" in names
        assert [row[0] for row in conn.execute(
            "SELECT seq FROM tasks INDEXED BY idx_tasks_plan WHERE state = 'queued' ORDER BY priority DESC, seq"
        )] == [3, 1]
        conn.close()
