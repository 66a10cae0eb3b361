"""Run artifacts at scale: indexing 10,000 run folders a log never saw,
the engine's retention round when nothing is due (it runs after every
run's end), gc compressing them, and a viewer reading a 50 MB raw output,
whole and compressed, a window at a time. Issue 10 §2.

    python benchmarks/bench_runs.py [--tasks 2000] [--runs 5] [--rounds 9]

It prints figures and a PASS/FAIL line; it is not a test. The exit status
is 0 when the targets are met, 1 when one is missed.

Targets: the engine's retention round with nothing due costs at most 100 ms
at 10,000 runs (it runs after every run's end); a window of 50 lines of a
50 MB raw output, whole or compressed, reads in at most 50 ms.

    A real base (git repository, ``factory init``) in a temporary folder;
    every run folder is what an ended run leaves (prompt.md, transcript.log,
    output.raw of 1 KB, run.json, exit.json). Figures are wall times; the
    round's is the median over the rounds on an open log.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.backends.run_reader import open_reader  # noqa: E402
from factory_tui.backends.run_retention import collect, compress_raw  # noqa: E402
from factory_tui.model import NewTask  # noqa: E402

ROUND_TARGET_MS = 100.0
WINDOW_TARGET_MS = 50.0
BIG_LINES = 540_000


def make_base(folder: Path) -> FactoryBase:
    repo = folder / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q",
                    "--allow-empty", "-m", "start"], check=True)
    base, _ = FactoryBase.init(repo)
    return base


def make_runs(base: FactoryBase, tasks: int, runs: int) -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}") for n in range(tasks)], actor="bench")
    raw = b"".join(b'{"type":"assistant","line":%d}\n' % n for n in range(30))
    started = 1_790_000_000.0
    for task in range(1, tasks + 1):
        for attempt in range(1, runs + 1):
            folder = base.run_dir(f"T-{task}", attempt)
            folder.mkdir(parents=True)
            started += 1
            (folder / "prompt.md").write_text(f"# T-{task}: task\n")
            (folder / "transcript.log").write_text("⏺ working\n✓ done\n")
            (folder / "output.raw").write_bytes(raw)
            (folder / "run.json").write_text(json.dumps({"task": f"T-{task}", "attempt": attempt,
                                                         "token": f"T-{task}:{attempt}", "profile": "demo",
                                                         "started": started}))
            (folder / "exit.json").write_text(json.dumps({"exit_code": 0, "started": started,
                                                          "ended": started + 30}))


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, value


def window_ms(reader, rounds: int) -> float:
    rng = random.Random(3)
    count = reader.line_count()
    times = []
    for _ in range(rounds):
        start = rng.randrange(max(1, count - 50))
        ms, lines = timed(reader.lines, start, 50)
        assert len(lines) == 50
        times.append(ms)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    total = args.tasks * args.runs
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as scratch:
        base = make_base(Path(scratch))
        ms, _ = timed(make_runs, base, args.tasks, args.runs)
        print(f"{total:,} run folders made in {ms / 1000:.1f} s")
        with ExecutionLog.open(base.log_path) as log:
            ms, report = timed(collect, base, log, keep_runs=50, old_raw="compress", apply=False)
            print(f"indexed {total:,} runs from their folders (and planned gc): {ms / 1000:.2f} s; "
                  f"{report.files:,} raw outputs due")
            ms, report = timed(collect, base, log, keep_runs=50, old_raw="compress", apply=True)
            print(f"gc --yes compressed {report.files:,} raw outputs: {ms / 1000:.2f} s, "
                  f"freed {report.freed:,} of {report.bytes:,} bytes")
            rounds = []
            for _ in range(args.rounds):
                ms, report = timed(collect, base, log, keep_runs=50, old_raw="compress", apply=True, full=False,
                                   sync=False)
                assert not report.items
                rounds.append(ms)
            round_ms = statistics.median(rounds)
            print(f"the engine's retention round, nothing due, {total:,} runs: median {round_ms:.1f} ms "
                  f"(worst {max(rounds):.1f} ms)")
            synced = [timed(collect, base, log, keep_runs=50, old_raw="compress", apply=True, full=False)[0]
                      for _ in range(3)]
            print(f"the same with the folders listed and compared first (the engine's first round, "
                  f"run-info and gc do it): median {statistics.median(synced):.1f} ms")
        big = Path(scratch) / "big"
        big.mkdir()
        pad = b"x" * 80
        with open(big / "output.raw", "wb") as handle:
            for start in range(0, BIG_LINES, 10_000):
                handle.write(b"".join(b"line %07d %s\n" % (n, pad) for n in range(start, start + 10_000)))
        size = (big / "output.raw").stat().st_size
        ms, reader = timed(open_reader, big / "output.raw", "output.raw")
        print(f"{size / 1e6:.1f} MB raw output: opened (lines found) in {ms:.0f} ms; "
              f"a window of 50 lines: median {window_ms(reader, args.rounds * 5):.2f} ms")
        plain_window = window_ms(reader, args.rounds * 5)
        reader.close()
        ms, _ = timed(compress_raw, big)
        packed = (big / "output.raw.gz").stat().st_size
        print(f"compressed to {packed / 1e6:.1f} MB in {ms:.0f} ms")
        ms, reader = timed(open_reader, big / "output.raw.gz", "output.raw")
        packed_window = window_ms(reader, args.rounds * 5)
        print(f"compressed: opened (decompressed once, {reader.checkpoints} states kept) in {ms:.0f} ms; "
              f"a window of 50 lines: median {packed_window:.2f} ms")
        reader.close()
    met = round_ms <= ROUND_TARGET_MS and max(plain_window, packed_window) <= WINDOW_TARGET_MS
    print(f"{'PASS' if met else 'FAIL'}: round {round_ms:.1f} ms (target {ROUND_TARGET_MS:.0f}), windows "
          f"{plain_window:.2f} / {packed_window:.2f} ms (target {WINDOW_TARGET_MS:.0f})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
