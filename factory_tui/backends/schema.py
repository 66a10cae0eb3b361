"""The execution log's schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. ``open_connection`` refuses a
file that is not SQLite (an empty file too) or that a newer factory-tui wrote,
before it changes a single byte of it; an older file is migrated forward, one
version per transaction. Only ``create=True`` makes a log, and only where no
file is: it is built aside, readable by its owner only, and linked into place
whole. A log that cannot be written (a read-only mount, a full disk) is
opened read-only where SQLite can read it, and its errors say why in one line.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from factory_tui.errors import LogBusy, LogCorrupt, LogDiskFull, LogError, LogReadOnly, LogTooNew

SCHEMA_VERSION = 13
DEFAULT_BUSY_TIMEOUT_MS = 5000
# What a commit waits for (``[log] synchronous`` in factory.toml): NORMAL
# flushes the WAL at checkpoints only (a power loss may lose the last
# transactions, never corrupt the log); FULL flushes it at every commit.
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
DEFAULT_SYNCHRONOUS = "normal"


def _v1(conn: sqlite3.Connection) -> None:
    # sqlite-utils nests its own work in a savepoint, so these statements are
    # part of the migration's one transaction.
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    # A task's id is "T-" and its seq. Its lease lives on its row: live while
    # lease_token is set (lease_worker and lease_expires describe the latest
    # lease). The body lives apart, so that state changes rewrite small rows.
    db.table("tasks").create(
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
    db.table("task_bodies").create(
        {"seq": int, "body": str},
        pk="seq",
        not_null={"body"},
        foreign_keys=[("seq", "tasks", "seq")],
        strict=True,
    )
    db.table("deps").create(
        {"task": int, "depends_on": int},
        not_null={"task", "depends_on"},
        foreign_keys=[("task", "tasks", "seq"), ("depends_on", "tasks", "seq")],
        strict=True,
    )
    db.table("deps").create_index(["task", "depends_on"], unique=True)
    db.table("deps").create_index(["depends_on"])
    db.table("events").create(
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
    db.table("meta").create({"key": str, "value": str}, pk="key", strict=True)


def _v2(conn: sqlite3.Connection) -> None:
    """The production line: when a task's current run started, and the last
    line of progress its agent reported (the Worktrees pane shows both)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.table("tasks").add_column("started_at", float)
    db.table("tasks").add_column("progress", str)


def _v3(conn: sqlite3.Connection) -> None:
    """Identity: the hash of the current run's agent secret (an agent proves
    who it is with the secret; the log keeps only its sha256), and the commit
    a task's branch was made at (from then on the branch is this plan's own,
    so that a branch left by another plan is never taken over)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.table("tasks").add_column("run_secret", str)
    db.table("tasks").add_column("branch_start", str)
    # Tasks that ran before the log kept this record: their branches are
    # this plan's own, its start unknown (see model.BRANCH_START_UNRECORDED).
    conn.execute("UPDATE tasks SET branch_start = 'unrecorded' WHERE attempts > 0")
    # No index: a secret names its task (``T-3:…``), so it is checked by
    # the task's key, and the claim writes no more pages than before.


def _v4(conn: sqlite3.Connection) -> None:
    """Quality assurance: every QA run is a row (task, attempt, scenario and
    the version of its file, commit, base commit, verdict, duration, cost,
    output); a task counts the times QA sent it back since the operator
    last did, and keeps the commit its required QA passed on (an approve
    of anything else is refused unless forced)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.table("tasks").add_column("qa_rounds", int, not_null_default=0)
    db.table("tasks").add_column("checked_commit", str)
    db.table("qa_runs").create(
        {
            "id": int,
            "at": float,
            "task_id": str,  # NULL: run on demand, not for a task
            "attempt": int,
            "scenario": str,
            "version": str,
            "kind": str,
            "gate": str,
            "verdict": str,
            "reason": str,
            "commit_sha": str,
            "base_commit": str,
            "duration": float,
            "attempts": int,
            "cost_usd": float,
            "input_tokens": int,
            "output_tokens": int,
            "output": str,
            "tests": str,  # JSON: test name → verdict
            "actor": str,
        },
        pk="id",
        not_null={"at", "scenario", "kind", "gate", "verdict"},
        strict=True,
    )
    # A scenario's history (the QA pane, `qa history`) and a task's report
    # read by these; a QA run is rare next to events, so the pages are cheap.
    db.table("qa_runs").create_index(["scenario", "id"])
    db.table("qa_runs").create_index(["task_id", "id"])


