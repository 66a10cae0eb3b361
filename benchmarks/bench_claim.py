"""The claim as the base grows: claim + finish on a fresh log against the same
work on a 100,000-task base with 1,000,000 events where most queued tasks
wait behind high-priority chains (issue 11 §2).

    python benchmarks/bench_claim.py [--tasks 100000] [--events 1000000]
                                     [--ready 2000] [--rounds 5] [--quick]
                                     [--sync normal|full] [--cache DIR]

It prints figures and a PASS/FAIL line; it is not a test. The exit status is
0 when the target is met, 1 when it is missed.

Target: "claim + finish on the 100k/1M base at least 0.8 of the rate on a
fresh log."

    The fresh log holds ``--ready`` queued tasks and nothing else. The big
    base holds the same ready tasks (priority 0) among ``--tasks`` tasks:
    about 55% done, 30% queued but blocked (priority 5 to 9: chains of ten,
    each chain waiting for a held task at its head, and a few hundred
    waiting for one task in review), and the rest proposed, held, in review,
    failed and cancelled; ``--events`` events, most of them agents' progress
    lines, the rest each task's transitions. It is built once through the
    log's own bulk API (``add_tasks`` with dependencies and ticked items,
    then the events in batches, states set in one UPDATE each, the
    readiness count kept by the schema's triggers throughout) and cached
    under the system's temporary directory (``--cache``), keyed by the sizes
    and the builder's version; each round works on a copy, flushed to the
    disk before the round starts.

    A round claims and finishes (to review) every ready task, one at a time
    (``claim_next``, then ``finish``), on a fresh log and on a copy of the big
    base; the two alternate which goes first. Each side's figure is
    tasks/s (a task = a claim and a finish, two transactions with their
    events); the ratio big/fresh is taken per round, and the result is the
    median of those ratios. This process's CPU time per task is printed
    beside them: steadier than the wall clock on a shared machine.

    For reference, the claim's search as it was before readiness was kept
    (each queued task, in priority order, checked for dependencies not done)
    is timed on the same two files: that query alone, without the write.

Read the figures as one machine's: the load average is printed before and
after, and other work on the machine moves them.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory_tui.backends.log import SQL_EVENT_INSERT, ExecutionLog  # noqa: E402
from factory_tui.model import NewTask, State  # noqa: E402

TARGET_RATIO = 0.8
BUILDER_VERSION = 1
WORKER = "bench"
CHAIN = 10
perf = time.perf_counter

# The claim's search before readiness was kept: every queued task, in
# priority order, checked for a dependency not yet done.
OLD_SEARCH = """
SELECT t.seq FROM tasks AS t NOT INDEXED
WHERE t.state = 'queued'
  AND NOT EXISTS (
      SELECT 1 FROM deps AS d JOIN tasks AS u ON u.seq = d.depends_on
      WHERE d.task = t.seq AND u.state != 'done')
