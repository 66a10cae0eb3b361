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

Target 2 (issue 11 §1): "every contender at the same journal mode and
synchronous, both tables printed (NORMAL and FULL), at depth 1 and with a
backlog, several rounds paired. Ours ahead of every peer in every table, with
its events written."

    Each contender gets a fresh temporary directory per run and is set to
    ``journal_mode=WAL`` and ``synchronous`` (NORMAL, then FULL) on every
    connection it writes through; the settings are read back from each
    connection and the run stops if one did not take. Ours takes its
    durability from ``[log] synchronous`` (``ExecutionLog.open(...,
    synchronous=...)``), the others by PRAGMA after they opened:

    * ours:          ``add_task`` (a task and its 'created' event),
                     ``claim_next`` (a lease and a 'claimed' event),
                     ``finish(token, State.REVIEW)`` (a 'finished' event);
    * ours, loop:    the same, but with a backlog its worker's way:
                     ``finish_and_claim_next`` (the finish of a task and the
                     claim of the next, both events, in one transaction), so
                     2 commits an item instead of 3. Backlog only: at depth 1
                     nothing waits when a task finishes. Every enqueue is still
                     its own transaction (no contender's batch API is used);
    * litequeue:     ``LiteQueue(path)``: ``put``, ``pop``, ``done``;
    * persist-queue: ``SQLiteAckQueue(path)`` (auto_commit=True, its
                     default): ``put``, ``get``, ``ack``;
    * huey:          ``SqliteStorage(name, filename=...)``: ``enqueue``,
                     ``dequeue`` (which deletes the item: huey has no ack).

    Two patterns: depth 1 (enqueue, claim, ack per item: a queue never more
    than one deep) and backlog (N enqueues, then N claims and acks). A round
    runs every contender once per pattern, in an order that rotates from
    round to round, so that each ratio compares two runs made minutes apart
    at most; the table shows items/s (one item = enqueue + claim + ack) as
    the median over rounds with the range, and "ours ahead" as the median
    (and range) of the per-round ratios ours/theirs. Two more columns explain
    the figures: this process's CPU time per item, and the WAL pages each
    item writes (measured apart, with checkpoints off): at FULL every commit
    waits for the disk, so commits per item and pages per commit decide.

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


# --- target 2: against other SQLite queues, at the same durability ---------------


SYNC_LEVELS = {"NORMAL": 1, "FULL": 2}
PATTERNS = {"depth 1": "interleaved", "backlog": "batch"}


@dataclass
class Opened:
    """One contender, opened: enqueue(i), take() -> handle, ack(handle), and
    every connection it writes through (to set and check its settings)."""

    enqueue: Callable[[int], object]
    take: Callable[[], object]
    ack: Callable[[object], object]
    close: Callable[[], object]
    conns: list[sqlite3.Connection]
    # A worker's loop: ack this handle and take the next in one call (None
    # when none is left); the backlog runs through it when it is given.
    ack_and_take: Callable[[object], object] | None = None


def payload(i: int) -> str:
    return f"task {i}"


def open_ours(tmp: Path, sync: str, *, loop: bool = False) -> Opened:
    # Ours takes its durability from [log] synchronous; the others are set
    # by PRAGMA on their connections below (and every one is checked).
    # ``loop``: what our worker does with a backlog, the finish of its task
    # and the claim of the next in one transaction (finish_and_claim_next).
    log = ExecutionLog.open(tmp / "log.db", create=True, synchronous=sync.lower())
    return Opened(
        enqueue=lambda i: log.add_task(NewTask(title=payload(i)), actor=WORKER),
        take=lambda: log.claim_next(WORKER),
        ack=lambda claim: log.finish(claim.token, State.REVIEW),
        close=log.close,
        conns=[log._conn],  # only to check its settings
        ack_and_take=(lambda claim: log.finish_and_claim_next(claim.token, State.REVIEW, WORKER)[1]) if loop else None,
    )


def open_ours_loop(tmp: Path, sync: str) -> Opened:
    return open_ours(tmp, sync, loop=True)


def open_litequeue(tmp: Path, sync: str) -> Opened:
    from litequeue import LiteQueue

    queue = LiteQueue(str(tmp / "queue.db"))
    return Opened(
        enqueue=lambda i: queue.put(payload(i)),
        take=queue.pop,
        ack=lambda message: queue.done(message.message_id),
        close=queue.close,
        conns=[queue.conn],
    )


def open_persist_queue(tmp: Path, sync: str) -> Opened:
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(tmp / "queue"))
    # block=False only so that a bug fails instead of hanging; with an item
    # in the queue get() behaves the same either way.
    return Opened(
        enqueue=lambda i: queue.put(payload(i)),
        take=lambda: queue.get(block=False),
        ack=queue.ack,
        close=queue.close,
        # One connection for both unless multithreading=True (not used).
        conns=list({id(c): c for c in (queue._getter, queue._putter)}.values()),
    )


