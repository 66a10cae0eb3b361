"""A big base for the benchmarks: by default 100,000 tasks, 1,000,000 events
and 300 worktrees, the normal life of a base after weeks of agents writing
progress.

    build_big_base(path, tasks=100_000, events=1_000_000, worktrees=300) -> Path

It returns the repository's root. What it makes: a git repository with a
base (``factory init``), tasks in every state (most done; queued ones in
blocked chains of ten; some held, proposed, in review, failed, cancelled,
running with an expired lease), their events (created, depends, the
transitions of each finished task, and progress notes to make up the
count), and one git worktree on its task branch per task in review, failed
or waiting with kept work. The log is written in bulk with SQL in one
transaction (the ExecutionLog's API writes a transaction per change: a
million of them take minutes); the worktrees are made by git itself.

Cached: a finished base is marked with the sizes it was built with and
reused while they match; anything else at ``path`` is replaced.

(A minimal builder with the same signature as the one on perf/bigbase; the
lead keeps that one at merge.)
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402

VERBS = ("fix", "add", "refactor", "document", "test", "speed up")
PARTS = ("api", "cli", "schema", "docs", "tests", "parser", "cache", "engine")
PROGRESS = (
    "Read src/{part}.py and its tests",
    "Running the tests: 124 passed, 2 failed",
    "Edit src/{part}.py: handle the empty case",
    "Bash: pytest -q tests/test_{part}.py",
    "The failing test expects a sorted list; sorting before the return",
)


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _states(tasks: int, worktrees: int) -> list[str]:
    """Each task's state, by seq: most done, the newest waiting or at work."""
    rng = random.Random(11)
    states = ["done"] * tasks
    tail = min(tasks, max(worktrees * 2, tasks // 5))
    start = tasks - tail
    for seq in range(start, tasks):
        states[seq] = rng.choices(
            ("queued", "held", "proposed", "review", "failed", "cancelled", "running", "checking", "done"),
            weights=(55, 5, 5, 10, 5, 5, 1, 1, 13),
        )[0]
    return states


def build_big_base(path: Path, *, tasks: int = 100_000, events: int = 1_000_000, worktrees: int = 300) -> Path:
    """The base at ``path`` (built once for these sizes): its root."""
    path = Path(path)
    marker = path / ".factory" / "big-base.json"
    wanted = {"tasks": tasks, "events": events, "worktrees": worktrees}
    try:
        if json.loads(marker.read_text()) == wanted:
            return path
    except (OSError, ValueError):
        pass
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    started = time.monotonic()
    _git("init", "-q", "-b", "main", cwd=path)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.invalid"), ("commit.gpgsign", "false")):
        _git("config", key, value, cwd=path)
    (path / "README.md").write_text("# big\n", encoding="utf-8")
    _git("add", "README.md", cwd=path)
    _git("commit", "-q", "-m", "start", cwd=path)
    base, _ = FactoryBase.init(path, name="big")
    ExecutionLog.open(base.log_path).close()  # the schema

    states = _states(tasks, worktrees)
    now = time.time()
    first = now - 30 * 86400
    step = (now - first) / max(1, events)
    conn = sqlite3.connect(base.log_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    task_rows = []
    for n, state in enumerate(states):
        seq = n + 1
        title = f"Task {seq}: {VERBS[seq % len(VERBS)]} the {PARTS[seq % len(PARTS)]} module"
        attempts = 0 if state in ("queued", "held", "proposed") else 1
        task_rows.append((seq, title, state, seq % 5, attempts, first + n * step * 8, now - (tasks - n) * 3,
                          f"T-{seq}:expired" if state in ("running", "checking") else None,
                          "engine:gone" if state in ("running", "checking") else None,
                          now - 3600 if state in ("running", "checking") else None))
    conn.executemany(
        "INSERT INTO tasks (seq, title, state, priority, attempts, created_at, updated_at, "
        "lease_token, lease_worker, lease_expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        task_rows,
    )
    # Blocked chains: every queued task after the first of ten waits for the one before.
    deps = []
    queued = [n + 1 for n, state in enumerate(states) if state == "queued"]
    for i, seq in enumerate(queued):
        if i % 10:
            deps.append((seq, queued[i - 1]))
    conn.executemany("INSERT INTO deps (task, depends_on) VALUES (?, ?)", deps)

    sql = ("INSERT INTO events (id, at, task_id, kind, actor, from_state, to_state, note, data) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    event_id = 0

    def rows():
        nonlocal event_id
        for n in range(len(states)):
            seq = n + 1
            task = f"T-{seq}"
            event_id += 1
            yield (event_id, first + event_id * step, task, "created", "bench", None, "queued", task_rows[n][1], None)
        for task_seq, on in deps:
            event_id += 1
            yield (event_id, first + event_id * step, f"T-{task_seq}", "depends", "bench", None, None,
                   f"depends on T-{on}", json.dumps({"on": f"T-{on}"}))
        for n, state in enumerate(states):
            if state in ("queued", "held", "proposed"):
                continue
            task = f"T-{n + 1}"
            for kind, actor, before, after in (("claimed", "engine:bench", "queued", "running"),
                                               ("finished", "engine:bench", "running", "review"),
                                               ("approved", "console:bench", "review", "done")):
                if state in ("running", "checking") and kind != "claimed":
                    break
                if state in ("review", "failed", "cancelled") and kind == "approved":
                    kind, after = ("failed", "failed") if state == "failed" else (
                        ("cancelled", "cancelled") if state == "cancelled" else (kind, after))
                    if state == "review":
                        break
                event_id += 1
                data = json.dumps({"run": f"{task}/1", "cost_usd": 0.02, "input_tokens": 1200,
                                   "output_tokens": 300, "turns": 4}) if kind == "finished" else None
                yield (event_id, first + event_id * step, task, kind, actor, before, after, None, data)
        rng = random.Random(5)
        while event_id < events:
            event_id += 1
            seq = rng.randrange(1, tasks + 1)
            text = PROGRESS[event_id % len(PROGRESS)].format(part=PARTS[seq % len(PARTS)])
            yield (event_id, first + event_id * step, f"T-{seq}", "progress", "engine:bench", None, None, text, None)

    conn.executemany(sql, rows())
    conn.execute("COMMIT")
    conn.close()

    # Worktrees, one per task with work kept: newest first.
    with_work = [n + 1 for n, state in enumerate(states) if state in ("review", "failed", "running", "checking")]
    with_work += [n + 1 for n, state in enumerate(states) if state in ("queued", "held")]
    chosen = sorted(with_work[-worktrees:] if len(with_work) > worktrees else with_work)
    for seq in chosen[:worktrees]:
        where = base.worktrees_dir / f"T-{seq}"
        _git("worktree", "add", "-q", "-b", f"factory/T-{seq}", str(where), "main", cwd=path)
        (where / f"work-{seq}.txt").write_text(f"work of T-{seq}\n", encoding="utf-8")
        _git("add", "-A", cwd=where)
        _git("commit", "-q", "-m", f"work of T-{seq}", cwd=where)
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    print(f"built a base of {tasks:,} tasks, {events:,} events and {len(chosen)} worktrees "
          f"in {time.monotonic() - started:.1f} s at {path}", file=sys.stderr, flush=True)
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build (or find) the big benchmark base.")
    parser.add_argument("path", type=Path, nargs="?", default=ROOT / "benchmarks" / ".work" / "big-100k")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--worktrees", type=int, default=300)
    args = parser.parse_args()
    print(build_big_base(args.path, tasks=args.tasks, events=args.events, worktrees=args.worktrees))