ORDER BY t.priority DESC, t.seq
LIMIT 1
"""


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# --- the bases --------------------------------------------------------------------


def build_fresh(path: Path, ready: int) -> None:
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks([NewTask(title=f"ready {i}") for i in range(ready)], actor=WORKER)


def build_big(path: Path, tasks: int, events: int, ready: int) -> dict[str, int]:
    """The big base at ``path`` (see the module docstring); returns how many
    tasks it holds in each state."""
    rng_state = 12345

    def rand(n: int) -> int:  # a small LCG: the same base every time
        nonlocal rng_state
        rng_state = (rng_state * 1103515245 + 12345) % (1 << 31)
        return rng_state % n

    others = tasks - ready
    blocked = int(others * 0.30) // CHAIN * CHAIN
    chains = blocked // CHAIN
    rest = others - blocked - chains  # chains: one held head each
    done = int(rest * 0.80)
    review = min(300, rest - done)
    misc = rest - done - review
    new: list[NewTask] = []
    labels: list[str | None] = []
    ticked: list[bool] = []
    # Done tasks first (their ids are the oldest), the ready ones next.
    for i in range(done):
        new.append(NewTask(title=f"landed {i}"))
        labels.append(None)
        ticked.append(True)
    for i in range(ready):
        new.append(NewTask(title=f"ready {i}"))
        labels.append(None)
        ticked.append(False)
    # A task in review that a few hundred queued tasks wait for.
    first_review = len(new)
    for i in range(review):
        new.append(NewTask(title=f"in review {i}", labels=()))
        labels.append(f"r{i}")
        ticked.append(False)
    # Chains: a held head, then CHAIN queued tasks of high priority, each
    # waiting for the one before it.
    for c in range(chains):
        new.append(NewTask(title=f"chain {c} head", state=State.HELD))
        labels.append(f"c{c}.0")
        ticked.append(False)
        for k in range(1, CHAIN + 1):
            after = [f"c{c}.{k - 1}"]
            if k == 1 and review and rand(4) == 0:
                after.append(f"r{rand(review)}")
            new.append(NewTask(title=f"chain {c} step {k}", priority=5 + rand(5), after=tuple(after)))
            labels.append(f"c{c}.{k}")
            ticked.append(False)
    first_misc = len(new)
    for i in range(misc):
        new.append(NewTask(title=f"other {i}", state=State.PROPOSED))
        labels.append(None)
        ticked.append(False)
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks(new, actor=WORKER, handles=labels, done=ticked)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        # States the bulk API does not create: set directly (the triggers
        # keep the blockers: none of these is done).
        conn.execute("UPDATE tasks SET state = 'review', attempts = 1 WHERE seq BETWEEN ? AND ?",
                     (first_review + 1, first_review + review))
        for n, state in enumerate(("held", "review", "failed", "cancelled")):
            conn.execute(
                "UPDATE tasks SET state = ? WHERE seq > ? AND (seq - ?) % 5 = ?",
                (state, first_misc, first_misc, n),
            )
        # The history: every task's creation is there already (add_tasks);
        # the rest are transitions of the tasks that ran and agents'
        # progress lines, in time order.
        have = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        ran = conn.execute("SELECT seq FROM tasks WHERE state IN ('done', 'review', 'failed')").fetchall()
        now = time.time() - 86400 * 30
        batch: list[tuple] = []
        written = have
        step = 0
        while written < events:
            seq = ran[rand(len(ran))][0]
            kind = rand(20)
            step += 1
            at = now + step * 0.5
            if kind == 0:
                row = (at, f"T-{seq}", "claimed", WORKER, "queued", "running", "attempt 1",
                       f'{{"lease": "T-{seq}:{step:016x}"}}')
            elif kind == 1:
                row = (at, f"T-{seq}", "finished", WORKER, "running", "review", None,
                       f'{{"lease": "T-{seq}:{step:016x}", "run": "1", "cost_usd": 0.12}}')
            else:
                row = (at, f"T-{seq}", "progress", WORKER, None, None,
                       f"⚙ Bash: pytest -q tests/test_{rand(500)}.py" + " -x" * rand(20), None)
            batch.append(row)
            written += 1
            if len(batch) == 50_000:
                conn.executemany(SQL_EVENT_INSERT, batch)
                batch.clear()
        if batch:
            conn.executemany(SQL_EVENT_INSERT, batch)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
        counts["ready"] = conn.execute(
            "SELECT count(*) FROM tasks WHERE state = 'queued' AND blockers = 0").fetchone()[0]
        counts["events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    return counts


def cached_big(cache: Path, tasks: int, events: int, ready: int) -> tuple[Path, dict[str, int] | None]:
    """The big base, built once per sizes and builder version."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"claim-v{BUILDER_VERSION}-{tasks}-{events}-{ready}.db"
    if path.exists():
        return path, None
    started = perf()
    building = path.with_suffix(".building")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    counts = build_big(building, tasks, events, ready)
    os.replace(building, path)
    print(f"  built the big base in {perf() - started:.1f} s: {path}")
    return path, counts


# --- measuring ----------------------------------------------------------------------