def open_huey(tmp: Path, sync: str) -> Opened:
    from huey.storage import SqliteStorage

    storage = SqliteStorage("bench", filename=str(tmp / "huey.db"))
    return Opened(
        enqueue=lambda i: storage.enqueue(payload(i).encode()),
        take=storage.dequeue,
        ack=lambda data: None,  # dequeue deleted it already: huey has no ack
        close=storage.close,
        conns=[storage.conn],
    )


CONTENDERS: dict[str, Callable[[Path, str], Opened]] = {
    "factory-tui": open_ours,
    "factory-tui loop": open_ours_loop,
    "litequeue": open_litequeue,
    "persist-queue": open_persist_queue,
    "huey": open_huey,
}
OURS = "factory-tui"
OURS_LOOP = "factory-tui loop"
# The worker loop is a backlog's way only: at depth 1 nothing waits when a
# task finishes, so there is no next task to claim with it.
RUNS_IN = {OURS_LOOP: ("backlog",)}


def library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    if name in (OURS, OURS_LOOP):
        name = "factory-tui"
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def open_at(name: str, tmp: Path, sync: str) -> Opened:
    """``name`` opened in ``tmp`` with WAL and ``synchronous=sync`` on every
    connection it writes through, checked: the figures compare like with like."""
    opened = CONTENDERS[name](tmp, sync)
    for conn in opened.conns:
        if name not in (OURS, OURS_LOOP):
            if conn.in_transaction:
                conn.commit()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={sync}")
        found = settings_of(conn)
        if found["journal_mode"] != "wal" or found["synchronous"] != sync:
            opened.close()
            raise SystemExit(f"target 2: {name} did not take WAL and synchronous={sync}: {found}")
    return opened


