"""Queue throughput of the execution log: two targets from the issue.

Run it as ``python benchmarks/bench_queue.py`` (``--help`` for options). It
prints figures and a PASS/FAIL line per target; it is not a test. The exit
status is 0 when every target passes, 1 when one fails.

Target 1: "claim, finish and their events through the execution log, against
raw sqlite3 running the same statements, in one run: at least 0.7 of raw."

    N tasks are seeded (not timed) into two identical log files, both created
    by ``ExecutionLog`` so the schema is the same. Then each task is claimed
    and finished in turn:

    * ours: ``ExecutionLog.claim_next(worker)`` then
      ``ExecutionLog.finish(token, State.REVIEW)``;
    * raw:  a plain ``sqlite3`` connection opened with the same settings
      (autocommit, WAL, synchronous=NORMAL, foreign_keys=ON, the same busy
      timeout; checked and printed) runs exactly the same statements (the
      ``SQL_*`` constants of ``factory_tui.backends.log``) with the same
      parameters (``secrets.token_hex(8)`` for the lease, the sha256 of a
      ``secrets.token_hex(32)`` agent secret, ``json.dumps`` of the event data,
      ``time.time()``), in plain inline Python:
      claim  = BEGIN IMMEDIATE; SQL_CLAIM; SQL_EVENT_INSERT; COMMIT
      finish = BEGIN IMMEDIATE; SQL_FINISH; SQL_EVENT_INSERT; COMMIT

    One op is one transaction (a claim or a finish), so a task is 2 ops.
    The two sides alternate (ours first in odd rounds, raw first in even
    ones), each round on fresh files; the figure is the median over rounds,
    and the ratio is median(ours) / median(raw). After every round both files
    are checked to hold the same tasks, states and events.

Target 2: "against litequeue, persist-queue and huey's SQLite storage (each at
its own default settings) on the same enqueue-claim-ack work: ahead of all
three."

    Each contender gets a fresh temporary directory and does, for N items:

    * ours:          ``add_task`` (a task and its 'created' event),
                     ``claim_next``, ``finish(token, State.REVIEW)``;
    * litequeue:     ``LiteQueue(path)``: ``put``, ``pop``, ``done``;
    * persist-queue: ``SQLiteAckQueue(path)`` (auto_commit=True, its
                     default): ``put``, ``get``, ``ack``;
    * huey:          ``SqliteStorage(name, filename=...)``: ``enqueue``,
                     ``dequeue`` (which deletes the item: that is its ack).

    Pattern (the same for every contender): "batch" by default, i.e. all N
    enqueues first (the enqueue phase), then N times claim-and-ack (the work
    phase, draining a queue N deep); ``--pattern interleaved`` does enqueue,
    claim, ack per item instead. The table shows items/s for each phase and
    for the whole (N items / total seconds: one item = one enqueue + one
    claim + one ack); "ahead" compares the whole. Medians over rounds; the
    contenders' order rotates from round to round.

    The batch figures depend on N: litequeue's ``pop`` sorts every ready
    row (its index is on status only), so its claim slows as the backlog
    grows, while ours takes the head of an index. A shallow queue
    (``--pattern interleaved``, or a small N) is its best case.

    Nothing is tuned: every library runs with its own defaults, ours too. The
    defaults differ in durability, and the settings each one ended up with
    are printed, because they explain much of the spread: SQLite's compiled
    default synchronous=FULL (huey, persist-queue) makes every commit wait
    for an fsync of the WAL, synchronous=NORMAL (ours, litequeue) does not.
    Where the temporary files live therefore matters (``--dir``; a tmpfs
    makes fsync free); the file system type is printed in the header.

Read the figures as throughput of one process on one connection, with no
contention; they are comparable within one run of this script, not across
machines.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.log import (
    DEFAULT_LEASE_SECONDS,
    EXTRA,
    SQL_CLAIM,
    SQL_EVENT_INSERT,
    SQL_FINISH,
    ExecutionLog,
)
from factory_tui.backends.schema import DEFAULT_BUSY_TIMEOUT_MS
from factory_tui.model import NewTask, State

TARGET_RATIO = 0.7
WORKER = "bench"
perf = time.perf_counter


# --- helpers ----------------------------------------------------------------


def file_system_of(path: Path) -> str:
    """The type of the file system holding ``path`` (best effort, Linux)."""
    try:
        real = os.path.realpath(path)
        best, kind = "", "?"
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) > len(best):
                    best, kind = point, parts[2]
        return kind
    except OSError:
        return "?"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def settings_of(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            conn.execute("PRAGMA synchronous").fetchone()[0], "?"
        ),
        "foreign_keys": conn.execute("PRAGMA foreign_keys").fetchone()[0],
        "busy_timeout": conn.execute("PRAGMA busy_timeout").fetchone()[0],
        "autocommit": conn.isolation_level is None,
    }


def show_settings(settings: dict[str, object]) -> str:
    return " ".join(f"{key}={value}" for key, value in settings.items())


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- target 1: ExecutionLog against raw sqlite3 -------------------------------


def seed(path: Path, n: int) -> None:
    """A fresh log holding ``n`` queued tasks (one transaction, not timed)."""
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks([NewTask(title=f"task {i}") for i in range(n)], actor=WORKER)


def open_raw(path: Path) -> sqlite3.Connection:
    """A plain connection with the settings ``open_connection`` gives ours."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=DEFAULT_BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute(f"PRAGMA busy_timeout={DEFAULT_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def run_ours(path: Path, n: int) -> float:
    with ExecutionLog.open(path) as log:
        gc.collect()
        start = perf()
        for _ in range(n):
            claim = log.claim_next(WORKER)
            log.finish(claim.token, State.REVIEW)
        return perf() - start


def run_raw(path: Path, n: int) -> float:
    conn = open_raw(path)
    try:
        gc.collect()
        start = perf()
        for _ in range(n):
            # claim
            now = time.time()
            run_secret = secrets.token_hex(32)  # the agent's (its random part)
            params = {
                "now": now,
                "secret": secrets.token_hex(8),
                "worker": WORKER,
                "expires": now + DEFAULT_LEASE_SECONDS,
                "run_secret": hashlib.sha256(run_secret.encode()).hexdigest(),
            }
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(SQL_CLAIM, params).fetchone()
            seq, token = row[0], row[EXTRA]
            task_id = f"T-{seq}"
            conn.execute(
                SQL_EVENT_INSERT,
                (now, task_id, "claimed", WORKER, "queued", "running",
                 f"attempt {row[4]}", json.dumps({"lease": token})),
            )
            conn.execute("COMMIT")
            # finish
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(SQL_FINISH, ("review", now, seq, token)).fetchone()
            conn.execute(
                SQL_EVENT_INSERT,
                (now, task_id, "finished", row[EXTRA], "running", "review",
                 None, json.dumps({"lease": token})),
            )
            conn.execute("COMMIT")
        return perf() - start
    finally:
        conn.close()


def log_contents(path: Path) -> tuple[list, list, list]:
    """What both sides must agree on (tokens and times aside)."""
    conn = sqlite3.connect(path)
    try:
        tasks = conn.execute(
            "SELECT seq, state, attempts FROM tasks ORDER BY seq"
        ).fetchall()
        events = conn.execute(
            "SELECT task_id, kind, actor, from_state, to_state, note, "
            "json_extract(data, '$.lease') IS NOT NULL FROM events ORDER BY id"
        ).fetchall()
        leases = conn.execute(
            "SELECT seq, lease_worker, lease_token IS NULL FROM tasks ORDER BY seq"
        ).fetchall()
        return tasks, events, leases
    finally:
        conn.close()


def check_same_work(ours: Path, raw: Path, n: int) -> None:
    a, b = log_contents(ours), log_contents(raw)
    if a != b:
        raise SystemExit("target 1: ours and raw left different logs behind")
    tasks, events, leases = a
    if not (
        len(tasks) == n
        and all(state == "review" for _, state, _ in tasks)
        and len(events) == 3 * n
        and len(leases) == n
        and all(released for *_, released in leases)
    ):
        raise SystemExit("target 1: the logs do not hold n finished tasks")


def target_one(n: int, rounds: int, base: Path) -> bool:
    print("Target 1: claim + finish through ExecutionLog vs raw sqlite3, "
          "same statements")
    with tempfile.TemporaryDirectory(prefix="bench-t1-", dir=base) as tmp:
        probe = Path(tmp) / "probe.db"
        seed(probe, 1)
        with ExecutionLog.open(probe) as log:
            ours_settings = settings_of(log._conn)  # read-only peek
        raw_conn = open_raw(probe)
        raw_settings = settings_of(raw_conn)
        raw_conn.close()
    print(f"  ours: {show_settings(ours_settings)}")
    print(f"  raw : {show_settings(raw_settings)}")
    if ours_settings != raw_settings:
        raise SystemExit("target 1: the raw connection's settings differ from ours")

    print(f"  {n} tasks, each claimed and finished; 1 op = 1 transaction "
          f"(claim or finish), {2 * n} ops per side per round")
    print(f"  {'round':>7} {'first':>6} {'ours ops/s':>12} {'raw ops/s':>12} "
          f"{'ours/raw':>9}")
    ours_times: list[float] = []
    raw_times: list[float] = []
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-t1-", dir=base) as tmp:
            ours_path, raw_path = Path(tmp) / "ours.db", Path(tmp) / "raw.db"
            seed(ours_path, n)
            seed(raw_path, n)
            order = [("ours", run_ours, ours_path), ("raw", run_raw, raw_path)]
            if r % 2:
                order.reverse()
            took = {name: run(path, n) for name, run, path in order}
            check_same_work(ours_path, raw_path, n)
        ours_times.append(took["ours"])
        raw_times.append(took["raw"])
        print(f"  {r + 1:>7} {order[0][0]:>6} {rate(2 * n, took['ours']):>12,.0f} "
              f"{rate(2 * n, took['raw']):>12,.0f} "
              f"{took['raw'] / took['ours']:>9.3f}")
    ours_med = statistics.median(ours_times)
    raw_med = statistics.median(raw_times)
    ratio = raw_med / ours_med
    ok = ratio >= TARGET_RATIO
    print(f"  {'median':>7} {'':>6} {rate(2 * n, ours_med):>12,.0f} "
          f"{rate(2 * n, raw_med):>12,.0f} {ratio:>9.3f}")
    print(f"  per task (claim+finish): ours {ours_med / n * 1e6:.1f} µs, "
          f"raw {raw_med / n * 1e6:.1f} µs, overhead "
          f"{(ours_med - raw_med) / n * 1e6:+.1f} µs")
    print(f"  => ours/raw = {ratio:.3f}, target >= {TARGET_RATIO}: {verdict(ok)}")
    return ok


# --- target 2: against other SQLite queues ----------------------------------


@dataclass
class Opened:
    """One contender, opened: enqueue(i), take() -> handle, ack(handle)."""

    enqueue: Callable[[int], object]
    take: Callable[[], object]
    ack: Callable[[object], object]
    close: Callable[[], object]
    conn: sqlite3.Connection


def payload(i: int) -> str:
    return f"task {i}"


def open_ours(tmp: Path) -> Opened:
    log = ExecutionLog.open(tmp / "log.db", create=True)
    return Opened(
        enqueue=lambda i: log.add_task(NewTask(title=payload(i)), actor=WORKER),
        take=lambda: log.claim_next(WORKER),
        ack=lambda claim: log.finish(claim.token, State.REVIEW),
        close=log.close,
        conn=log._conn,  # only to print its settings
    )


def open_litequeue(tmp: Path) -> Opened:
    from litequeue import LiteQueue

    queue = LiteQueue(str(tmp / "queue.db"))
    return Opened(
        enqueue=lambda i: queue.put(payload(i)),
        take=queue.pop,
        ack=lambda message: queue.done(message.message_id),
        close=queue.close,
        conn=queue.conn,
    )


def open_persist_queue(tmp: Path) -> Opened:
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(tmp / "queue"))
    # block=False only so that a bug fails instead of hanging; with an item
    # in the queue get() behaves the same either way.
    return Opened(
        enqueue=lambda i: queue.put(payload(i)),
        take=lambda: queue.get(block=False),
        ack=queue.ack,
        close=queue.close,
        conn=queue._putter,
    )