def claim_and_finish_all(path: Path, expected: int, sync: str) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU) to claim and finish every
    ready task, one at a time."""
    with ExecutionLog.open(path, synchronous=sync) as log:
        gc.collect()
        done = 0
        cpu, start = time.process_time(), perf()
        while (claim := log.claim_next(WORKER)) is not None:
            log.finish(claim.token, State.REVIEW)
            done += 1
        seconds, cpu = perf() - start, time.process_time() - cpu
    if done != expected:
        raise SystemExit(f"claimed {done} tasks, expected {expected}: the bases are not what they should be")
    return seconds, cpu


def old_search_ms(path: Path, times: int = 20) -> float:
    conn = sqlite3.connect(path)
    try:
        conn.execute(OLD_SEARCH).fetchone()
        start = perf()
        for _ in range(times):
            conn.execute(OLD_SEARCH).fetchone()
        return (perf() - start) / times * 1000
    finally:
        conn.close()


def copy_log(source: Path, target: Path) -> None:
    """A copy flushed to the disk before it is used: otherwise the first
    checkpoint's flush of the log would write the whole copy (150 MB), and
    the big side would pay for the benchmark's own copying."""
    shutil.copyfile(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="claim + finish on a fresh log and on a big base")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ready", type=int, default=2000, help="ready tasks claimed per side and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 tasks, 100,000 events, 500 ready, 3 rounds")
    parser.add_argument("--sync", choices=("normal", "full"), default="normal")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "factory-bench-claim")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.events, args.ready, args.rounds = 10_000, 100_000, 500, 3
    if args.ready < 1 or args.tasks < args.ready * 2 or args.rounds < 1:
        parser.error("--ready at least 1, --tasks at least twice --ready, --rounds at least 1")

    print("factory-tui claim benchmark: a fresh log against a big base")
    print(f"  python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus, synchronous={args.sync}")
    print(f"  load average before: {load_average()}")
    big, counts = cached_big(args.cache, args.tasks, args.events, args.ready)
    conn = sqlite3.connect(big)
    try:
        counts = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
        ready = conn.execute("SELECT count(*) FROM tasks WHERE state = 'queued' AND blockers = 0").fetchone()[0]
        waiting = conn.execute("SELECT count(*) FROM tasks WHERE state = 'queued' AND blockers > 0").fetchone()[0]
        events = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    finally:
        conn.close()
    print(f"  big base: {sum(counts.values()):,} tasks ("
          + ", ".join(f"{state} {n:,}" for state, n in sorted(counts.items())) + f"), {events:,} events; "
          f"queued: {ready:,} ready, {waiting:,} waiting for a dependency")
    if ready != args.ready:
        raise SystemExit(f"the big base has {ready} ready tasks, not {args.ready}")
    print(f"  each round: claim + finish every ready task ({args.ready:,}) on a fresh log and on a "
          "copy of the big base, alternating which goes first")
    print(f"  {'round':>5} {'first':>6} {'fresh tasks/s':>14} {'big tasks/s':>12} {'big/fresh':>10} "
          f"{'CPU µs/task fresh':>18} {'big':>6}")
    fresh_rates, big_rates, ratios, cpu = [], [], [], {"fresh": [], "big": []}
    with tempfile.TemporaryDirectory(prefix="bench-claim-", dir=args.cache) as tmp:
        for r in range(args.rounds):
            fresh_path, big_path = Path(tmp) / f"fresh{r}.db", Path(tmp) / f"big{r}.db"
            build_fresh(fresh_path, args.ready)
            copy_log(big, big_path)
            sides = [("fresh", fresh_path), ("big", big_path)]
            if r % 2:
                sides.reverse()
            took = {name: claim_and_finish_all(path, args.ready, args.sync) for name, path in sides}
            fresh_rate, big_rate = args.ready / took["fresh"][0], args.ready / took["big"][0]
            for name in cpu:
                cpu[name].append(took[name][1] / args.ready * 1e6)
            fresh_rates.append(fresh_rate)
            big_rates.append(big_rate)
            ratios.append(big_rate / fresh_rate)
            print(f"  {r + 1:>5} {sides[0][0]:>6} {fresh_rate:>14,.0f} {big_rate:>12,.0f} {ratios[-1]:>10.2f} "
                  f"{cpu['fresh'][-1]:>18.0f} {cpu['big'][-1]:>6.0f}")
            for path in (fresh_path, big_path):
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
        ratio = statistics.median(ratios)
        print(f"  {'median':>5} {'':>6} {statistics.median(fresh_rates):>14,.0f} "
              f"{statistics.median(big_rates):>12,.0f} {ratio:>10.2f} "
              f"{statistics.median(cpu['fresh']):>18.0f} {statistics.median(cpu['big']):>6.0f}"
              f"  (ratios {min(ratios):.2f}–{max(ratios):.2f})")
        fresh_ref = Path(tmp) / "fresh-ref.db"
        build_fresh(fresh_ref, args.ready)
        print(f"  for reference, the claim's search as it was (dependencies checked per queued task, "
              f"by priority): {old_search_ms(fresh_ref):.2f} ms on the fresh log, "
              f"{old_search_ms(big):.1f} ms on the big base, per claim")
    ok = ratio >= TARGET_RATIO
    print(f"  => big/fresh = {ratio:.2f}, target >= {TARGET_RATIO}: {'PASS' if ok else 'FAIL'}")
    print(f"load average after: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
