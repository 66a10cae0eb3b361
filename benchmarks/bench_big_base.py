"""The reading commands on a small base and on a big one, side by side.

    python benchmarks/bench_big_base.py [--rounds 3] [--only small|big]
                                        [--code DIR] [--cache DIR]

The small base is 10,000 tasks and 100,000 events (30 worktrees), the big
one 100,000 tasks and 1,000,000 events (300 worktrees), both made by
benchmarks/big_base.py (cached). Each command runs as a real process
(``python -c RUNNER --base BASE …``: the CLI as ``python -m factory_tui``
runs it), its output read and thrown away by this process as a terminal
would read it. Three figures per command, medians over ``--rounds``: "own
s", the command itself, from after the imports every command pays to the
process's exit (the process reports it on stderr); "wall s", the whole
process; and its peak memory (the child's ``ru_maxrss`` from
``os.wait4``).

* ``log``, ``log --json``: the whole history (the target: memory that does
  not grow with the log);
* ``log | head``: the time until the command exits when its reader stops
  after ten lines;
* ``log --task``: one task's events;
* ``plan list``: the open plan (done and cancelled tasks counted, not
  listed); ``plan list --all`` and ``plan list --json``: the whole plan
  (an older checkout, given with ``--code``, lists the whole plan without
  ``--all``: it runs ``plan list`` for both rows);
* ``plan show``: a task in review (a merge check with git, its events, its
  cost) and a done one;
* ``status``: counts, the engine, cost, the log's size;
* prompt: the engine's ``_prompt_for`` for a task whose dependency has
  run (timed inside the process: what the engine pays per claim, without
  the start-up).

Targets (issue 11 §2): ``plan list``, ``plan show``, ``status`` and the
prompt's look-ups under 0.3 s at 100k/1M ("own s"; ``plan list`` also
whole, "wall s"); ``factory log`` and ``plan list`` in constant memory.

``--code DIR`` also runs every command with the ``factory_tui`` package of
another checkout (before/after, paired: A and B alternate within each
round). Its base is a copy of ours taken back to schema 10, for a checkout
from before the events-by-task index.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from big_base import cached_big_base  # noqa: E402

SIZES = {"small": (10_000, 100_000, 30), "big": (100_000, 1_000_000, 300)}
TARGET_SECONDS = 0.3

# Runs the CLI as ``python -m factory_tui`` would, and says on stderr how
# long the command itself took: from after the imports that every command
# pays (the interpreter, click, the CLI's own modules) to the process's
# exit. What a command imports beyond them (the log, the operator, git) is
# its own cost.
RUNNER = r"""
import atexit, os, sys, time
from factory_tui.cli import main
start = time.perf_counter()
atexit.register(lambda: os.write(2, f"\nbench-seconds {time.perf_counter() - start:.6f}\n".encode()))
sys.argv[0] = "factory"
main()
"""

PROMPT = r"""
import sys, time
from pathlib import Path
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.session import FactorySession
from factory_tui.engine import Engine
base = FactoryBase(Path(sys.argv[1]))
engine = Engine(base)
engine.session = FactorySession(base)
engine.config, engine.log, engine.worktrees = engine.session.config, engine.session.log, engine.session.worktrees
task = engine.log.get_task(sys.argv[2])
start = time.perf_counter()
prompt = engine._prompt_for(task, task.attempts + 1)
print(f"{time.perf_counter() - start:.6f}")
"""


def environment(code: Path | None) -> dict[str, str]:
    env = dict(os.environ, TZ="UTC", NO_COLOR="1")
    for name in ("FACTORY_TASK", "FACTORY_BASE", "FACTORY_RUN", "FACTORY_TOKEN"):
        env.pop(name, None)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def run(argv: list[str], env: dict[str, str], *, head: int | None = None) -> tuple[float, float, str, float | None]:
    """(seconds, peak MB, last line of output, the command's own seconds
    if it said) of one process; ``head``: stop reading after that many
    lines, as ``| head`` does."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/")
    assert process.stdout is not None and process.stderr is not None
    last = b""
    lines = 0
    for line in process.stdout:
        last = line
        lines += 1
        if head is not None and lines >= head:
            break
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and head is None:
        raise SystemExit(f"{' '.join(argv[3:])} failed ({process.returncode}): {error.strip()[-500:]}")
    own = next((float(line.split()[1]) for line in error.splitlines() if line.startswith("bench-seconds ")), None)
    return seconds, usage.ru_maxrss / 1024, last.decode(errors="replace").strip(), own


