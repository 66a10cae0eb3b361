"""The console while agents stream as a real Claude Code session does, on a
small base and a big one, side by side.

    python benchmarks/bench_streaming.py [--minutes 2] [--long] [--agents 2 8] [--only small|big]

For each base (benchmarks/big_base.py: small is 10,000 tasks and 100,000
events, big is 100,000 tasks and 1,000,000 events; a copy each, rebuilt
after every run, since the agents change it) and each number of agents:

* the console runs as a real process (``FactoryApp`` with its engine
  inside, headless, 160x48); its engine runs ``benchmarks/stream_agent.py``
  as each task's agent, N at a time: Claude Code ``stream-json`` at a few
  hundred lines a second per agent, in bursts, with long tool outputs;
  each agent streams for 40 s and commits, and the next task starts;
* its CPU (all its threads: the console and the engine that parses the
  agents' streams) is read from /proc/<pid>/stat once a minute, for
  ``--minutes`` (``--long``: ten), and printed per minute: it should stay
  flat, not grow with time; with it the share of each group of threads
  (the console's loop, its workers, the engine's loop and the calls it
  hands its executor: reading and parsing the agents' output) and the
  resident memory;
* inside it, keys at random moments: ``j``/``k`` in the Plan and page up or
  down in the Log pane among its oldest events, each timed from the key to
  the first frame written that shows its effect (a frame the key's own
  handler drew counts);
* ``factory plan add`` run as a real second process every few seconds,
  timed from its commit (the event's time) to the frame that shows the task.

``STREAM_PROFILE=DIR``: the console loop's cProfile, a file a minute, to
see what grows (the profiler slows what it measures); ``STREAM_TRACEMALLOC=DIR``:
a tracemalloc snapshot of the console's process a minute, to see what it
keeps.

Read the figures as one machine's in one run: other work on the machine
(the load average is printed) moves them, and the agents themselves take
CPU. Tests never assert on them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from big_base import build_big_base  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
BASES = {
    "small": dict(tasks=10_000, events=100_000, worktrees=30),
    "big": dict(tasks=100_000, events=1_000_000, worktrees=300),
}
AGENT_SECONDS = 40
CROSS_EVERY = 5.0

CHILD = r"""
import asyncio, json, os, random, sys, threading, time
from pathlib import Path
from textual import events
from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase

agents = int(sys.argv[2])
stop = threading.Event()


def say(**what):
    print(json.dumps(what), flush=True)


async def frame(app):
    drawn = asyncio.get_running_loop().create_future()
    app.call_after_refresh(lambda: drawn.done() or drawn.set_result(time.perf_counter()))
    return await drawn


# Frames as they go out: each waiting key is checked against what the
# frame drew (its condition read as the frame is written), so a key's time
# ends at the first frame that shows its effect, whether that frame came
# from the screen's timer or from the key's own handler.
waiting = []


def watch_frames(app):
    display = app._display

    def displayed(screen, update):
        display(screen, update)
        now = time.perf_counter()
        for entry in list(waiting):
            moved, drawn = entry
            if not drawn.done() and moved():
                drawn.set_result(now)
                waiting.remove(entry)

    app._display = displayed


async def key(app, name, moved, limit=2.0):
    # ms from posting the key to the first frame that shows moved().
    drawn = asyncio.get_running_loop().create_future()
    entry = (moved, drawn)
    waiting.append(entry)
    sent = time.perf_counter()
    app.post_message(events.Key(name, name if len(name) == 1 else None))
    try:
        return (await asyncio.wait_for(drawn, limit) - sent) * 1000
    except asyncio.TimeoutError:
        return limit * 1000
    finally:
        if entry in waiting:
            waiting.remove(entry)


async def shown(app, task_id):
    # A task another process added: from its commit to the frame showing it.
    deadline = time.monotonic() + 5
    while app.plan.task_by_id(task_id) is None:
        if time.monotonic() > deadline:
            say(cross=None, task=task_id)
            return
        await asyncio.sleep(0.001)
    await frame(app)
    say(cross=(time.time() - app.plan.task_by_id(task_id).created_at) * 1000, task=task_id)


def commands(loop, app):
    for line in sys.stdin:
        word, _, rest = line.strip().partition(" ")
        if word == "watch":
            loop.call_soon_threadsafe(lambda task_id=rest: asyncio.ensure_future(shown(app, task_id)))
        else:
            break
    stop.set()


def thread_names():
    # Which of the process's threads is what: the console's loop, the
    # engine, the workers (feed, watchers, fetches), asyncio's executors.
    return {str(t.native_id): t.name for t in threading.enumerate() if t.native_id}


