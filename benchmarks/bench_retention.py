"""Progress retention on the big base: how long it takes, and how long it
holds the log's write lock while other writers go on.

    python benchmarks/bench_retention.py [--keep-days 30] [--window 2000]

A copy of the big base's log (100,000 tasks, 1,000,000 events over sixty
days, most of them progress lines) gets one pass of retention as the
engine runs it (engine.PRUNE_PAUSE between batches of ``--window`` ids,
each one write transaction), keeping ``--keep-days`` of progress.

Beside it, two other processes on their own connections:

* a prober (as in bench_import.py): ``BEGIN IMMEDIATE`` and ``COMMIT`` at
  once, over and over, 2 ms apart, busy timeout 120 s; the longest one
  ``BEGIN IMMEDIATE`` waited is the longest the pass held the lock (over
  by up to one of SQLite's busy-handler polls);
* a writer as an agent's engine is: a note every 10 ms with the default
  busy timeout (5 s); it counts the writes it made and those refused as
  busy (the target: none).

Prints the lines deleted, the time, the batches, the longest hold and the
writer's counts, then the log's size and free pages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from big_base import cached_big_base  # noqa: E402
from lock_prober import PROBER  # noqa: E402

from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.engine import PRUNE_PAUSE  # noqa: E402

WRITER = r"""
import json, sys, time
from pathlib import Path
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import LogBusy
log = ExecutionLog.open(Path(sys.argv[1]))
stop = Path(sys.argv[2])
written = refused = 0
print("ready", flush=True)
while not stop.exists():
    try:
        log.add_note(None, f"written beside retention {written}", actor="writer")
        written += 1
    except LogBusy:
        refused += 1
    time.sleep(0.01)
print(json.dumps({"written": written, "refused": refused}), flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-days", type=float, default=30)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    source = cached_big_base(cache=args.cache) / ".factory" / "log.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        folder = Path(tmp)
        log_path = folder / "log.db"
        shutil.copyfile(source, log_path)
        stop = folder / "stop"
        helpers = [
            subprocess.Popen([sys.executable, "-c", code, str(log_path), str(stop), *extra],
                             stdout=subprocess.PIPE, text=True, env=env)
            for code, extra in ((PROBER, ["0.002"]), (WRITER, []))
        ]
        for helper in helpers:
            assert helper.stdout is not None and helper.stdout.readline().strip() == "ready"
        with ExecutionLog.open(log_path) as log:
            before = log.log_facts()
            cut = time.time() - args.keep_days * 86400
            started = time.perf_counter()
            deleted = batches = 0
            longest = 0.0
            after = None
            while True:
                one = time.perf_counter()
                step = log.prune_progress(cut, after=after, window=args.window)
                after = step.last_id
                longest = max(longest, time.perf_counter() - one)
                batches += 1
                deleted += step.deleted
                if step.done:
                    break
                time.sleep(PRUNE_PAUSE)
            seconds = time.perf_counter() - started
            stop.touch()
            probe, writer = (json.loads(helper.communicate(timeout=120)[0].strip().splitlines()[-1])
                             for helper in helpers)
            after = log.log_facts()
    print(f"deleted {deleted:,} progress lines older than {args.keep_days:g} days in {seconds:.1f} s, "
          f"{batches} batches of {args.window} ids (the longest batch {longest * 1000:.0f} ms)")
    print(f"longest write-lock wait of the prober: {probe['max_wait'] * 1000:.0f} ms over {probe['probes']:,} probes")
    print(f"a writer beside it (busy timeout 5 s): {writer['written']:,} notes written, {writer['refused']} refused")
    print(f"log: {before.events:,} → {after.events:,} events; {before.bytes / 1e6:.0f} MB, "
          f"{after.free_bytes / 1e6:.0f} MB of it free for new events")
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0 if writer["refused"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
