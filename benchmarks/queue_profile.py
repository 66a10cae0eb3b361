"""Where a queue item's time goes: the execution log's transitions one by one,
against huey's, and what each of the log's guarantees costs.

Run it as ``python benchmarks/queue_profile.py`` (``--help`` for options).
It prints figures, not a verdict; it is not a test. It needs huey
(benchmarks/requirements.txt).

Part 1, per transition (N items, each contender on a fresh file in /tmp, at
WAL and the synchronous given; CPU is this process's time, the minimum over
rounds; WAL pages are the frames each transition appends, checkpoints off):

    * ours:  add_task, claim_next, finish (3 transactions), and the worker's
             loop finish_and_claim_next (the finish of a task and the claim
             of the next in one);
    * huey:  enqueue, dequeue (which deletes the item).

    Also, for one transition of each kind: the statements it runs (as
    SQLite's trace sees them) and its VM steps (the progress handler at 1).

Part 2, what the guarantees cost: the same depth-1 loop (add_task,
claim_next, finish per item) through ExecutionLog on logs altered after
they were made, each step taking one more thing away:

    * as shipped;
    * without idx_events_task (the index that serves a task's history);
    * without the events' triggers (usage_buckets; the append-only guards
      fire on UPDATE and DELETE only, so this is the usage trigger);
    * without events at all (a BEFORE INSERT trigger drops each one:
      the statements still run, no row is written);
    * and huey's enqueue + dequeue beside them.

Nothing here is a setting of the product: the altered logs exist only to
show what each part of the write path costs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask, State

WORKER = "bench"


def wal_bytes(folder: str) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*-wal"))


def frames(byte_count: int, page_size: int = 4096) -> float:
    return byte_count / (page_size + 24)


class Counter:
    """Statements (trace) and VM steps (progress handler) of one call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.steps = 0
        self.statements: list[str] = []

    def count(self, call: Callable[[], object]) -> None:
        def step() -> int:
            self.steps += 1
            return 0

        seen: list[str] = []
        self.conn.set_progress_handler(step, 1)
        self.conn.set_trace_callback(seen.append)
        try:
            call()
        finally:
            self.conn.set_progress_handler(None, 1)
            self.conn.set_trace_callback(None)
        # The trace reports a statement again when it is stepped after a
        # reset; a statement is one line here.
        for sql in seen:
            line = " ".join(sql.split())
            if not self.statements or self.statements[-1] != line:
                self.statements.append(line)


def timed(figures: dict[str, list[float]], pages: dict[str, list[float]], folder: str, name: str,
          count: int, step: Callable[[int], object]) -> None:
    """``step(i)`` for i in range(count): CPU µs and WAL pages per call."""
    before, start = wal_bytes(folder), time.process_time()
    for i in range(count):
        step(i)
    figures.setdefault(name, []).append((time.process_time() - start) / count * 1e6)
    pages.setdefault(name, []).append(frames(wal_bytes(folder) - before) / count)


def ours_round(log: ExecutionLog, folder: str, n: int, cpu: dict, pages: dict) -> dict[str, Counter]:
    claims: list = []
    timed(cpu, pages, folder, "add_task", n, lambda i: log.add_task(NewTask(title=f"task {i}"), actor=WORKER))
    timed(cpu, pages, folder, "claim_next", n, lambda i: claims.append(log.claim_next(WORKER)))
    timed(cpu, pages, folder, "finish", n, lambda i: log.finish(claims[i].token, State.REVIEW))
    # The worker's loop: a backlog of n, worked through finish_and_claim_next.
    for i in range(n):
        log.add_task(NewTask(title=f"loop {i}"), actor=WORKER)
    held = [log.claim_next(WORKER)]

    def loop(_: int) -> None:
        held[0] = log.finish_and_claim_next(held[0].token, State.REVIEW, WORKER)[1]

    timed(cpu, pages, folder, "finish_and_claim_next", n - 1, loop)
    # One more of each, counted.
    log.add_tasks([NewTask(title="x"), NewTask(title="y")], actor=WORKER)
    counted = {name: Counter(log._conn) for name in cpu}
    counted["finish_and_claim_next"].count(lambda: loop(0))
    counted["add_task"].count(lambda: log.add_task(NewTask(title="z"), actor=WORKER))
    counted["claim_next"].count(lambda: claims.append(log.claim_next(WORKER)))
    counted["finish"].count(lambda: log.finish(claims[-1].token, State.REVIEW))
    return counted


def show(who: str, n: int, rounds: int, cpu: dict, pages: dict, counted: dict[str, Counter]) -> None:
    print(f"{who}, N={n}: CPU µs (min of {rounds}), WAL pages, VM steps, statements")
    for name in cpu:
        print(f"  {name:<22} {min(cpu[name]):7.1f} µs {statistics.median(pages[name]):6.2f} pages "
              f"{counted[name].steps:6} steps {len(counted[name].statements):3} statements")
        for sql in counted[name].statements:
            print(f"      {sql[:110]}")


