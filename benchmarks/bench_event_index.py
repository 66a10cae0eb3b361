"""What the reads that stay flat cost the writes: the index on events by
task and the trigger that sums the runs' cost, per transition, paired.

    python benchmarks/bench_event_index.py [--rounds 5] [--tasks 2000] [--progress 2000]

Two logs per round, A without the index and the trigger (as before
them) and B as the schema makes them, run alternately (A, B, A, B …) so
that the machine's load falls on both alike:

* transitions: on a fresh log of ``--tasks`` tasks, claim + finish of each
  (two transactions, two events, one a run's end whose cost the trigger
  sums): microseconds per transition;
* progress: on a copy of the big base's log (100,000 tasks, 1,000,000
  events: an index of a million entries, whose pages the new entries land
  among), ``--progress`` progress lines for a running task, each its own
  transaction, as the engine writes them.

Prints the medians, the spread and B / A.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from big_base import cached_big_base  # noqa: E402

from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.model import NewTask, State  # noqa: E402


def without_index(path: Path) -> None:
    """The log as it was before: no index on events by task, no sums."""
    with ExecutionLog.open(path) as log:
        log._conn.execute("DROP INDEX idx_events_task")
        log._conn.execute("DROP TRIGGER events_usage")


def transitions(folder: Path, side: str, tasks: int) -> float:
    path = folder / f"fresh-{side}.db"
    for leftover in folder.glob(f"fresh-{side}.db*"):
        leftover.unlink()
    ExecutionLog.open(path, create=True).close()
    if side == "A":
        without_index(path)
    with ExecutionLog.open(path) as log:
        log.add_tasks([NewTask(title=f"t{n}") for n in range(tasks)], actor="bench")
        data = {"run": "runs/T-1/1", "cost_usd": 0.42, "input_tokens": 12000, "output_tokens": 800, "turns": 7}
        start = time.perf_counter()
        for _ in range(tasks):
            claim = log.claim_next("w")
            assert claim is not None
            log.finish(claim.token, State.REVIEW, note="agent finished", data=data)
        seconds = time.perf_counter() - start
    return seconds / tasks * 1e6


def progress(folder: Path, side: str, source: Path, lines: int) -> float:
    path = folder / f"big-{side}.db"
    for leftover in folder.glob(f"big-{side}.db*"):
        leftover.unlink()
    shutil.copyfile(source, path)
    if side == "A":
        without_index(path)
    with ExecutionLog.open(path) as log:
        seq = log._conn.execute("SELECT seq FROM tasks WHERE state = 'running' LIMIT 1").fetchone()[0]
        token = log._conn.execute("SELECT lease_token FROM tasks WHERE seq = ?", (seq,)).fetchone()[0]
        start = time.perf_counter()
        for n in range(lines):
            log.add_progress(token, f"⚙ Bash: pytest -q tests/test_{n}.py")
        seconds = time.perf_counter() - start
    return seconds / lines * 1e6


def report(name: str, figures: dict[str, list[float]]) -> None:
    a, b = statistics.median(figures["A"]), statistics.median(figures["B"])
    spread = {side: f"{min(v):.0f}–{max(v):.0f}" for side, v in figures.items()}
    print(f"{name:<44}{a:>10.0f}{b:>10.0f}{b / a:>8.2f}×   (A {spread['A']}, B {spread['B']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--progress", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    big = cached_big_base(cache=args.cache) / ".factory" / "log.db"
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start; {args.rounds} rounds, A/B alternating")
    fresh: dict[str, list[float]] = {"A": [], "B": []}
    grown: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="bench-event-index-") as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            order = ("A", "B") if round_ % 2 == 0 else ("B", "A")
            for side in order:
                fresh[side].append(transitions(folder, side, args.tasks))
            for side in order:
                grown[side].append(progress(folder, side, big, args.progress))
    print(f"{'µs per write (median)':<44}{'A before':>10}{'B after':>10}{'B/A':>9}")
    report(f"claim + finish, fresh log ({args.tasks:,} tasks)", fresh)
    report("progress line, 100k tasks / 1M events", grown)
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