async def main():
    app = FactoryApp(FactoryBase(Path(sys.argv[1])))
    async with app.run_test(size=(160, 48)) as pilot:
        watch_frames(app)
        threading.Thread(target=commands, args=(asyncio.get_running_loop(), app), daemon=True).start()
        while not (app.plan_ready and app.worktree_table.loaded):
            await pilot.pause(0.05)
        deadline = time.monotonic() + 180
        while app.engine.status is None or len(app.engine.status.running) < agents:
            if time.monotonic() > deadline:
                say(error=f"the engine did not start {agents} agents: {app.engine.describe()}")
                return
            await pilot.pause(0.1)
        say(ready=time.time(), threads=thread_names())
        rng = random.Random(7)
        plan, log = app.plan, app.event_log
        plan_keys, log_keys = [], []
        phase, phase_start, last_report = "plan", time.monotonic(), time.monotonic()
        plan.focus()
        # STREAM_PROFILE=DIR: the console loop's profile, a file a minute
        # (to see what grows; the profiler slows everything it measures).
        profile_dir = os.environ.get("STREAM_PROFILE")
        profile, minute, minute_start = None, 0, time.monotonic()
        if profile_dir:
            import cProfile
            profile = cProfile.Profile()
            profile.enable()
        # STREAM_TRACEMALLOC=DIR: what the process holds, a snapshot a minute
        # (compare two with tracemalloc to see what grows; it slows everything).
        memory_dir = os.environ.get("STREAM_TRACEMALLOC")
        memory_minute, memory_start = 0, time.monotonic()
        if memory_dir:
            import gc, tracemalloc
            tracemalloc.start(12)
        while not stop.is_set():
            if memory_dir and time.monotonic() - memory_start > 60:
                memory_minute += 1
                gc.collect()
                tracemalloc.take_snapshot().dump(f"{memory_dir}/minute-{memory_minute}.snap")
                memory_start = time.monotonic()
            if profile is not None and time.monotonic() - minute_start > 60:
                profile.disable()
                minute += 1
                profile.dump_stats(f"{profile_dir}/minute-{minute}.prof")
                profile, minute_start = cProfile.Profile(), time.monotonic()
                profile.enable()
            # Keys come at any moment, not in step with frames or the agents.
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            if time.monotonic() - phase_start > 15:
                phase, phase_start = ("log" if phase == "plan" else "plan"), time.monotonic()
                (log if phase == "log" else plan).focus()
                if phase == "log":
                    log.action_first()
                await pilot.pause(0.05)
                continue
            if phase == "plan":
                if plan.cursor > 60 or plan.cursor >= plan.row_count - 3:
                    name = "k"
                elif plan.cursor <= 2:
                    name = "j"
                else:
                    name = rng.choice("jk")
                before = plan.selected_task.id if plan.selected_task else None
                plan_keys.append(await key(
                    app, name, lambda: (plan.selected_task.id if plan.selected_task else None) != before))
            else:
                # Among the oldest events, far from the stream's end.
                if log.cursor > 3000:
                    log.action_first()
                    await pilot.pause(0.05)
                name = "pagedown" if log.cursor < 50 or rng.random() < 0.7 else "pageup"
                before = log.scroll_offset.y
                log_keys.append(await key(
                    app, name, lambda: log.scroll_offset.y != before and not log.rows_missing()))
            if time.monotonic() - last_report > 10:
                say(plan_keys=plan_keys, log_keys=log_keys, threads=thread_names())
                plan_keys, log_keys, last_report = [], [], time.monotonic()
        say(plan_keys=plan_keys, log_keys=log_keys)
        await asyncio.to_thread(app.engine.stop, stop_agents=True)
        say(stopped=time.time())


asyncio.run(main())
"""


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each of the process's threads so far."""
    spent = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        spent[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


def thread_group(name: str | None, tid: int, pid: int) -> str:
    if tid == pid:
        return "console loop"
    if name is None:
        return "other"
    if name == "factory-engine":
        return "engine loop"
    if name.startswith("asyncio_"):
        # The engine's loop's executor: reading and parsing agents' output,
        # its SQLite writes (the console's own pool is console-worker).
        return "engine calls"
    if name.startswith("console-worker"):
        return "console workers"
    return "other"


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction + 0.999999) - 1)] if ordered else float("nan")