def _v5(conn: sqlite3.Connection) -> None:
    """Task labels: words that say what kind of work a task is, matched by
    a QA scenario's ``when: {labels: [...]}``."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False)
    # A JSON list on the task's own row, not a side table: a task has a few
    # labels, they are read whenever the task is (the gate, the screens),
    # and nothing looks tasks up by label in SQL, so a join per read would
    # buy nothing. NULL is no labels, so existing rows need no rewrite.
    db.table("tasks").add_column("labels", str)


def _v6(conn: sqlite3.Connection) -> None:
    """Mail between factories: one row per message this factory knows (its
    inbox, its outbox, other tools' archives read as sources), each outbox
    message's delivery per peer, and the files refused as no message (the
    record that a file was judged, so that it is judged once)."""
    # Written as SQL, not through sqlite-utils: partial indexes and a
    # composite unique key say exactly what the reads need.
    for statement in _V6_STATEMENTS:
        conn.execute(statement)


_V6_STATEMENTS = (
    # key: the message id; for a source's file ``NAME:<id>``. thread and
    # in_reply_to are keys too (the thread's first message's key), so that a
    # source's threads never meet ours. recipients: a JSON list. created,
    # received_at, read_at, acked_at: epoch seconds. Ours (the outbox) are
    # read when written.
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        id TEXT NOT NULL,
        box TEXT NOT NULL,
        path TEXT NOT NULL,
        hash TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        subject TEXT NOT NULL,
        created REAL NOT NULL,
        kind TEXT NOT NULL,
        thread TEXT NOT NULL,
        in_reply_to TEXT,
        importance TEXT NOT NULL,
        ack_required INTEGER NOT NULL DEFAULT 0,
        state TEXT,
        task TEXT,
        body TEXT NOT NULL DEFAULT '',
        received_at REAL NOT NULL,
        read_at REAL,
        acked_at REAL,
        task_id TEXT
    ) STRICT""",
    # The list and the Mail pane read newest first; a thread by its key; the
    # header's unread count only the unread rows; an ack or a reply finds
    # what it answers.
    "CREATE INDEX idx_messages_created ON messages(created DESC, seq DESC)",
    "CREATE INDEX idx_messages_thread ON messages(thread, created)",
    "CREATE INDEX idx_messages_unread ON messages(created DESC) WHERE read_at IS NULL",
    "CREATE INDEX idx_messages_reply ON messages(in_reply_to) WHERE in_reply_to IS NOT NULL",
    "CREATE INDEX idx_messages_path ON messages(path)",
    # What waits for us (the header's counts) is few rows among many.
    "CREATE INDEX idx_messages_requests ON messages(key) WHERE kind = 'request' AND task_id IS NULL",
    "CREATE INDEX idx_messages_acks ON messages(key) WHERE ack_required = 1 AND acked_at IS NULL",
    """CREATE TABLE mail_deliveries (
        message_key TEXT NOT NULL REFERENCES messages(key),
        peer TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (message_key, peer)
    ) STRICT""",
    "CREATE INDEX idx_deliveries_undelivered ON mail_deliveries(message_key) WHERE state != 'delivered'",
    # A file judged no message, once per path and content: moved into
    # quarantine from our mailbox, only listed for a source (read-only).
    """CREATE TABLE mail_rejects (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        box TEXT NOT NULL,
        path TEXT NOT NULL,
        hash TEXT NOT NULL,
        reason TEXT NOT NULL,
        UNIQUE (path, hash)
    ) STRICT""",
)


def _v7(conn: sqlite3.Connection) -> None:
    """Greenfield: every plan a planner drafted from a spec and that was
    imported (``factory plan draft``), and the changes to existing tasks a
    revision proposed (cancel, priority), each waiting for the operator."""
    for statement in _V7_STATEMENTS:
        conn.execute(statement)


