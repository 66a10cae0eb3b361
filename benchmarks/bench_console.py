"""The console over a small base and a big one, side by side.

    python benchmarks/bench_console.py [--runs 5] [--pages 100] [--changes 40] [--writes 20] [--idle 60]
                                       [--only small|big] [--first-frame-only] [--against DIR] [--paging]

The bases (benchmarks/big_base.py, built once and kept in benchmarks/.work/):
small is 10,000 tasks, 100,000 events and 30 worktrees; big is 100,000
tasks, 1,000,000 events and 300 worktrees (a few agents' progress over
weeks: the normal life of a base). Both have tasks in every state and
blocked chains. The figures, per base:

* first frame: from starting ``factory console`` as a new process to its
  first full frame (plan, log and header drawn), median of ``--runs`` cold
  starts, with the process's peak memory and CPU time then; and the moment
  the whole plan is held (a big base's first frame reads only what it
  shows). Targets: first frame under 1 s and 200 MB on the big base.
* one changed task: a task held by another connection, the change read as
  the console's feed reads it and handed to the app; from then to the plan
  holding it (the handling), and to the frame after (p95 over ``--changes``).
  Target: under 10 ms at 100,000 tasks.
* another process's write: ``factory plan add`` run as a real process; from
  its commit (the event's time) to the frame that shows the task, over
  ``--writes`` writes. Target: half a second.
* Log pane paging: page-down from the oldest event, from the key to the
  first frame written that shows the new page with every row's event,
  while another process streams progress notes into the log (200 a
  second, in bursts). Target: p95 under 20 ms at 1,000,000 events.
  ``--paging``: this figure alone (for paired rounds against other code).
* idle: the CPU of a console left open (a real process, engine off, its
  worktrees watched), from /proc/<pid>/stat over ``--idle`` seconds after
  it settled, and the CPU of the git processes it ran meanwhile. Target:
  under 2% of a core with 200 worktrees.

Read the figures as one machine's in one run: other work on the machine
(the load average is printed) moves them. Tests never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from big_base import cached_big_base  # noqa: E402

from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.model import Action, State  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
BASES = {
    "small": dict(tasks=10_000, events=100_000, worktrees=30),
    "big": dict(tasks=100_000, events=1_000_000, worktrees=300),
}


def base_for(size: str) -> FactoryBase:
    sizes = BASES[size]
    return FactoryBase(cached_big_base(cache=WORK, **sizes))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction + 0.999999) - 1)]


def console_env(code: Path = ROOT) -> dict[str, str]:
    return dict(os.environ, TEXTUAL="", TERM="xterm-256color", COLUMNS="160", LINES="48",
                PYTHONPATH=str(code))


# --- first frame ------------------------------------------------------------------

FRAME_KEYS = ("first", "first_mb", "first_cpu", "whole", "whole_mb")


def base_root_for(size: str, code: Path) -> Path:
    """The base of ``size`` as ``code``'s own builder makes it (another
    checkout's schema may be older: its console would refuse ours)."""
    if code == ROOT:
        return base_for(size).root
    sizes = BASES[size]
    done = subprocess.run(
        [sys.executable, str(code / "benchmarks" / "big_base.py"), "--tasks", str(sizes["tasks"]),
         "--events", str(sizes["events"]), "--worktrees", str(sizes["worktrees"]), "--cache", str(WORK)],
        capture_output=True, text=True, check=True, cwd=code.parent, env=console_env(code),
    )
    return Path(done.stdout.strip().splitlines()[-1].rpartition(": ")[2])


def first_frame_once(root: Path, code: Path = ROOT) -> dict[str, float]:
    """One cold start of ``factory console --bench-first-frame`` (it quits
    once the whole plan is drawn) with the package from ``code``: seconds
    and peak MB at the first frame and at the whole plan, and CPU seconds
    at the first frame."""
    # Started by a small shell that forks it: a process's peak memory
    # (ru_maxrss) starts at its parent's size at the fork, and this
    # benchmark's own would hide the console's.
    command = ["/bin/sh", "-c", '"$@" & wait $!', "launch",
               sys.executable, "-m", "factory_tui", "--base", str(root), "console", "--bench-first-frame"]
    started = time.time()
    # Run from the code's parent: ``-m`` puts the working folder first on
    # the path, and this file's worktree would shadow another ``code``.
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=console_env(code), cwd=code.parent, check=False)
    lines = {line.split()[0]: line.split() for line in done.stderr.splitlines()
             if line.startswith(("first-frame ", "whole-plan "))}
    if "first-frame" not in lines:
        raise SystemExit(f"the console did not report a first frame:\n{done.stderr[-2000:]}")
    first = lines["first-frame"]
    whole = lines.get("whole-plan", first)
    return {
        "first": float(first[1]) - started,
        "first_mb": int(first[3]) / 1024,
        "first_cpu": float(first[5]) if len(first) > 5 else float("nan"),
        "whole": float(whole[1]) - started,
        "whole_mb": int(whole[3]) / 1024,
    }