def open_huey(tmp: Path) -> Opened:
    from huey.storage import SqliteStorage

    storage = SqliteStorage("bench", filename=str(tmp / "huey.db"))
    return Opened(
        enqueue=lambda i: storage.enqueue(payload(i).encode()),
        take=storage.dequeue,
        ack=lambda data: None,  # dequeue deleted it already
        close=storage.close,
        conn=storage.conn,
    )


CONTENDERS: dict[str, Callable[[Path], Opened]] = {
    "factory-tui": open_ours,
    "litequeue": open_litequeue,
    "persist-queue": open_persist_queue,
    "huey": open_huey,
}


def library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def run_contender(
    opened: Opened, n: int, pattern: str
) -> tuple[float, float, float]:
    """(enqueue phase, work phase, total) seconds; interleaved has no phases."""
    enqueue, take, ack = opened.enqueue, opened.take, opened.ack
    gc.collect()
    if pattern == "batch":
        start = perf()
        for i in range(n):
            enqueue(i)
        middle = perf()
        for _ in range(n):
            handle = take()
            if handle is None:
                raise SystemExit("target 2: a contender lost an item")
            ack(handle)
        end = perf()
        return middle - start, end - middle, end - start
    start = perf()
    for i in range(n):
        enqueue(i)
        handle = take()
        if handle is None:
            raise SystemExit("target 2: a contender lost an item")
        ack(handle)
    end = perf()
    return float("nan"), float("nan"), end - start