def pick_tasks(root: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{root / '.factory' / 'log.db'}?mode=ro", uri=True)
    try:
        review = conn.execute("SELECT seq FROM tasks WHERE state = 'review' ORDER BY seq DESC LIMIT 1").fetchone()[0]
        done = conn.execute(
            "SELECT task_id FROM events WHERE kind = 'progress' GROUP BY task_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        # A task whose dependency ran: its prompt says how that run ended.
        waiting = conn.execute(
            "SELECT d.task FROM deps AS d JOIN tasks AS u ON u.seq = d.depends_on "
            "WHERE u.state = 'done' ORDER BY d.task DESC LIMIT 1"
        ).fetchone()[0]
    finally:
        conn.close()
    return {"review": f"T-{review}", "busy": done, "prompt": f"T-{waiting}"}


def commands(root: Path, picked: dict[str, str]) -> list[tuple[str, list[str], int | None]]:
    return [
        ("log", ["log"], None),
        ("log --json", ["log", "--json"], None),
        ("log | head", ["log"], 10),
        ("log --task", ["log", "--task", picked["busy"]], None),
        ("plan list", ["plan", "list"], None),
        ("plan list --all", ["plan", "list", "--all"], None),
        ("plan list --json", ["plan", "list", "--json"], None),
        ("plan show (review)", ["plan", "show", picked["review"]], None),
        ("plan show (done)", ["plan", "show", picked["busy"]], None),
        ("status", ["status"], None),
    ]


def before_copy(root: Path, folder: Path) -> Path:
    """A copy of the base's files that an older factory-tui reads: the log
    at schema 10, without the events-by-task index and the runs' sums."""
    copy = folder / root.name
    if (copy / ".complete").exists():
        return copy
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns("worktrees"))
    # factory.toml as an older factory-tui knows it: no [log] table.
    config = copy / ".factory" / "factory.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^\[log\]\n(#.*\n)*", "", text), encoding="utf-8")
    conn = sqlite3.connect(copy / ".factory" / "log.db", isolation_level=None)
    try:
        conn.execute("DROP INDEX IF EXISTS idx_events_task")
        conn.execute("DROP TRIGGER IF EXISTS events_usage")
        conn.execute("DROP TABLE IF EXISTS usage_buckets")
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
        conn.execute("CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
                     "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")
        conn.execute("PRAGMA user_version=10")
    finally:
        conn.close()
    return copy


def measure(size: str, rounds: int, cache: Path | None, code: Path | None) -> dict[str, dict[str, list]]:
    tasks, events, worktrees = SIZES[size]
    root = cached_big_base(tasks=tasks, events=events, worktrees=worktrees, cache=cache)
    picked = pick_tasks(root)
    sides: dict[str, tuple[Path, dict[str, str]]] = {"this": (root, environment(None))}
    if code is not None:
        sides["before"] = (before_copy(root, Path(cache or root.parent) / "before"), environment(code))
    figures: dict[str, dict[str, list]] = {}
    for _ in range(rounds):
        for name, args, head in commands(root, picked):
            for side, (where, env) in sides.items():
                # An older checkout has no --all: its `plan list` is the whole plan.
                told = [arg for arg in args if arg != "--all"] if side == "before" else args
                argv = [sys.executable, "-c", RUNNER, "--base", str(where), *told]
                seconds, peak, _, own = run(argv, env, head=head)
                entry = figures.setdefault(f"{name}|{side}", {"s": [], "own": [], "mb": []})
                entry["s"].append(seconds)
                entry["own"].append(own if own is not None else seconds)
                entry["mb"].append(peak)
        for side, (where, env) in sides.items():
            seconds, peak, last, _ = run([sys.executable, "-c", PROMPT, str(where), picked["prompt"]], env)
            entry = figures.setdefault(f"prompt|{side}", {"s": [], "own": [], "mb": []})
            entry["s"].append(seconds)
            entry["own"].append(float(last))
            entry["mb"].append(peak)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SIZES))
    parser.add_argument("--code", type=Path, default=None, help="another checkout to compare with (paired)")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [args.only] if args.only else ["small", "big"]
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load {load:.1f} at the start; {args.rounds} rounds, medians")
    results = {size: measure(size, args.rounds, args.cache, args.code) for size in sizes}
    names = list(results[sizes[0]])
    print(f"{'':<30}" + "".join(f"{size + (' 10k/100k' if size == 'small' else ' 100k/1M'):>30}" for size in sizes))
    print(f"{'command':<30}" + f"{'own s':>10}{'wall s':>10}{'peak MB':>10}" * len(sizes))
    ok = True
    for name in names:
        label = name.replace("|this", "").replace("|before", " [before]")
        cells = ""
        for size in sizes:
            entry = results[size][name]
            cells += (f"{statistics.median(entry['own']):>10.3f}{statistics.median(entry['s']):>10.3f}"
                      f"{max(entry['mb']):>10.0f}")
        print(f"{label:<30}{cells}")
        if "big" in results and name.endswith("|this") and name.split(" ")[0] in ("plan", "status", "prompt|this") \
                and name not in ("plan list --all|this", "plan list --json|this"):
            ok = ok and statistics.median(results["big"][name]["own"]) < TARGET_SECONDS
            if name == "plan list|this":
                ok = ok and statistics.median(results["big"][name]["s"]) < TARGET_SECONDS
    print(f"load {os.getloadavg()[0]:.1f} at the end. own s: the command itself, after the imports every "
          "command pays (start-up: wall less own)")
    if "big" in results:
        print(f"plan list (own and wall), plan show, status and the prompt under {TARGET_SECONDS} s on the big base (own): "
              f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