def compile_code(code: Path) -> None:
    """The package's bytecode, as an install leaves it: without it (a
    checkout run with PYTHONDONTWRITEBYTECODE) every start compiles some
    ninety modules from source, a sixth of a second."""
    compileall.compile_dir(str(code / "factory_tui"), quiet=1)


def measure_first_frame(size: str, runs: int, against: Path | None = None
                        ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``runs`` cold starts of this code, and with ``against`` (another
    checkout's root) as many of that code, in alternate rounds so that the
    machine's load falls on both alike."""
    ours: dict[str, list[float]] = {key: [] for key in FRAME_KEYS}
    theirs: dict[str, list[float]] = {key: [] for key in FRAME_KEYS}
    rounds = [(ROOT, base_root_for(size, ROOT), ours)]
    if against is not None:
        rounds.append((against, base_root_for(size, against), theirs))
    for code, _, _ in rounds:
        compile_code(code)
    for _ in range(runs):
        for code, root, found in rounds:
            for key, value in first_frame_once(root, code).items():
                found[key].append(value)
    return ours, theirs


def describe_frames(frames: dict[str, list[float]]) -> tuple[str, str]:
    """The first frame's and the whole plan's figures, as the table says them."""
    return (f"{statistics.median(frames['first']):.2f} s, {max(frames['first_mb']):.0f} MB, "
            f"{statistics.median(frames['first_cpu']):.2f} s CPU",
            f"{statistics.median(frames['whole']):.2f} s, {max(frames['whole_mb']):.0f} MB")


# --- in one console (Pilot) ----------------------------------------------------------


async def ready(app, pilot) -> None:
    while not (app.plan_ready and app.worktree_table.loaded):
        await pilot.pause(0.05)
    await pilot.pause(0.5)


async def next_frame() -> float:
    """The moment the next frame after now is drawn."""
    from textual._context import active_app

    loop = asyncio.get_running_loop()
    drawn = loop.create_future()
    active_app.get().call_after_refresh(lambda: drawn.done() or drawn.set_result(time.perf_counter()))
    return await drawn


async def measure_changes(base: FactoryBase, changes: int) -> tuple[list[float], list[float]]:
    """One queued task held at a time by another connection; the change
    read by a feed of its own (as the console's feed reads it) and handed to
    the app: ms to the plan holding it, and to the next frame."""
    from factory_tui.app import FactoryApp
    from factory_tui.backends.feed import LogFeed
    from factory_tui.messages import LogChanged

    app = FactoryApp(base, engine=False)
    handled: list[float] = []
    framed: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        queued = [task.id for task in app.plan.tasks.values() if task.state is State.QUEUED]
        picks = random.Random(3).sample(queued, min(changes, len(queued)))
        feed = LogFeed(base.log_path)
        feed.snapshot()
        try:
            with ExecutionLog.open(base.log_path) as writer:
                for task_id in picks:
                    writer.apply(task_id, Action.HOLD, actor="bench")
                    change = feed.poll()
                    started = time.perf_counter()
                    app.post_message(LogChanged(change))
                    while app.plan.task_by_id(task_id).state is not State.HELD:
                        await asyncio.sleep(0.0002)
                    handled.append((time.perf_counter() - started) * 1000)
                    framed.append((await next_frame() - started) * 1000)
                    # The console's own feed delivers the same change: let it.
                    last = writer.last_event_id()
                    while not (app.event_log.event_count and app.event_log._ids[-1] >= last):
                        await asyncio.sleep(0.005)
                    await asyncio.sleep(0.05)
                for task_id in picks:  # the base as it was
                    writer.apply(task_id, Action.RELEASE, actor="bench")
        finally:
            feed.close()
    return handled, framed


async def measure_cross_process(base: FactoryBase, writes: int) -> list[float]:
    """``factory plan add`` as a real process: ms from its commit (the
    event's time, the same clock) to the frame that shows the task."""
    from factory_tui.app import FactoryApp

    app = FactoryApp(base, engine=False)
    timings: list[float] = []
    command = [sys.executable, "-m", "factory_tui", "--base", str(base.root), "plan", "add", "--state", "held",
               "--json"]
    rng = random.Random(11)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        for n in range(writes):
            await asyncio.sleep(rng.uniform(0, 0.2))
            done = await asyncio.to_thread(subprocess.run, [*command, f"cross-process write {n}"],
                                           capture_output=True, text=True, env=console_env(), cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"factory plan add failed: {done.stderr}")
            task_id = json.loads(done.stdout)["id"]
            while app.plan.task_by_id(task_id) is None:
                await asyncio.sleep(0.001)
            await next_frame()
            shown = time.time()
            with ExecutionLog.open(base.log_path) as reader:
                created = reader.events(task_id=task_id, kinds=["created"])[0].at
            timings.append((shown - created) * 1000)
    return timings


WRITER = """
import random, sys, time
from pathlib import Path
from factory_tui.backends.log import ExecutionLog
log = ExecutionLog.open(Path(sys.argv[1]))
rate, rng, n = float(sys.argv[2]), random.Random(5), 0
tasks = [f"T-{seq}" for seq in range(1, 200)]
while True:
    burst = rng.randint(5, 60)
    for _ in range(burst):
        n += 1
        log.add_note(rng.choice(tasks), f"progress {n}: ran the tests, {rng.randint(1, 300)} passed",
                     actor="agent:bench")
    time.sleep(burst / rate)
"""


async def measure_paging(base: FactoryBase, pages: int, rate: float) -> tuple[list[float], int]:
    """ms from a page-down key reaching the app to the first frame that
    shows the new page's rows all with their events, starting at the oldest
    event (no page cached), while another process streams notes. Pilot.press
    is not used for timing: it waits for idle and adds ~60 ms of its own."""
    from textual import events

    from factory_tui.app import FactoryApp

    app = FactoryApp(base, engine=False)
    timings: list[float] = []
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(base.log_path), str(rate)],
                              env=console_env(), stdin=subprocess.DEVNULL)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(app, pilot)
            log_view = app.event_log
            await pilot.press("6", "g")
            while log_view.rows_missing():
                await pilot.pause(0.005)
            await pilot.pause(0.1)
            rng = random.Random(7)
            # The first frame that shows the new page with its events, read
            # as the frame is written (from the screen's timer or from the
            # key's own handler).
            display = app._display
            waiting: list[tuple[float, asyncio.Future]] = []

            def displayed(screen, update) -> None:
                display(screen, update)
                for before, drawn in list(waiting):
                    if log_view.scroll_offset.y != before and not log_view.rows_missing() and not drawn.done():
                        drawn.set_result(time.perf_counter())

            app._display = displayed
            for _ in range(pages):
                # Keys arrive at any moment, not in step with the 60 Hz frames.
                await asyncio.sleep(rng.uniform(0, 1 / 60))
                drawn = asyncio.get_running_loop().create_future()
                waiting[:] = [(log_view.scroll_offset.y, drawn)]
                started = time.perf_counter()
                app.post_message(events.Key("pagedown", None))
                timings.append((await drawn - started) * 1000)
            rows = log_view.event_count
    finally:
        writer.terminate()
        writer.wait()
    return timings, rows


