"""Cost and tokens over a big log: ``ExecutionLog.usage`` (per task, today
and the whole base, one query with json_extract) on 100,000 events. A
target from issue 7 §3.

    python benchmarks/bench_usage.py [--events 100000] [--rounds 9]

It prints figures and a PASS/FAIL line; it is not a test. The exit status is
0 when the target is met, 1 when it is missed.

Target: fast enough for the console's header and ``factory status`` to ask
for it every few seconds: here at most 100 ms at 100,000 events.

    The log is made through ``ExecutionLog`` (a real SQLite file in WAL
    mode): 10,000 tasks, and then events until there are the number asked
    for: one run's end in five (``finished`` or ``failed``, its data holding
    the run folder, cost, tokens and turns as the engine writes them), the
    rest ``progress`` lines. Half of the runs' ends are dated yesterday, so
    that "today" is a real filter. The figure is the median wall time of
    ``usage()`` over the rounds, each on the open log (the page cache warm,
    as it is for a console that asks again and again), and of one cold call
    on a freshly opened log.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from factory_tui.backends.log import SQL_EVENT_INSERT, ExecutionLog  # noqa: E402
from factory_tui.model import NewTask  # noqa: E402

TASKS = 10_000
TARGET_MS = 100.0


def build(path: Path, events: int) -> None:
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks([NewTask(title=f"task {n}") for n in range(TASKS)], actor="bench")
        rng = random.Random(7)
        now = time.time()
        rows = []
        for n in range(events - TASKS):
            if n % 5 == 0:
                task_id = f"T-{1 + (n // 5) % TASKS}"
                at = now - (0 if n % 10 == 0 else 86_400)
                data = {
                    "lease": "x", "run": f".factory/runs/{task_id}/{n}",
                    "cost_usd": round(rng.uniform(0.01, 2.0), 4),
                    "input_tokens": rng.randrange(1000, 900_000),
                    "output_tokens": rng.randrange(100, 40_000),
                    "turns": rng.randrange(1, 60),
                }
                kind = "finished" if n % 3 else "failed"
                rows.append((at, task_id, kind, "engine:bench", "running", "review", "agent finished", json.dumps(data)))
            else:
                task_id = f"T-{1 + n % TASKS}"
                rows.append((now, task_id, "progress", "engine:bench", None, None, f"line {n}",
                             json.dumps({"kind": "text"})))
        with log._write() as conn:  # noqa: SLF001 - a benchmark fills the file in one go
            conn.executemany(SQL_EVENT_INSERT, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as folder:
        path = Path(folder) / "log.db"
        build(path, args.events)
        with ExecutionLog.open(path) as log:
            count = log.last_event_id()
            started = time.perf_counter()
            usage = log.usage()
            cold_ms = (time.perf_counter() - started) * 1000
            timings = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                usage = log.usage()
                timings.append((time.perf_counter() - started) * 1000)
            totals_only = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                log.usage(per_task=False)
                totals_only.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            one = log.usage(task_ids=["T-17"])
            one_ms = (time.perf_counter() - started) * 1000
    median = statistics.median(timings)
    print(f"{count:,} events, {usage.total.runs:,} runs' ends ({usage.today.runs:,} today), "
          f"{len(usage.tasks):,} tasks with runs")
    print(f"usage(): median {median:.1f} ms over {args.rounds} rounds (min {min(timings):.1f}, "
          f"max {max(timings):.1f}); first call {cold_ms:.1f} ms; one task {one_ms:.1f} ms "
          f"({one.total.runs} runs)")
    print(f"usage(per_task=False), the totals alone: median {statistics.median(totals_only):.1f} ms "
          f"(min {min(totals_only):.1f})")
    print(f"total {usage.total.text}; today {usage.today.text}")
    passed = median <= TARGET_MS
    print(f"{'PASS' if passed else 'FAIL'}: usage() at {count:,} events in {median:.1f} ms "
          f"(target ≤ {TARGET_MS:.0f} ms)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