def ours_transitions(n: int, sync: str, rounds: int) -> None:
    cpu: dict[str, list[float]] = {}
    pages: dict[str, list[float]] = {}
    counted: dict[str, Counter] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="queue-profile-") as tmp:
            with ExecutionLog.open(Path(tmp) / "log.db", create=True, synchronous=sync) as log:
                log._conn.execute("PRAGMA wal_autocheckpoint=0")
                counted = ours_round(log, tmp, n, cpu, pages)
    show("ours", n, rounds, cpu, pages, counted)


def huey_round(storage, folder: str, n: int, cpu: dict, pages: dict) -> dict[str, Counter]:
    timed(cpu, pages, folder, "enqueue", n, lambda i: storage.enqueue(f"task {i}".encode()))
    timed(cpu, pages, folder, "dequeue", n, lambda i: storage.dequeue())
    counted = {name: Counter(storage.conn) for name in cpu}
    counted["enqueue"].count(lambda: storage.enqueue(b"x"))
    counted["dequeue"].count(storage.dequeue)
    return counted


def huey_transitions(n: int, sync: str, rounds: int) -> None:
    from huey.storage import SqliteStorage

    cpu: dict[str, list[float]] = {}
    pages: dict[str, list[float]] = {}
    counted: dict[str, Counter] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="queue-profile-") as tmp:
            storage = SqliteStorage("bench", filename=str(Path(tmp) / "huey.db"))
            try:
                for pragma in ("journal_mode=WAL", f"synchronous={sync}", "wal_autocheckpoint=0"):
                    storage.conn.execute(f"PRAGMA {pragma}")
                counted = huey_round(storage, tmp, n, cpu, pages)
            finally:
                storage.close()
    show("huey", n, rounds, cpu, pages, counted)


# Each step of part 2 alters a fresh log with these statements (cumulative).
LADDER: list[tuple[str, list[str]]] = [
    ("ours as shipped", []),
    ("without idx_events_task", ["DROP INDEX idx_events_task"]),
    ("without the events' usage trigger", ["DROP TRIGGER events_usage"]),
    ("without events (each insert dropped)", [
        "CREATE TRIGGER drop_events BEFORE INSERT ON events BEGIN SELECT RAISE(IGNORE); END"]),
]


def ladder_run(statements: list[str], n: int, sync: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="queue-profile-") as tmp:
        path = Path(tmp) / "log.db"
        ExecutionLog.open(path, create=True).close()
        conn = sqlite3.connect(path, isolation_level=None)
        for sql in statements:
            conn.execute(sql)
        conn.close()
        with ExecutionLog.open(path, synchronous=sync) as log:
            log._conn.execute("PRAGMA wal_autocheckpoint=0")
            before = wal_bytes(tmp)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(n):
                log.add_task(NewTask(title=f"task {i}"), actor=WORKER)
                claim = log.claim_next(WORKER)
                log.finish(claim.token, State.REVIEW)
            return ((time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6,
                    frames(wal_bytes(tmp) - before) / n)


def huey_run(n: int, sync: str) -> tuple[float, float, float]:
    from huey.storage import SqliteStorage

    with tempfile.TemporaryDirectory(prefix="queue-profile-") as tmp:
        storage = SqliteStorage("bench", filename=str(Path(tmp) / "huey.db"))
        try:
            storage.conn.execute("PRAGMA journal_mode=WAL")
            storage.conn.execute(f"PRAGMA synchronous={sync}")
            storage.conn.execute("PRAGMA wal_autocheckpoint=0")
            before = wal_bytes(tmp)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(n):
                storage.enqueue(f"task {i}".encode())
                storage.dequeue()
            return ((time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6,
                    frames(wal_bytes(tmp) - before) / n)
        finally:
            storage.close()


def guarantees(n: int, sync: str, rounds: int) -> None:
    print(f"what the guarantees cost: depth 1 (add_task, claim_next, finish per item), N={n}, "
          f"{rounds} rounds interleaved; wall and CPU µs/item (min), WAL pages/item")
    runs: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(rounds):
        done: list[str] = []
        for label, statements in LADDER:
            done += statements
            runs.setdefault(label, []).append(ladder_run(list(done), n, sync))
        runs.setdefault("huey (enqueue, dequeue)", []).append(huey_run(n, sync))
    for label, figures in runs.items():
        print(f"  {label:<40} wall {min(f[0] for f in figures):7.1f} µs  CPU {min(f[1] for f in figures):7.1f} µs"
              f"  {statistics.median(f[2] for f in figures):5.2f} pages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Where a queue item's time goes (see the module docstring).")
    parser.add_argument("--tasks", type=int, default=2000, metavar="N")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync", choices=("normal", "full"), default="normal")
    args = parser.parse_args(argv)
    if args.tasks < 2 or args.rounds < 1:
        parser.error("--tasks must be at least 2 and --rounds at least 1")
    print(f"queue profile: sqlite {sqlite3.sqlite_version}, synchronous={args.sync}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ours_transitions(args.tasks, args.sync, args.rounds)
    huey_transitions(args.tasks, args.sync, args.rounds)
    guarantees(args.tasks, args.sync, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
