"""A base like the work after weeks of agents: 100,000 tasks, 1,000,000
events, a few hundred worktrees.

    python benchmarks/big_base.py [--tasks 100000] [--events 1000000]
                                  [--worktrees 300] [--cache DIR] [--rebuild]

prints where the base is and how long it took (built, or found in the cache).
Other benchmarks call ``build_big_base(path, tasks=…, events=…, worktrees=…)``
or ``cached_big_base(…)``.

What the base holds (sizes scale with the arguments):

* a real git repository (a small project on ``main``) with ``factory init``
  done and committed;
* tasks in every state. About 70% are done (landed: ``approved`` event and a
  row in the session history), most of the rest queued, and most queued tasks
  are blocked: they sit in chains of ten behind a task that is not done
  (running, in review, failed, held, proposed), at high priority, so that
  a claim meets blocked tasks first; one chain in twenty starts ready, at
  low priority. Some tasks are proposed, held or cancelled;
* as many tasks running, checking, in review or failed as there are
  worktrees: each has its branch ``factory/T-n`` with a commit of its own and
  a real worktree in ``.factory/worktrees/T-n`` (``git worktree list`` and
  ``git status`` work in it);
* the events an engine writes, interleaved in time over sixty days as
  parallel agents write them: ``created`` and ``depends`` for the plan, then
  per run ``claimed``, ``progress`` lines (most of the log: what agents
  report, a line a second at most, a few of them long tool outputs), the
  run's end (``finished``, ``checking`` with QA rows and ``qa`` events and
  ``passed``, ``failed``), ``approved`` for a landing, a second attempt for
  some (``failed``, ``requeued``, ``claimed`` …), notes, and mail and base
  notes that belong to no task. Run ends carry what the engine's do (run
  folder, cost, tokens, turns) so that usage figures count them. The event
  count is exactly ``events`` (progress fills what the rest leaves).

How it is built fast: the log is written with plain ``executemany`` into a
file made at schema version 10 (``BUILT_AT``) with the journal off, and then
opened through ``ExecutionLog``, which migrates it to the current version as
it would any older base (a later migration's derived columns or indexes are
computed there, as for a user's base). Branches come from one ``git
fast-import``; worktrees are made with plumbing (their administrative
folder written directly, then one ``git read-tree -u`` each to fill the
index and the files), which is what ``git worktree add`` does, less its
checks. The run folders (``.factory/runs``) are not made: no run index.

The cache: a folder per builder version, schema (its version and a digest
of schema.py) and sizes, under
``<temp dir>/factory-big-base`` (or ``--cache DIR``); a complete base has a
``.complete`` marker. A lock file keeps two processes from building the same
base at once; the second waits and uses the first one's.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.backends.schema import MIGRATIONS, SCHEMA_VERSION  # noqa: E402

# Bump when what the builder makes changes: cached bases of an older
# version are then built again.
BUILDER_VERSION = 1
# The schema the rows are written in. Opening the log afterwards migrates it
# forward like any user's older base.
BUILT_AT = 10
# Sixty days of history, ending an hour before the build.
SPAN_SECONDS = 60 * 86400
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

MODULES = ["api", "cli", "schema", "docs", "tests", "engine", "console", "mail", "qa", "plan"]
VERBS = ["Fix", "Add", "Refactor", "Document", "Speed up", "Test"]
TOOLS = [
    "⚙ Bash: pytest -q tests/test_{m}.py",
    "✎ Edit: src/{m}/core.py",
    "📖 Read: src/{m}/__init__.py",
    "⚙ Bash: git diff --stat",
    "🔍 Grep: def handle_{m}",
    "Looking at how {m} handles an empty input before changing it.",
    "The tests for {m} pass; checking the edge cases next.",
    "✎ Write: tests/test_{m}_edge.py",
]
LONG_OUTPUT = (
    "⚙ Bash: pytest -q → ....................F.....................\n"
    "FAILED tests/test_{m}.py::test_round_trip - AssertionError: assert {{'a': 1}} == {{'a': 2}}\n"
    + "  E   full diff: " + "x" * 400
)


def cache_key(tasks: int, events: int, worktrees: int) -> str:
    # The schema's version and a digest of its migrations' code: branches
    # that number their migrations alike but differ never share a base.
    from factory_tui.backends import schema

    digest = hashlib.sha256(Path(schema.__file__).read_bytes()).hexdigest()[:8]
    return f"b{BUILDER_VERSION}-s{SCHEMA_VERSION}.{digest}-{tasks}t-{events}e-{worktrees}w"


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "factory-big-base"


def cached_big_base(
    *, tasks: int = 100_000, events: int = 1_000_000, worktrees: int = 300,
    cache: Path | None = None, rebuild: bool = False, quiet: bool = False,
) -> Path:
    """The base for these sizes from the cache, built there if missing."""
    folder = Path(cache) if cache is not None else default_cache()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / cache_key(tasks, events, worktrees)
    with _locked(folder / f"{path.name}.lock"):
        if (path / ".complete").exists() and not rebuild:
            if not quiet:
                print(f"big base (cached): {path}", flush=True)
            return path
        return build_big_base(path, tasks=tasks, events=events, worktrees=worktrees, quiet=quiet)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_big_base(
    path: Path, *, tasks: int = 100_000, events: int = 1_000_000, worktrees: int = 300,
    quiet: bool = False, seed: int = 11,
) -> Path:
    """Make the base at ``path`` (anything there is replaced) and return the
    repository's root. Prints how long it took unless ``quiet``."""
    path = Path(path).resolve()
    if worktrees > tasks // 4:
        raise ValueError(f"{worktrees} worktrees need at least {4 * worktrees} tasks")
    if events < 3 * tasks:
        raise ValueError(f"{tasks} tasks need at least {3 * tasks} events")
    started = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    env = {**os.environ, **GIT_ENV}
    main_sha = _make_repository(path, env)
    base, _ = FactoryBase.init(path, name="big")
    _git(path, env, "add", ".factory")
    _git(path, env, "commit", "-q", "-m", "factory init")
    main_sha = _git(path, env, "rev-parse", "HEAD").strip()
    plan = Plan(tasks=tasks, events=events, worktrees=worktrees, seed=seed, now=time.time())
    for leftover in (base.log_path, Path(f"{base.log_path}-wal"), Path(f"{base.log_path}-shm")):
        leftover.unlink(missing_ok=True)
    _write_log(base.log_path, plan)
    logged = time.perf_counter()
    # Through the product: the log is migrated to the current schema here.
    ExecutionLog.open(base.log_path).close()
    migrated = time.perf_counter()
    _make_worktrees(path, env, main_sha, plan.worktree_tasks)
    (path / ".complete").write_text(json.dumps({
        "tasks": tasks, "events": events, "worktrees": worktrees,
        "builder": BUILDER_VERSION, "schema": SCHEMA_VERSION,
    }))
    if not quiet:
        done = time.perf_counter()
        print(
            f"big base: {tasks:,} tasks, {events:,} events, {worktrees} worktrees in {done - started:.1f} s "
            f"(log {logged - started:.1f} s, migration {migrated - logged:.1f} s, "
            f"worktrees {done - migrated:.1f} s): {path}",
            flush=True,
        )
    return path