# --- idle, as a real process -----------------------------------------------------------

IDLE_CHILD = """
import sys
from pathlib import Path
from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
FactoryApp(FactoryBase(Path(sys.argv[1])), engine=False).run(headless=True, size=(160, 48))
"""


def process_cpu(pid: int) -> tuple[float, float]:
    """Seconds of CPU of ``pid`` (all its threads), and of the children it
    has waited for (its git processes)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def measure_idle(base: FactoryBase, seconds: float, settle: float = 30.0) -> tuple[float, float]:
    """Shares of a core: the console, and the git it ran, while idle."""
    child = subprocess.Popen([sys.executable, "-c", IDLE_CHILD, str(base.root)], env=console_env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)  # the first look at the plan and at every worktree
        cpu0, git0 = process_cpu(child.pid)
        started = time.monotonic()
        time.sleep(seconds)
        cpu1, git1 = process_cpu(child.pid)
        spent = time.monotonic() - started
    finally:
        child.terminate()
        child.wait()
    return (cpu1 - cpu0) / spent, (git1 - git0) / spent


# --- the table ---------------------------------------------------------------------------


def run_base(size: str, args: argparse.Namespace) -> dict[str, str]:
    base = base_for(size)
    with ExecutionLog.open(base.log_path) as log:
        counts = log.counts()
        events = log.last_event_id()
    worktrees = sum(1 for entry in base.worktrees_dir.iterdir() if entry.is_dir())
    print(f"[{size}] {sum(counts.values()):,} tasks, {events:,} events, {worktrees} worktrees; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    out: dict[str, str] = {"base": f"{sum(counts.values()) // 1000}k tasks, {events / 1e6:g}M events, {worktrees} wt"}
    frames, before = measure_first_frame(size, args.runs, args.against.resolve() if args.against else None)
    out["first frame"], out["whole plan held"] = describe_frames(frames)
    if args.against is not None:
        out["first frame (against)"], out["whole plan held (against)"] = describe_frames(before)
        out["first frame: ours / against"] = (
            f"{statistics.median(frames['first']) / statistics.median(before['first']):.2f}x time, "
            f"{max(frames['first_mb']) / max(before['first_mb']):.2f}x MB")
    if args.first_frame_only:
        out["load average (1 min) at the end"] = f"{os.getloadavg()[0]:.2f}"
        return out
    print(f"  first frame done; load {os.getloadavg()[0]:.2f}", flush=True)
    handled, framed = asyncio.run(measure_changes(base, args.changes))
    out["one changed task: handled"] = f"p50 {statistics.median(handled):.1f} ms, p95 {percentile(handled, 0.95):.1f} ms"
    out["one changed task: to frame"] = f"p50 {statistics.median(framed):.1f} ms, p95 {percentile(framed, 0.95):.1f} ms"
    print(f"  changes done; load {os.getloadavg()[0]:.2f}", flush=True)
    cross = asyncio.run(measure_cross_process(base, args.writes))
    out["CLI write to frame"] = f"p50 {statistics.median(cross):.0f} ms, max {max(cross):.0f} ms"
    print(f"  cross-process done; load {os.getloadavg()[0]:.2f}", flush=True)
    pages, rows = asyncio.run(measure_paging(base, args.pages, args.rate))
    out["Log paging, notes streaming"] = (f"p50 {statistics.median(pages):.1f} ms, p95 {percentile(pages, 0.95):.1f} ms "
                                          f"({rows:,} rows)")
    print(f"  paging done; load {os.getloadavg()[0]:.2f}", flush=True)
    console, git = measure_idle(base, args.idle)
    out["idle CPU (console + its git)"] = f"{console * 100:.2f}% + {git * 100:.2f}% of a core"
    out["load average (1 min) at the end"] = f"{os.getloadavg()[0]:.2f}"
    return out


TARGETS = {
    "first frame": "big: < 1 s, < 200 MB",
    "one changed task: handled": "< 10 ms",
    "CLI write to frame": "< 500 ms",
    "Log paging, notes streaming": "p95 < 20 ms",
    "idle CPU (console + its git)": "< 2%",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="cold starts to measure")
    parser.add_argument("--pages", type=int, default=100, help="pages to turn in the Log pane")
    parser.add_argument("--changes", type=int, default=40, help="changed tasks to time")
    parser.add_argument("--writes", type=int, default=20, help="factory plan add processes to time")
    parser.add_argument("--rate", type=float, default=200.0, help="notes a second streamed while paging")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds to watch an idle console")
    parser.add_argument("--only", choices=sorted(BASES), help="one base only")
    parser.add_argument("--first-frame-only", action="store_true", help="measure the first frame only")
    parser.add_argument("--against", type=Path,
                        help="another checkout's root (git archive of a commit): its first frames, in paired rounds")
    parser.add_argument("--paging", action="store_true", help="the Log paging figure only")
    args = parser.parse_args()
    sizes = [args.only] if args.only else list(BASES)
    if args.paging:
        for size in sizes:
            base = base_for(size)
            print(f"[{size}] load {os.getloadavg()[0]:.2f}", flush=True)
            pages, rows = asyncio.run(measure_paging(base, args.pages, args.rate))
            print(f"  Log paging, notes streaming {args.rate:g}/s: p50 {statistics.median(pages):.1f} ms, "
                  f"p95 {percentile(pages, 0.95):.1f} ms, max {max(pages):.1f} ms ({rows:,} rows); "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        return
    results = {size: run_base(size, args) for size in sizes}
    rows = list(next(iter(results.values())))
    width = max(len(row) for row in rows) + 2
    columns = [max(len(results[size][row]) for row in rows) + 2 for size in sizes]
    print()
    print("".ljust(width) + "".join(size.ljust(col) for size, col in zip(sizes, columns, strict=True)) + "target")
    for row in rows:
        print(row.ljust(width) + "".join(results[size][row].ljust(col) for size, col in zip(sizes, columns, strict=True))
              + TARGETS.get(row, ""))


if __name__ == "__main__":
    main()