def target_two(n: int, rounds: int, base: Path, pattern: str, *, reference: bool = False) -> bool:
    if reference:
        print(f"For reference, not the target: the same work {pattern} "
              "(a queue one item deep)")
    else:
        print(f"Target 2: enqueue-claim-ack against other SQLite queues "
              f"({pattern}, each at its defaults)")
    names = list(CONTENDERS)
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    settings: dict[str, str] = {}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="bench-t2-", dir=base) as tmp:
                opened = CONTENDERS[name](Path(tmp))
                try:
                    if name not in settings:
                        found = settings_of(opened.conn)
                        settings[name] = (
                            f"journal_mode={found['journal_mode']} "
                            f"synchronous={found['synchronous']}"
                        )
                    times[name].append(run_contender(opened, n, pattern))
                finally:
                    opened.close()
    for name in names:
        print(f"  {name:<14} {library_version(name):<8} {settings[name]}")

    def med(name: str, k: int) -> float:
        return statistics.median(t[k] for t in times[name])

    print(f"  {n} items per contender, median of {rounds} rounds; "
          "items/s (1 item = enqueue + claim + ack)")
    print(f"  {'contender':<14} {'enqueue/s':>10} {'claim+ack/s':>12} "
          f"{'items/s':>10} {'ours ahead':>11}")
    ours_total = med("factory-tui", 2)
    ok = True
    for name in names:
        total = med(name, 2)
        if pattern == "batch":
            phases = f"{rate(n, med(name, 0)):>10,.0f} {rate(n, med(name, 1)):>12,.0f}"
        else:
            phases = f"{'-':>10} {'-':>12}"
        if name == "factory-tui":
            ahead = ""
        else:
            ahead_ok = ours_total < total
            ok = ok and ahead_ok
            ahead = f"{total / ours_total:.2f}x" + ("" if reference else f" {verdict(ahead_ok)}")
        print(f"  {name:<14} {phases} {rate(n, total):>10,.0f} {ahead:>11}")
    print("  (ours ahead: ours items/s divided by theirs; > 1 means ours is faster)")
    if reference:
        print("  (every transition of ours also writes an event: at depth 1 that "
              "history is most of the cost)")
    else:
        print(f"  => ahead of all three: {verdict(ok)}")
    return ok