def stream_base(size: str, agents: int, minutes: float) -> Path:
    """A fresh copy of the base for a streaming run, set up for the agents."""
    sizes = BASES[size]
    root = WORK / f"stream-{size}"
    dirty = WORK / f"stream-{size}.dirty"
    if dirty.exists() and root.exists():
        # The agents changed it: build it again (worktrees cannot be copied).
        subprocess.run(["git", "-C", str(root), "worktree", "prune"], check=False, capture_output=True)
        shutil.rmtree(root)
    root = build_big_base(root, **sizes)
    dirty.touch()
    # The runs a dead engine left are another engine's here: this one runs
    # only the queue.
    with sqlite3.connect(root / ".factory" / "log.db") as conn:
        conn.execute("UPDATE tasks SET lease_expires = ?, lease_worker = 'engine:elsewhere' "
                     "WHERE state IN ('running', 'checking')", (time.time() + 10 * 365 * 86400,))
        # The builder's tasks name real agents' profiles (claude, codex):
        # here every task the engine may claim runs the streaming agent.
        conn.execute("UPDATE tasks SET profile = 'stream' WHERE state IN ('queued', 'proposed', 'held')")
    # Ready tasks enough for every agent the whole run (the builder's
    # blocked chains leave a small base only a dozen), first in the queue.
    from factory_tui.backends.log import ExecutionLog
    from factory_tui.model import NewTask

    wanted = agents * (int(minutes * 60 / AGENT_SECONDS) + 2)
    with ExecutionLog.open(root / ".factory" / "log.db") as log:
        log.add_tasks([NewTask(title=f"streaming work {n}", priority=99, profile="stream")
                       for n in range(wanted)], actor="bench")
    config = root / ".factory" / "factory.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("\nmax_parallel = 2\n", f"\nmax_parallel = {agents}\n", 1)
    text = text.replace('# default_agent = "claude"', 'default_agent = "stream"', 1)
    agent = json.dumps([sys.executable, str(ROOT / "benchmarks" / "stream_agent.py"), "--prompt-file", "{prompt_file}"])
    text += f'\n[agents.stream]\nargv = {agent}\noutput = "claude-stream-json"\ntimeout = 3600\nenv = {{}}\n'
    config.write_text(text, encoding="utf-8")
    return root


def output_lines(tally: Path) -> tuple[int, int]:
    """Lines and bytes every agent printed so far, from their tally (the
    engine's run retention compresses finished runs' raw output)."""
    lines = size = 0
    if tally.exists():
        for row in tally.read_text(encoding="ascii").splitlines():
            parts = row.split()
            if len(parts) == 2:
                lines += int(parts[0])
                size += int(parts[1])
    return lines, size


def last_event(root: Path) -> int:
    with sqlite3.connect(root / ".factory" / "log.db") as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]


def run(size: str, agents: int, minutes: float) -> dict:
    root = stream_base(size, agents, minutes)
    tally = WORK / f"stream-{size}-{agents}.tally"
    tally.unlink(missing_ok=True)
    env = dict(os.environ, TEXTUAL="", PYTHONPATH=str(ROOT), STREAM_AGENT_SECONDS=str(AGENT_SECONDS),
               STREAM_AGENT_TALLY=str(tally),
               STREAM_AGENT_RATE="300", STREAM_AGENT_SEED="3")
    errors = (WORK / f"stream-{size}-{agents}.stderr").open("w", encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(agents)], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT)
    said: list[dict] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                what = json.loads(line)
            except ValueError:
                continue
            said.append(what)
            if "ready" in what or "error" in what:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cpu_per_minute: list[float] = []
    loads: list[float] = []
    rss_per_minute: list[float] = []
    threads_per_minute: list[dict[str, float]] = []
    try:
        if not ready.wait(300) or any("error" in what for what in said):
            raise SystemExit(f"[{size}, {agents} agents] the console did not get going: "
                             f"{[w for w in said if 'error' in w]}; see {errors.name}")
        lines0 = output_lines(tally)
        events0 = last_event(root)
        started = time.monotonic()
        cpu = process_cpu(child.pid)
        threads_before = thread_cpu(child.pid)
        minute_start = started
        writing = threading.Event()

        def writes() -> None:
            # A real second process every CROSS_EVERY seconds, in its own
            # thread so that a slow one never delays the CPU readings.
            n = 0
            while not writing.wait(CROSS_EVERY):
                n += 1
                cross_process(root, n, child)

        writer = threading.Thread(target=writes, daemon=True)
        writer.start()
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            done = now - started >= minutes * 60
            if now - minute_start >= 60 or done:
                spent = process_cpu(child.pid)
                cpu_per_minute.append((spent - cpu) / (now - minute_start))
                threads_now = thread_cpu(child.pid)
                names = {}
                for what in said:
                    names.update(what.get("threads", {}))
                shares: dict[str, float] = {}
                for tid, seconds in threads_now.items():
                    group = thread_group(names.get(str(tid)), tid, child.pid)
                    shares[group] = shares.get(group, 0.0) + (seconds - threads_before.get(tid, 0.0))
                threads_per_minute.append({group: used / (now - minute_start) for group, used in shares.items()})
                threads_before = threads_now
                loads.append(os.getloadavg()[0])
                rss_per_minute.append(process_rss_mb(child.pid))
                cpu, minute_start = spent, now
            if done:
                break
        writing.set()
        writer.join(timeout=60)
        lines1 = output_lines(tally)
        events1 = last_event(root)
        window = time.monotonic() - started
    finally:
        if child.poll() is None:
            assert child.stdin is not None
            child.stdin.write("stop\n")
            child.stdin.flush()
            try:
                child.wait(180)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        reader.join(timeout=10)
        errors.close()
    plan_keys = [ms for what in said for ms in what.get("plan_keys", ())]
    log_keys = [ms for what in said for ms in what.get("log_keys", ())]
    cross = [what["cross"] for what in said if "cross" in what and what["cross"] is not None]
    missed = sum(1 for what in said if "cross" in what and what["cross"] is None)
    return {
        "missed": missed,
        "cpu": cpu_per_minute,
        "rss": rss_per_minute,
        "threads": threads_per_minute,
        "plan_keys": plan_keys,
        "log_keys": log_keys,
        "cross": cross,
        "lines_per_second": (lines1[0] - lines0[0]) / window,
        "kb_per_second": (lines1[1] - lines0[1]) / 1024 / window,
        "events_per_second": (events1 - events0) / window,
        "load": os.getloadavg()[0],
        "load_during": statistics.mean(loads) if loads else os.getloadavg()[0],
    }