_V7_STATEMENTS = (
    # source: the tasks' source (``draft:SPEC.md``), what a draft's tasks are
    # known by when the spec is drafted again; run_dir: the planner's files.
    """CREATE TABLE drafts (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        spec TEXT NOT NULL,
        source TEXT NOT NULL,
        revise INTEGER NOT NULL DEFAULT 0,
        profile TEXT NOT NULL,
        run_dir TEXT NOT NULL,
        actor TEXT NOT NULL,
        tasks INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        proposals INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    # id: P-<id>. kind: cancel | priority (value: the new priority). state:
    # pending | accepted | declined; decided_* say by whom, when and why.
    """CREATE TABLE plan_proposals (
        id INTEGER PRIMARY KEY,
        draft INTEGER NOT NULL REFERENCES drafts(id),
        task TEXT NOT NULL,
        kind TEXT NOT NULL,
        value INTEGER,
        title TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'pending',
        created_at REAL NOT NULL,
        decided_at REAL,
        decided_by TEXT,
        decision_note TEXT
    ) STRICT""",
    # What waits for the operator is read often and is few rows.
    "CREATE INDEX idx_proposals_pending ON plan_proposals(task) WHERE state = 'pending'",
)


def _v8(conn: sqlite3.Connection) -> None:
    """The run index: one row per run (a run folder, ``runs/<task>/<folder>``)
    with how it ended, what it cost and what it changed, and one row per
    file of its folder with its kind, size and state (kept, compressed or
    dropped by ``[artifacts] keep_runs``). Written by the engine when a run
    ends, and from the folders on disk for runs it never wrote (see
    backends/run_index.py)."""
    for statement in _V8_STATEMENTS:
        conn.execute(statement)


_V8_STATEMENTS = (
    # folder: the attempt ("2"), or a run set aside ("2.stopped"); outcome:
    # artifacts_model.RunOutcome; diff_base and diff_head: the commits the
    # diff figures count between.
    """CREATE TABLE runs (
        task_id TEXT NOT NULL,
        folder TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        profile TEXT,
        agent TEXT,
        started_at REAL,
        ended_at REAL,
        outcome TEXT NOT NULL,
        exit_code INTEGER,
        cost_usd REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        files_changed INTEGER,
        lines_added INTEGER,
        lines_removed INTEGER,
        diff_base TEXT,
        diff_head TEXT,
        indexed_at REAL NOT NULL,
        PRIMARY KEY (task_id, folder)
    ) STRICT, WITHOUT ROWID""",
    # Retention keeps the newest runs whole: it reads them in this order.
    "CREATE INDEX idx_runs_started ON runs(started_at DESC)",
    """CREATE TABLE run_files (
        task_id TEXT NOT NULL,
        folder TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (task_id, folder, name),
        FOREIGN KEY (task_id, folder) REFERENCES runs(task_id, folder) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID""",
)


def _v9(conn: sqlite3.Connection) -> None:
    """Where imported tasks came from: another tool's own id for each task
    imported from it (beads, Backlog.md, Task Master), so that importing
    again updates the task instead of making a second one."""
    # kind and source_id are the key: one task per id of a tool. status and
    # fields (JSON: title, a hash of the body, priority, labels, the ids it
    # waited for, what its status meant) are what the latest import read,
    # so that the next one tells a change made there (applied) from one
    # made here (kept). A task has at most one id per tool; the unique
    # index also finds a task's ids for `plan show` and the export.
    conn.execute(
        """CREATE TABLE task_sources (
            kind TEXT NOT NULL,
            source_id TEXT NOT NULL,
            task INTEGER NOT NULL REFERENCES tasks(seq),
            status TEXT NOT NULL,
            fields TEXT NOT NULL,
            path TEXT NOT NULL,
            imported_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, source_id),
            UNIQUE (task, kind)
        ) STRICT"""
    )


def _v10(conn: sqlite3.Connection) -> None:
    """Living documents: what every prompt included (which document, which
    version of it by its git blob id, how much of it), and the session
    history: one row per task that landed (approved and merged)."""
    for statement in _V10_STATEMENTS:
        conn.execute(statement)


_V10_STATEMENTS = (
    # One row per document a prompt included. The key answers "what did
    # T-3's attempt 2 read" (a prompt written again for the same attempt
    # replaces its rows); the index by name answers "how many prompts
    # included conventions.md" (and the list's counts, GROUP BY name) from
    # the index alone. shown: bytes of it in the prompt; size: its bytes;
    # position: its place in the prompt (most specific first).
    """CREATE TABLE prompt_documents (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        name TEXT NOT NULL,
        blob TEXT NOT NULL,
        shown INTEGER NOT NULL,
        size INTEGER NOT NULL,
        whole INTEGER NOT NULL,
        at REAL NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (task_id, attempt, name)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX idx_prompt_documents_name ON prompt_documents(name, blob)",
    # The session history: a task that landed, as it was then. qa: a JSON
    # list of the task's QA verdicts; refresh: 1 when the task was the
    # factory's own "bring the living documents up to date" (its landing
    # starts the count towards the next one anew). Read newest first (by
    # id), and counted since a time (a document's last change).
    """CREATE TABLE landings (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        title TEXT NOT NULL,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        profile TEXT,
        agent TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        qa TEXT,
        cost_usd REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        last_words TEXT,
        commit_sha TEXT,
        refresh INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    "CREATE INDEX idx_landings_at ON landings(at)",
    "CREATE INDEX idx_landings_refresh ON landings(id) WHERE refresh = 1",
)



def _v11(conn: sqlite3.Connection) -> None:
    """Readiness kept as tasks change: each task counts its blockers (its
    dependencies that are not done), so that the ready tasks (queued, no
    blockers) are one partial index and the claim takes the head of it,
    however many queued tasks wait behind unfinished dependencies. The
    count is computed here for the tasks already in the log."""
    for statement in _V11_STATEMENTS:
        conn.execute(statement)


_V11_STATEMENTS = (
    "ALTER TABLE tasks ADD COLUMN blockers INTEGER NOT NULL DEFAULT 0",
    # Only tasks with dependencies can have blockers; the rest keep the 0.
    """UPDATE tasks SET blockers = (
        SELECT count(*) FROM deps AS d JOIN tasks AS u ON u.seq = d.depends_on
        WHERE d.task = tasks.seq AND u.state != 'done')
    WHERE seq IN (SELECT task FROM deps)""",
    # The claim's index holds the ready tasks only: a task enters it when it
    # is queued with nothing to wait for and leaves it when claimed (or held,
    # or blocked by a new dependency). A queued task that waits is in no index.
    "DROP INDEX idx_tasks_ready",
    "CREATE INDEX idx_tasks_ready ON tasks(priority DESC, seq) WHERE state = 'queued' AND blockers = 0",
    # The count is kept by triggers, in the transaction of the change that
    # moves it, whichever code (or tool) makes it: a dependency added or
    # removed, a dependency's task entering or leaving done. A transition
    # that neither enters nor leaves done (a claim, a finish) runs only the
    # WHEN test. Tasks are never deleted, so no trigger is needed for that.
    """CREATE TRIGGER deps_blockers_insert AFTER INSERT ON deps BEGIN
        UPDATE tasks SET blockers = blockers + 1 WHERE seq = new.task
          AND (SELECT state FROM tasks WHERE seq = new.depends_on) IS NOT 'done';
    END""",
    """CREATE TRIGGER deps_blockers_delete AFTER DELETE ON deps BEGIN
        UPDATE tasks SET blockers = blockers - 1 WHERE seq = old.task
          AND (SELECT state FROM tasks WHERE seq = old.depends_on) IS NOT 'done';
    END""",
    # A dependency's row may also move between tasks (an UPDATE of deps):
    # nothing in factory-tui does that, but the count must hold if a tool does.
    """CREATE TRIGGER deps_blockers_update AFTER UPDATE OF task, depends_on ON deps BEGIN
        UPDATE tasks SET blockers = blockers - 1 WHERE seq = old.task
          AND (SELECT state FROM tasks WHERE seq = old.depends_on) IS NOT 'done';
        UPDATE tasks SET blockers = blockers + 1 WHERE seq = new.task
          AND (SELECT state FROM tasks WHERE seq = new.depends_on) IS NOT 'done';
    END""",
    """CREATE TRIGGER tasks_blockers_done AFTER UPDATE OF state ON tasks
    WHEN (old.state = 'done') != (new.state = 'done') BEGIN
        UPDATE tasks SET blockers = blockers + CASE WHEN new.state = 'done' THEN -1 ELSE 1 END
        WHERE seq IN (SELECT task FROM deps WHERE depends_on = new.seq);
    END""",
)


def _v12(conn: sqlite3.Connection) -> None:
    """Reads that stay flat as the log grows: an index of events by task
    (a task's history: the task screen, `plan show`, `factory log --task`;
    the prompt's look-ups: how a dependency's run ended), the runs' cost
    and tokens summed per quarter hour as they end (`factory status`, the
    header), and the one exception to the events' append-only rule that
    progress retention needs (``[log] keep_progress_days``:
    backends/retention.py)."""
    for statement in _V12_STATEMENTS:
        conn.execute(statement)


# A run's end, as ExecutionLog.usage counts them: an event of a kind that
# ends a run (model.RUN_END_KINDS) whose data names the run's folder. The
# CASE looks for the word before parsing anything (most events are no run's
# end: the trigger's test costs them next to nothing), and makes sure no
# JSON function ever sees data that is not JSON.
_RUN_END = (
    "{row}.kind IN ('finished', 'failed', 'checking') AND {row}.data IS NOT NULL "
    "AND CASE WHEN instr({row}.data, '\"run\"') = 0 THEN 0 "
    "WHEN json_valid({row}.data) THEN json_extract({row}.data, '$.run') IS NOT NULL ELSE 0 END"
)
# What a run's end reported, each figure 0 where it is missing or no number.
_USAGE_EXPRESSIONS = {
    "cost": "coalesce(CAST(json_extract({row}.data, '$.cost_usd') AS REAL), 0)",
    "tokens_in": "coalesce(CAST(json_extract({row}.data, '$.input_tokens') AS INTEGER), 0)",
    "tokens_out": "coalesce(CAST(json_extract({row}.data, '$.output_tokens') AS INTEGER), 0)",
    "turns": "coalesce(CAST(json_extract({row}.data, '$.turns') AS INTEGER), 0)",
}
_USAGE_VALUES = ", ".join(_USAGE_EXPRESSIONS.values())
_USAGE_FIGURES = ", ".join(f"{value} AS {name}" for name, value in _USAGE_EXPRESSIONS.items())

_V12_STATEMENTS = (
    # A task's events, in order. Partial: the events of no task (mail, notes
    # on the whole base) are never looked up by task, so they cost no entry.
    # It costs every event an index entry (the write cost is measured in
    # benchmarks/bench_event_index.py and the README); at 1,000,000 events
    # a task's history was a 60 ms scan, and grows with the log.
    "CREATE INDEX idx_events_task ON events(task_id, id) WHERE task_id IS NOT NULL",
    # What the runs that ended cost, per quarter hour (bucket: at // 900,
    # so that a day's start in any time zone falls on a bucket's edge):
    # the totals and today's figures read a few thousand rows instead of
    # extracting JSON from every run's end (0.3 s at 1,000,000 events).
    # Kept by a trigger on the events themselves, so every writer keeps it
    # and it can never disagree with them; retention never deletes a run's
    # end. Not STRICT, and every figure CAST: whatever an agent reported,
    # the trigger never refuses the event that carries it.
    """CREATE TABLE usage_buckets (
        bucket INTEGER PRIMARY KEY,
        runs INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        turns INTEGER NOT NULL
    )""",
    f"""INSERT INTO usage_buckets (bucket, runs, cost_usd, input_tokens, output_tokens, turns)
        SELECT CAST(at / 900 AS INTEGER), count(*), total(cost), total(tokens_in), total(tokens_out), total(turns)
        FROM (SELECT at, {_USAGE_FIGURES.format(row="events")} FROM events
              WHERE {_RUN_END.format(row="events")})
        GROUP BY 1""",
    f"""CREATE TRIGGER events_usage AFTER INSERT ON events
        WHEN {_RUN_END.format(row="NEW")}
        BEGIN
            INSERT INTO usage_buckets (bucket, runs, cost_usd, input_tokens, output_tokens, turns)
            VALUES (CAST(NEW.at / 900 AS INTEGER), 1, {_USAGE_VALUES.format(row="NEW")})
            ON CONFLICT (bucket) DO UPDATE SET
                runs = runs + 1, cost_usd = cost_usd + excluded.cost_usd,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                turns = turns + excluded.turns;
        END""",
    # The history stays append-only, but for progress lines: they are what
    # an agent reported while it worked (a line a second, most of the log),
    # their run's transcript keeps them whole in the run folder, and the
    # run's end event keeps its summary. Retention deletes old ones; no
    # transition, note, message, QA result or operator action can be
    # deleted, and nothing can be rewritten.
    "DROP TRIGGER events_append_only_delete",
    "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
    "WHEN OLD.kind <> 'progress' "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
)


def _v13(conn: sqlite3.Connection) -> None:
    """The plan in the console's order (by state, then priority, then id)
    as an index: the first look at a big base (backends/feed.py) counts
    each state and reads its first rows as index ranges, where it scanned
    the tasks (and sorted each state's) before."""
    conn.execute("CREATE INDEX idx_tasks_plan ON tasks(state, priority DESC, seq)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11, _v12, _v13,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


# A file system with less room than this is full as far as SQLite goes: it
# grows the -shm file by 32 KiB and the log by pages.
_FULL_BELOW_BYTES = 64 * 1024


def _storage_problem(path: Path) -> str | None:
    """``"full"`` or ``"read-only"`` if the folder holding the log is, else
    None. SQLite reports either as a mere "disk I/O error" or "unable to
    open database file" when it fails to make its -shm file."""
    folder = path.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return "read-only"
    if stat.f_bavail * stat.f_frsize < _FULL_BELOW_BYTES:
        return "full"
    # Permission bits (root passes these checks, whatever the bits say).
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "read-only"
    return None


def _read_only(path: Path) -> LogReadOnly:
    return LogReadOnly(
        f"the log {path} is read-only (its file or file system cannot be written "
        "here); nothing was changed"
    )


def _disk_full(path: Path) -> LogDiskFull:
    return LogDiskFull(
        f"the disk holding {path} is full; free some space and try again "
        "(nothing was written)"
    )


def describe_sqlite_error(path: Path, error: sqlite3.Error) -> LogError:
    """Turn an sqlite3 error into the one line a user should read."""
    text = str(error)
    # The primary result code: extended codes keep it in their low byte.
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    ):
        return LogBusy(
            f"the log {path} is locked by another writer; try again in a moment"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or (
        isinstance(error, sqlite3.DatabaseError)
        and ("not a database" in text or "malformed" in text or "corrupt" in text)
    ):
        return LogCorrupt(f"the log {path} is not a readable SQLite database ({text})")
    if code == sqlite3.SQLITE_FULL:
        return _disk_full(path)
    if code in (
        sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_PERM,
    ):
        problem = _storage_problem(path)
        if problem == "full":
            return _disk_full(path)
        if problem == "read-only" or code == sqlite3.SQLITE_READONLY:
            return _read_only(path)
    return LogError(f"the log {path} cannot be used: {text}")


# What SQLite hands a Python function, and takes back from it.
SqliteValue = str | bytes | int | float | None


def _py_lower(text: SqliteValue) -> SqliteValue:
    return text.lower() if isinstance(text, str) else text


def _uri(path: Path, **query: str) -> str:
    # A URI, so that mode=rw never creates a file (a plain path would make
    # an empty one if the log vanished after it was looked for).
    return Path(os.path.abspath(path)).as_uri() + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def _connect(uri: str, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False,
        timeout=busy_timeout_ms / 1000,
    )
    # SQLite's own lower() folds ASCII only; the log filter's SQL side must
    # fold case exactly as its Python side (str.lower) does.
    conn.create_function("py_lower", 1, _py_lower, deterministic=True)
    return conn


def _first_read(conn: sqlite3.Connection) -> int:
    """The schema version; reading it (and the schema) is where SQLite
    finds out whether the file is a database it can read."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return version


def _open_read_only(path: Path, busy_timeout_ms: int) -> tuple[sqlite3.Connection, int] | None:
    """A read-only connection to a log that cannot be written, or None.

    Reading a WAL log needs its -shm file; where it cannot be made (a
    read-only mount, a full disk) and no -wal holds commits beyond the main
    file, the main file alone is the whole log: SQLite reads it as
    immutable. Every write on such a connection fails as read-only."""
    attempts = [{"mode": "ro"}]
    wal = Path(f"{path}-wal")
    try:
        if not wal.exists() or wal.stat().st_size == 0:
            attempts.append({"mode": "ro", "immutable": "1"})
    except OSError:
        pass
    for query in attempts:
        try:
            conn = _connect(_uri(path, **query), busy_timeout_ms)
        except sqlite3.Error:
            continue
        try:
            return conn, _first_read(conn)
        except sqlite3.Error:
            conn.close()
    return None


def _create_log(path: Path, busy_timeout_ms: int) -> None:
    """Make a new, current log at ``path`` unless a file is there by then.

    It is built under a temporary name, readable by its owner only (SQLite
    gives the -wal and -shm files the same mode), and linked into place
    whole: no other process ever sees a half-made log, and a file that
    appeared meanwhile is never replaced."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise _os_error(path, error) from None
    try:
        conn = _connect(_uri(temporary, mode="rw"), busy_timeout_ms)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn)
        finally:
            conn.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made the log meanwhile: that one is used
        except OSError:
            # A file system without hard links.
            if not path.exists():
                os.replace(temporary, path)
    except sqlite3.Error as error:
        raise describe_sqlite_error(path, error) from None
    except OSError as error:
        raise _os_error(path, error) from None
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass  # a read-only or vanished folder: nothing to clean


def _os_error(path: Path, error: OSError) -> LogError:
    if error.errno == errno.ENOSPC:
        return _disk_full(path)
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return _read_only(path)
    return LogError(f"the log {path} cannot be created: {error.strerror or error}")


def open_connection(
    path: Path, *, create: bool = False, busy_timeout_ms: int | None = None,
    synchronous: str = DEFAULT_SYNCHRONOUS,
) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL,
    ``synchronous`` as asked (``"normal"`` or ``"full"``, see SYNCHRONOUS),
    a busy timeout, and the schema brought current.

    A log that cannot be written is opened read-only if SQLite can read it:
    reads work, and a write fails with LogReadOnly or LogDiskFull."""
    path = Path(path)
    if busy_timeout_ms is None:
        busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}")
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    if not path.exists():
        if not create:
            raise LogError(f"no execution log at {path} (run `factory init` first)")
        _create_log(path, busy_timeout_ms)
    elif size == 0:
        # SQLite would take an empty file for a new database and write a log
        # into it; an empty log.db is a log that was lost, not a new one.
        raise LogCorrupt(
            f"the log {path} is not a readable SQLite database (the file is empty); "
            "it was left as it is"
        )
    writable = True
    try:
        conn = _connect(_uri(path, mode="rw"), busy_timeout_ms)
    except sqlite3.Error as error:
        raise describe_sqlite_error(path, error) from None
    try:
        # Read before writing anything: a corrupt or newer file must be left
        # exactly as it is.
        try:
            version = _first_read(conn)
        except sqlite3.OperationalError as error:
            if _storage_problem(path) is None:
                raise
            conn.close()
            opened = _open_read_only(path, busy_timeout_ms)
            if opened is None:
                raise describe_sqlite_error(path, error) from None
            conn, version = opened
            writable = False
        if version > SCHEMA_VERSION:
            raise LogTooNew(
                f"the log {path} has schema version {version}, but this "
                f"factory-tui reads up to {SCHEMA_VERSION}; upgrade factory-tui "
                "(the log was not changed)"
            )
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not writable:
            if version < SCHEMA_VERSION:
                raise LogReadOnly(
                    f"the log {path} is read-only, and this factory-tui needs it at "
                    f"schema version {SCHEMA_VERSION}, not {version}; open it once "
                    "where it can be written"
                )
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[synchronous]}")
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