def _git(repo: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True, input=stdin,
    ).stdout


def _make_repository(path: Path, env: dict[str, str]) -> str:
    _git(path, env, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# big\n\nA project with many modules.\n")
    for module in MODULES:
        folder = path / "src" / module
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text(f'"""The {module} module."""\n')
        (folder / "core.py").write_text(f"def handle_{module}(value):\n    return value\n")
    (path / "tests").mkdir()
    for module in MODULES:
        (path / "tests" / f"test_{module}.py").write_text(f"def test_{module}():\n    assert True\n")
    _git(path, env, "add", ".")
    _git(path, env, "commit", "-q", "-m", "start")
    return _git(path, env, "rev-parse", "HEAD").strip()


class Plan:
    """Which task is in which state, what it waits for, and every event,
    drawn from a seeded random generator: the same sizes give the same base."""

    def __init__(self, *, tasks: int, events: int, worktrees: int, seed: int, now: float) -> None:
        self.rng = random.Random(seed)
        self.n = tasks
        self.events_wanted = events
        self.end = now - 3600
        self.start = self.end - SPAN_SECONDS
        self._states(worktrees)
        self._dependencies()

    # --- states --------------------------------------------------------------

    def _states(self, worktrees: int) -> None:
        n, rng = self.n, self.rng
        running = max(1, worktrees * 3 // 100)
        checking = max(1, worktrees // 100)
        review = max(1, worktrees // 2)
        failed = max(1, worktrees - running - checking - review)
        # The oldest 70% are history: done, a few cancelled.
        history = int(n * 0.70)
        states = ["cancelled" if seq % 50 == 0 else "done" for seq in range(1, history + 1)]
        tail = n - history
        counts = {
            "running": running, "checking": checking, "review": review, "failed": failed,
            "proposed": max(1, n // 50), "held": max(1, n // 100), "cancelled": max(1, n // 100),
        }
        rest = tail - sum(counts.values())
        if rest < 10:
            raise ValueError(f"{n} tasks are too few for {worktrees} worktrees")
        pool = [state for state, count in counts.items() for _ in range(count)] + ["queued"] * rest
        rng.shuffle(pool)
        states.extend(pool)
        self.states = states  # index seq - 1
        self.worktree_tasks = [
            seq for seq, state in enumerate(states, 1) if state in ("running", "checking", "review", "failed")
        ]

    def _dependencies(self) -> None:
        """Done tasks each wait for an earlier done task now and then; queued
        tasks sit in chains of ten, each chain behind a task that is not done
        (blocked), one chain in twenty starting ready."""
        rng, states = self.rng, self.states
        edges: list[tuple[int, int]] = []
        done = [seq for seq, state in enumerate(states, 1) if state == "done"]
        for index, seq in enumerate(done):
            if index > 10 and rng.random() < 0.3:
                edges.append((seq, done[index - rng.randint(1, 10)]))
        blockers = [
            seq for seq, state in enumerate(states, 1)
            if state in ("running", "checking", "review", "failed", "held", "proposed")
        ]
        queued = [seq for seq, state in enumerate(states, 1) if state == "queued"]
        self.priority = [rng.randint(0, 2) for _ in states]
        self.ready_heads = 0
        for start in range(0, len(queued), 10):
            chain = queued[start : start + 10]
            if (start // 10) % 20 == 0:
                self.ready_heads += 1
                self.priority[chain[0] - 1] = rng.randint(0, 1)
            else:
                edges.append((chain[0], rng.choice(blockers)))
                self.priority[chain[0] - 1] = rng.randint(3, 4)
            for before, after in zip(chain, chain[1:], strict=False):
                edges.append((after, before))
                self.priority[after - 1] = rng.randint(3, 4)
        self.edges = edges

    # --- rows ----------------------------------------------------------------

    def task_rows(self) -> list[tuple]:
        rows = []
        for seq, state in enumerate(self.states, 1):
            module = MODULES[seq % len(MODULES)]
            verb = VERBS[seq % len(VERBS)]
            created = self.start + (seq / self.n) * SPAN_SECONDS * 0.9
            attempts = self.attempts.get(seq, 0)
            started = self.run_start.get(seq)
            lease = worker = expires = secret = None
            if state in ("running", "checking"):
                lease = f"T-{seq}:{seq:016x}"
                worker = "engine:big-1"
                # The engine that held these leases is gone: a new one reaps
                # them (the base as a crashed machine leaves it).
                expires = self.end - 60
                secret = f"{seq:064x}"
            labels = json.dumps([module]) if seq % 3 == 0 else None
            rows.append((
                seq, f"{verb} the {module} module (part {seq})", state, self.priority[seq - 1], attempts,
                "claude" if seq % 4 else "codex", "import:plan.md" if seq < self.n // 2 else None,
                None, created, self.updated.get(seq, created), lease, worker, expires,
                started if state in ("running", "checking") else None,
                self.last_progress.get(seq) if state in ("running", "checking") else None,
                secret, "0" * 40 if attempts else None, 0, None, labels,
            ))
        return rows

    def events(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """(events sorted by time, qa_runs rows, landings rows)."""
        rng = self.rng
        n = self.n
        out: list[tuple] = []
        qa_rows: list[tuple] = []
        landings: list[tuple] = []
        self.attempts: dict[int, int] = {}
        self.run_start: dict[int, float] = {}
        self.updated: dict[int, float] = {}
        self.last_progress: dict[int, str] = {}
        created_at = [self.start + (seq / n) * SPAN_SECONDS * 0.9 for seq in range(1, n + 1)]
        for seq in range(1, n + 1):
            out.append((created_at[seq - 1], f"T-{seq}", "created", "import", None,
                        "proposed" if self.states[seq - 1] == "proposed" else "queued",
                        f"Task {seq}", json.dumps({"source": "import:plan.md"}) if seq < n // 2 else None))
        for task, on in self.edges:
            at = max(created_at[task - 1], created_at[on - 1])
            out.append((at, f"T-{task}", "depends", "import", None, None, f"depends on T-{on}",
                        f'{{"on": "T-{on}"}}'))
        # Runs: each task that ran, its events but its progress; progress
        # is shared out afterwards to fill the count.
        runs: list[tuple[int, float, float, int]] = []  # (seq, start, end, insert position)
        for seq, state in enumerate(self.states, 1):
            if state in ("done", "review", "failed", "checking", "running") or (
                state == "cancelled" and seq % 3 == 0
            ):
                begin = created_at[seq - 1] + rng.uniform(600, 86400 * 3)
                if state in ("running", "checking", "review", "failed"):
                    begin = self.end - rng.uniform(600, 86400)
                begin = min(begin, self.end - 600)
                twice = state == "done" and seq % 10 == 0
                at = begin
                for attempt in (1, 2) if twice else (1,):
                    length = rng.uniform(120, 1800)
                    last = state == "running" or (state == "checking" and attempt == 1)
                    if state == "running":
                        length = self.end - at
                    token = f"T-{seq}:{attempt:04x}{seq:012x}"
                    out.append((at, f"T-{seq}", "claimed", "engine:big-1", "queued", "running",
                                f"attempt {attempt}", json.dumps({"lease": token})))
                    runs.append((seq, at, at + length, len(out)))
                    self.run_start[seq] = at
                    at += length
                    if last and state == "running":
                        break
                    figures = {
                        "run": f".factory/runs/T-{seq}/{attempt}", "lease": token,
                        "cost_usd": round(rng.uniform(0.05, 2.5), 4),
                        "input_tokens": rng.randint(10_000, 400_000), "output_tokens": rng.randint(1000, 40_000),
                        "turns": rng.randint(5, 80), "summary": f"Changed the {MODULES[seq % 10]} module; tests pass.",
                    }
                    if twice and attempt == 1:
                        out.append((at, f"T-{seq}", "failed", "engine:big-1", "running", "failed",
                                    "the agent exited with status 1",
                                    json.dumps({**figures, "failure": "exit", "exit_code": 1})))
                        at += rng.uniform(60, 3600)
                        out.append((at, f"T-{seq}", "requeued", "console:op", "failed", "queued",
                                    "the tests for the edge case fail; fix them", None))
                        at += rng.uniform(10, 600)
                        continue
                    if state == "failed":
                        out.append((at, f"T-{seq}", "failed", "engine:big-1", "running", "failed",
                                    "the agent finished without changing anything",
                                    json.dumps({**figures, "failure": "no-work"})))
                        break
                    gated = state == "checking" or seq % 3 == 0
                    if gated:
                        out.append((at, f"T-{seq}", "checking", "engine:big-1", "running", "checking",
                                    "agent finished; QA checks it", json.dumps(figures)))
                        if state == "checking":
                            break
                        at += rng.uniform(5, 120)
                        qa_id = len(qa_rows) + 1
                        qa_rows.append((qa_id, at, f"T-{seq}", attempt, "tests", "abc123", "test", "required",
                                        "pass", None, "1" * 40, "0" * 40, 12.5, 1, None, None, None,
                                        "120 passed", None, "engine:big-1"))
                        out.append((at, f"T-{seq}", "qa", "engine:big-1", None, None, "tests: pass",
                                    json.dumps({"qa_run": qa_id, "scenario": "tests", "verdict": "pass",
                                                "gate": "required", "output": "120 passed"})))
                        out.append((at, f"T-{seq}", "passed", "engine:big-1", "checking", "review",
                                    "required QA passed", json.dumps({"lease": token})))
                    else:
                        out.append((at, f"T-{seq}", "finished", "engine:big-1", "running", "review",
                                    "agent finished", json.dumps(figures)))
                    if state == "done":
                        at += rng.uniform(60, 86400)
                        at = min(at, self.end)
                        out.append((at, f"T-{seq}", "approved", "console:op", "review", "done", None,
                                    json.dumps({"merge": "2" * 40})))
                        landings.append((f"T-{seq}", f"Task {seq}", at, "console:op", "claude", "claude",
                                         attempt, None, figures["cost_usd"], figures["input_tokens"],
                                         figures["output_tokens"], figures["summary"], "2" * 40, 0))
                    elif state == "cancelled":
                        at += rng.uniform(60, 86400)
                        at = min(at, self.end)
                        out.append((at, f"T-{seq}", "cancelled", "console:op", "review", "cancelled",
                                    "not needed after all", None))
                self.attempts[seq] = 2 if twice else 1
                self.updated[seq] = at
        # Notes, held, and what belongs to no task: mail, base notes.
        for seq, state in enumerate(self.states, 1):
            if state == "held":
                at = created_at[seq - 1] + rng.uniform(60, 86400)
                out.append((at, f"T-{seq}", "held", "console:op", "queued", "held", None, None))
                self.updated[seq] = at
            if seq % 7 == 0:
                at = created_at[seq - 1] + rng.uniform(60, 86400 * 5)
                out.append((min(at, self.end), f"T-{seq}", "note", f"agent:T-{seq}",
                            None, None, "found a second caller of this function; left it alone", None))
        for number in range(max(1, n // 100)):
            at = self.start + rng.uniform(0, SPAN_SECONDS)
            if number % 2:
                out.append((at, None, "mail_received", "mail", None, None,
                            f"from upstream: question {number}", json.dumps({"key": f"m-{number}"})))
            else:
                out.append((at, None, "note", "console:op", None, None, f"base note {number}", None))
        self._progress(out, runs)
        out.sort(key=lambda row: row[0])
        return out, qa_rows, landings

    def _progress(self, out: list[tuple], runs: list[tuple[int, float, float, int]]) -> None:
        """Fill the log to exactly the events wanted with progress lines, a
        run's lines spread over its length (at most one a second)."""
        rng = self.rng
        missing = self.events_wanted - len(out)
        if missing < 0:
            raise ValueError(f"{self.events_wanted} events are too few for this plan ({len(out)} needed)")
        if not runs:
            return
        weights = [rng.uniform(0.2, 1.8) for _ in runs]
        total = sum(weights)
        shares = [int(missing * weight / total) for weight in weights]
        for index in range(missing - sum(shares)):
            shares[index % len(shares)] += 1
        for (seq, begin, end, _), share in zip(runs, shares, strict=True):
            if not share:
                continue
            module = MODULES[seq % len(MODULES)]
            step = max((end - begin) / (share + 1), 1.0)
            actor = "engine:big-1"
            for k in range(share):
                at = begin + step * (k + 1)
                if rng.random() < 0.02:
                    note = LONG_OUTPUT.format(m=module)
                else:
                    note = TOOLS[(seq + k) % len(TOOLS)].format(m=module)
                out.append((at, f"T-{seq}", "progress", actor, None, None, note, None))
            self.last_progress[seq] = note


def _write_log(log_path: Path, plan: Plan) -> None:
    events, qa_rows, landings = plan.events()
    conn = sqlite3.connect(log_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for migrate in MIGRATIONS[:BUILT_AT]:
            migrate(conn)
        conn.execute(f"PRAGMA user_version={BUILT_AT}")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO tasks (seq, title, state, priority, attempts, profile, source, feedback, created_at, "
            "updated_at, lease_token, lease_worker, lease_expires, started_at, progress, run_secret, "
            "branch_start, qa_rounds, checked_commit, labels) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            plan.task_rows(),
        )
        conn.executemany(
            "INSERT INTO task_bodies (seq, body) VALUES (?, ?)",
            ((seq, f"## Goal\n\nChange the module so that part {seq} works.\n\n- keep the API\n- add a test\n")
             for seq in range(1, plan.n + 1) if seq % 2),
        )
        conn.executemany("INSERT INTO deps (task, depends_on) VALUES (?, ?)", plan.edges)
        conn.executemany(
            "INSERT INTO events (at, task_id, kind, actor, from_state, to_state, note, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        conn.executemany(
            "INSERT INTO qa_runs (id, at, task_id, attempt, scenario, version, kind, gate, verdict, reason, "
            "commit_sha, base_commit, duration, attempts, cost_usd, input_tokens, output_tokens, output, tests, "
            "actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            qa_rows,
        )
        conn.executemany(
            "INSERT INTO landings (task_id, title, at, actor, profile, agent, attempts, qa, cost_usd, "
            "input_tokens, output_tokens, last_words, commit_sha, refresh) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            landings,
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    os.chmod(log_path, 0o600)


def _make_worktrees(repo: Path, env: dict[str, str], main_sha: str, seqs: list[int]) -> None:
    """A branch with a commit of its own and a worktree per task in ``seqs``."""
    if not seqs:
        return
    # One fast-import for every branch: each gets a commit on main that
    # changes one file.
    stream = []
    for mark, seq in enumerate(seqs, 1):
        content = f"# work of T-{seq}\nVALUE = {seq}\n"
        message = f"T-{seq}: work in progress"
        stream.append(
            f"commit refs/heads/factory/T-{seq}\nmark :{mark}\n"
            f"committer bench <bench@example.invalid> 1790000000 +0000\n"
            f"data {len(message.encode())}\n{message}\n"
            f"from {main_sha}\n"
            f"M 100644 inline src/work_T{seq}.py\ndata {len(content.encode())}\n{content}\n"
        )
    _git(repo, env, "fast-import", "--quiet", stdin="".join(stream))
    git_dir = repo / ".git"
    worktrees_dir = repo / ".factory" / "worktrees"

    def make(seq: int) -> None:
        name = f"T-{seq}"
        folder = worktrees_dir / name
        admin = git_dir / "worktrees" / name
        folder.mkdir(parents=True)
        admin.mkdir(parents=True)
        (admin / "HEAD").write_text(f"ref: refs/heads/factory/{name}\n")
        (admin / "commondir").write_text("../..\n")
        (admin / "gitdir").write_text(f"{folder / '.git'}\n")
        (folder / ".git").write_text(f"gitdir: {admin}\n")
        subprocess.run(
            ["git", "read-tree", "-u", "--reset", "HEAD"], cwd=folder, env=env, check=True,
            capture_output=True,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(make, seqs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--worktrees", type=int, default=300)
    parser.add_argument("--cache", type=Path, default=None, help="the cache folder (default: under the temp dir)")
    parser.add_argument("--rebuild", action="store_true", help="build again even if cached")
    args = parser.parse_args(argv)
    cached_big_base(tasks=args.tasks, events=args.events, worktrees=args.worktrees,
                    cache=args.cache, rebuild=args.rebuild)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