# --- main -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Queue throughput of factory-tui's execution log "
        "(see the module docstring for how to read the figures)."
    )
    parser.add_argument("--tasks", type=int, default=2000, metavar="N",
                        help="tasks (items) per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds per target; medians are reported (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="a small smoke run: 200 tasks, 2 rounds")
    parser.add_argument("--pattern", choices=("batch", "interleaved"),
                        default="batch",
                        help="target 2: all enqueues then all claim+acks "
                        "(batch, default) or enqueue+claim+ack per item")
    parser.add_argument("--target", choices=("1", "2", "all"), default="all",
                        help="which target to run (default all)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where temporary files go (default: the system's "
                        "temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.rounds = 200, 2
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")
    base = Path(args.dir or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)

    print("factory-tui queue benchmark")
    print(f"  python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus")
    print(f"  temporary files in {base} ({file_system_of(base)}), "
          f"N={args.tasks}, rounds={args.rounds}"
          + (" (--quick)" if args.quick else ""))
    print(f"  load average before: {load_average()} (other work on the machine "
          "skews the figures)")
    print()
    results = []
    if args.target in ("1", "all"):
        results.append(target_one(args.tasks, args.rounds, base))
        print()
    if args.target in ("2", "all"):
        results.append(target_two(args.tasks, args.rounds, base, args.pattern))
        print()
        if args.target == "all" and args.pattern == "batch":
            target_two(args.tasks, args.rounds, base, "interleaved", reference=True)
            print()
    print(f"load average after: {load_average()}")
    print("all targets met" if all(results) else "a target was missed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