def run_contender(
    opened: Opened, n: int, pattern: str
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for ``n`` items."""
    enqueue, take, ack = opened.enqueue, opened.take, opened.ack
    gc.collect()
    cpu, start = time.process_time(), perf()
    if pattern == "batch" and opened.ack_and_take is not None:
        for i in range(n):
            enqueue(i)
        handle, taken = take(), 0
        while handle is not None:
            taken += 1
            handle = opened.ack_and_take(handle)
        if taken != n:
            raise SystemExit("target 2: a contender lost an item")
    elif pattern == "batch":
        for i in range(n):
            enqueue(i)
        for _ in range(n):
            handle = take()
            if handle is None:
                raise SystemExit("target 2: a contender lost an item")
            ack(handle)
    else:
        for i in range(n):
            enqueue(i)
            handle = take()
            if handle is None:
                raise SystemExit("target 2: a contender lost an item")
            ack(handle)
    return perf() - start, time.process_time() - cpu


def wal_pages_per_item(name: str, base: Path, sync: str, n: int = 300) -> float:
    """The WAL frames (pages written) per item of the backlog pattern, with
    checkpoints off so that the WAL holds every page written."""
    with tempfile.TemporaryDirectory(prefix="bench-wal-", dir=base) as tmp:
        opened = open_at(name, Path(tmp), sync)
        try:
            for conn in opened.conns:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            opened.enqueue(-1)  # the first write makes the WAL; measure after it
            opened.ack(opened.take())
            wal = [p for p in Path(tmp).rglob("*-wal")]
            before = sum(p.stat().st_size for p in wal)
            run_contender(opened, n, "batch")
            after = sum(p.stat().st_size for p in wal)
            page_size = opened.conns[0].execute("PRAGMA page_size").fetchone()[0]
        finally:
            opened.close()
    return (after - before) / (page_size + 24) / n


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


def check_ours(conn: sqlite3.Connection, n: int) -> None:
    """Ours did the whole work it is timed for: n tasks in review, each with
    its created, claimed and finished events, and no lease left live."""
    found = conn.execute(
        "SELECT (SELECT count(*) FROM tasks WHERE state = 'review'), "
        "(SELECT count(*) FROM tasks WHERE lease_token IS NOT NULL), "
        "(SELECT group_concat(kind || ':' || k, ' ') FROM "
        " (SELECT kind, count(*) AS k FROM events GROUP BY kind ORDER BY kind))"
    ).fetchone()
    if found != (n, 0, f"claimed:{n} created:{n} finished:{n}"):
        raise SystemExit(f"target 2: ours left a log that does not hold the work: {found}")


def ahead_of(
    wall: dict[str, dict[str, list[float]]], ours_name: str, name: str, label: str
) -> tuple[str, bool]:
    """The column "ours ahead" of ``name`` in ``label``: the median (and range)
    of ours/theirs per round, and whether ours was ahead."""
    paired = [theirs / ours for ours, theirs in
              zip(wall[ours_name][label], wall[name][label], strict=True)]
    ahead = statistics.median(paired)
    return (f" {ahead:>5.2f}× ({min(paired):.2f}–{max(paired):.2f})"
            f" {verdict(ahead > 1)[0]}"), ahead > 1


def target_two(n: int, rounds: int, base: Path, levels: list[str]) -> bool:
    print("Target 2: enqueue + claim + ack against other SQLite queues, every one at "
          "the same journal mode (WAL) and synchronous, at depth 1 and with a backlog")
    print(f"  depth 1: enqueue, claim, ack per item; backlog: {n:,} enqueues, then "
          f"{n:,} claims and acks. {n:,} items per run, {rounds} rounds; each round runs "
          "every contender once (the order rotates), so a ratio pairs two runs of one round.")
    print("  ours: add_task (with its created event), claim_next (claimed), finish "
          "(finished): three transactions and three events per item. huey: enqueue, "
          "dequeue (which deletes the item: it has no ack, no lease, no history).")
    for name in CONTENDERS:
        print(f"  {name:<14} {library_version(name)}")
    names = list(CONTENDERS)
    ok = ok_loop = True
    for sync in levels:
        # wall[name][pattern] and cpu[...]: one figure per round, in round order.
        wall: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PATTERNS} for name in names}
        cpu: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PATTERNS} for name in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for label, pattern in PATTERNS.items():
                for name in order:
                    if label not in RUNS_IN.get(name, PATTERNS):
                        continue
                    with tempfile.TemporaryDirectory(prefix="bench-t2-", dir=base) as tmp:
                        opened = open_at(name, Path(tmp), sync)
                        try:
                            seconds, cpu_seconds = run_contender(opened, n, pattern)
                            if name in (OURS, OURS_LOOP):
                                check_ours(opened.conns[0], n)
                        finally:
                            opened.close()
                    wall[name][label].append(seconds)
                    cpu[name][label].append(cpu_seconds)
        pages = {name: wal_pages_per_item(name, base, sync) for name in names}
        print()
        print(f"  synchronous={sync}, journal_mode=WAL: items/s, median of {rounds} rounds "
              "(min–max); ours ahead: ours/theirs per round, median (min–max)")
        header = f"  {'contender':<16}"
        for label in PATTERNS:
            header += f" {label + ' items/s':>24} {'ours ahead':>18}"
        header += f" {'loop ahead':>18} {'CPU µs/item':>12} {'WAL pages/item':>15}"
        print(header)

        for name in names:
            line = f"  {name:<16}"
            for label in PATTERNS:
                if not wall[name][label]:
                    line += f" {'—':>24} {'':>18}"
                    continue
                rates = [n / t for t in wall[name][label]]
                line += f" {statistics.median(rates):>9,.0f} ({spread(rates):>13})"
                if name in (OURS, OURS_LOOP):
                    line += f" {'':>18}"
                else:
                    shown, won = ahead_of(wall, OURS, name, label)
                    ok = ok and won
                    line += shown
            if name in (OURS, OURS_LOOP):
                line += f" {'':>18}"
            else:
                shown, won = ahead_of(wall, OURS_LOOP, name, "backlog")
                ok_loop = ok_loop and won
                line += shown
            cpu_us = statistics.median(c for label in PATTERNS for c in cpu[name][label]) / n * 1e6
            line += f" {cpu_us:>12.0f} {pages[name]:>15.1f}"
            print(line)
            if name not in (OURS, OURS_LOOP):
                ok_loop = ok_loop and ahead_of(wall, OURS, name, "depth 1")[1]
        # What the loop buys, paired: the loop's items/s over ours', round by round.
        print(f"  the worker loop against ours, backlog: {ahead_of(wall, OURS_LOOP, OURS, 'backlog')[0][:-2]}")
    print()
    print("  (ours ahead > 1: ours (add_task, claim_next, finish: 3 commits an item) handled more "
          "items a second; loop ahead: ours as its worker does with a backlog (add_task, then "
          "finish_and_claim_next: 2 commits an item); P/F: whether it did in the median of the "
          "pairs. Every commit of every contender at the table's synchronous. CPU: this "
          "process's, both patterns; WAL pages: pages written per item, checkpoints off)")
    print(f"  => ours ahead of all three in every table: {verdict(ok)}")
    print(f"  => ahead of all three in every table, the backlog by the worker loop: {verdict(ok_loop)}")
    return ok or ok_loop


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
    parser.add_argument("--sync", default="NORMAL,FULL",
                        help="target 2: the synchronous settings to compare at, "
                        "comma-separated (default NORMAL,FULL)")
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
        levels = [level.strip().upper() for level in args.sync.split(",") if level.strip()]
        if not levels or any(level not in SYNC_LEVELS for level in levels):
            parser.error("--sync takes NORMAL, FULL or both")
        results.append(target_two(args.tasks, args.rounds, base, levels))
        print()
    print(f"load average after: {load_average()}")
    print("all targets met" if all(results) else "a target was missed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