def cross_process(root: Path, n: int, child: subprocess.Popen) -> None:
    """``factory plan add`` as a real second process; the console times the
    task from its commit to the frame that shows it."""
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(root), "plan", "add", "--state", "held", "--json",
         f"cross-process write {n}"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, check=False,
    )
    if done.returncode == 0:
        assert child.stdin is not None
        child.stdin.write(f"watch {json.loads(done.stdout)['id']}\n")
        child.stdin.flush()


def summary(result: dict) -> dict[str, str]:
    cpu = result["cpu"]
    plan, log, cross = result["plan_keys"], result["log_keys"], result["cross"]
    return {
        "agents' output": f"{result['lines_per_second']:,.0f} lines/s, {result['kb_per_second']:,.0f} KB/s",
        "events written": f"{result['events_per_second']:,.1f}/s",
        "console CPU per minute": " ".join(f"{share * 100:.0f}%" for share in cpu),
        **{f"  of it, {group}": " ".join(f"{minute.get(group, 0) * 100:.0f}%" for minute in result["threads"])
           for group in ("console loop", "console workers", "engine loop", "engine calls", "other")},
        "console RSS per minute": " ".join(f"{mb:.0f}" for mb in result["rss"]) + " MB",
        "CPU last minute / first": f"{cpu[-1] / cpu[0]:.2f}" if len(cpu) > 1 and cpu[0] else "—",
        "Plan key to frame": f"p50 {statistics.median(plan):.0f} ms, p95 {percentile(plan, 0.95):.0f} ms ({len(plan)})"
        if plan else "—",
        "Log page to frame": f"p50 {statistics.median(log):.0f} ms, p95 {percentile(log, 0.95):.0f} ms ({len(log)})"
        if log else "—",
        "CLI write to frame": f"p50 {statistics.median(cross):.0f} ms, max {max(cross):.0f} ms ({len(cross)}"
        + (f", {result['missed']} not within 5 s)" if result["missed"] else ")") if cross else "—",
        "load average at the end": f"{result['load']:.2f}",
        "load average during": f"{result['load_during']:.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="minutes of streaming per run (default 2)")
    parser.add_argument("--long", action="store_true", help="ten minutes per run")
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 8], help="agents at once (default: 2 8)")
    parser.add_argument("--only", choices=sorted(BASES), help="one base only")
    args = parser.parse_args()
    minutes = 10.0 if args.long else args.minutes
    columns: dict[str, dict[str, str]] = {}
    for size in [args.only] if args.only else list(BASES):
        for agents in args.agents:
            name = f"{size}, {agents} agents"
            print(f"[{name}] {minutes:g} minutes; load {os.getloadavg()[0]:.2f}", flush=True)
            columns[name] = summary(run(size, agents, minutes))
            print("  " + "; ".join(f"{k}: {v}" for k, v in columns[name].items()), flush=True)
    rows = list(next(iter(columns.values())))
    width = max(len(row) for row in rows) + 2
    widths = {name: max(len(name), *(len(col[row]) for row in rows)) + 2 for name, col in columns.items()}
    print()
    print("".ljust(width) + "".join(name.ljust(widths[name]) for name in columns))
    for row in rows:
        print(row.ljust(width) + "".join(columns[name][row].ljust(widths[name]) for name in columns))


if __name__ == "__main__":
    main()
