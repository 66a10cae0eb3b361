"""Fault injection: a 30-task plan run through engines that are SIGKILLed and
SIGSTOPped at random moments (and killed at random fault points), while an
operator approves and re-queues, with a fixed seed. Afterwards the log and
the repository are checked directly, in SQLite and git:

* every task's history is a legal sequence of transitions;
* no two runs of one task ever overlapped in time (each agent records its
  start and its end, also when it is told to stop);
* every approved task's work is on main;
* no process of any run, no task worktree and no task branch is left.

Real processes throughout: ``factory run`` engines, agents, git, SQLite.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from factory_tui.backends import processes
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator
from factory_tui.errors import FactoryError
from factory_tui.model import EVENT_KIND, TRANSITIONS, Action, NewTask, State
from tests.engine_helpers import configure, environment, git, start_factory, wait_for

# A failure names its faults (printed); another seed explores other ones:
# FACTORY_FAULT_SEED=7 python -m pytest tests/test_faults.py -s
SEED = int(os.environ.get("FACTORY_FAULT_SEED", "20261129"))
TASKS = 30
CYCLES = 16
LEASE = "2"
# Where an engine may be killed on purpose, besides at random moments.
POINTS = ("claim.made", "run.marked", "run.spawned", "conclude.begin")

AGENT = r'''
import os, signal, sys, time
from pathlib import Path
task, run, record = os.environ["FACTORY_TASK"], os.environ["FACTORY_RUN"], os.environ["AGENT_RECORD"]


def mark(what):
    with open(record, "a") as handle:
        handle.write(f"{what} {task} {run} {time.time()!r}\n")


marked = []
stopping = []


def stopped(*_):
    # Told to stop (the engine may say it twice: a second call, even one
    # nested in the first, returns at once): the run ends here, marked once.
    if stopping:
        return
    stopping.append(True)
    if marked == ["start"]:
        marked.append("end")
        mark("end")
    os._exit(143)


signal.signal(signal.SIGTERM, stopped)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
mark("start")
marked.append("start")
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
Path(f"work-{task}.txt").write_text(f"work on {task}\n")
time.sleep(float(os.environ.get("AGENT_SLEEP", "0.3")))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
marked.append("end")
mark("end")
'''

ACTION_OF_KIND = {kind: action for action, kind in EVENT_KIND.items()}


class Operator_:
    """The operator at the keyboard: approves what reaches review, now and
    then re-queues it first with feedback, in a thread of its own."""

    def __init__(self, base: FactoryBase, rng: random.Random) -> None:
        self.base = base
        self.rng = rng
        self.done = threading.Event()
        self.errors: list[str] = []
        self.requeued: set[str] = set()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        with ExecutionLog.open(self.base.log_path) as log:
            operator = Operator(self.base, log)
            while not self.done.is_set():
                for task in log.list_tasks([State.REVIEW], bodies=False):
                    action = Action.APPROVE
                    if task.id not in self.requeued and self.rng.random() < 0.15:
                        action = Action.REQUEUE
                        self.requeued.add(task.id)
                    try:
                        operator.apply(task.id, action, actor="test:operator", note="again, please"
                                       if action is Action.REQUEUE else None)
                    except FactoryError as error:
                        self.errors.append(f"{task.id} {action}: {error}")
                time.sleep(0.05)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=60)


def states(base: FactoryBase) -> dict[str, State]:
    with ExecutionLog.open(base.log_path) as log:
        return {task.id: task.state for task in log.list_tasks(bodies=False)}


def run_engine_with_a_fault(base: FactoryBase, rng: random.Random, folder: Path, cycle: int) -> str:
    fault = rng.choice(["kill", "stop", "point"])
    env = environment(FACTORY_LEASE_SECONDS=LEASE, FACTORY_LOCK_TIMEOUT="60")
    if fault == "point":
        env["FACTORY_FAULTS"] = f"{rng.choice(POINTS)}=kill@{rng.randint(1, 3)}"
    engine = start_factory(base, "run", output=folder / f"engine-{cycle}.out", env=env)
    try:
        if fault == "kill":
            time.sleep(rng.uniform(0.2, 2.5))  # a random moment, chosen by the seed
            engine.kill()
        elif fault == "stop":
            time.sleep(rng.uniform(0.2, 1.5))
            engine.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(2.5, 4.0))  # longer than a lease
            engine.send_signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.5, 1.5))
            engine.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM]))
        else:
            try:
                engine.wait(timeout=rng.uniform(1.0, 4.0))
            except subprocess.TimeoutExpired:
                engine.kill()
        engine.wait(timeout=120)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    return f"{fault} {env.get('FACTORY_FAULTS', '')}".strip()


def check_history(base: FactoryBase) -> None:
    """Every task's events, replayed: each transition legal from the state
    the task was in."""
    conn = sqlite3.connect(f"file:{base.log_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT task_id, kind, from_state, to_state FROM events "
            "WHERE task_id IS NOT NULL AND to_state IS NOT NULL ORDER BY id").fetchall()
    finally:
        conn.close()
    current: dict[str, State] = {}
    for task_id, kind, from_state, to_state in rows:
        if kind == "created":
            assert task_id not in current, (task_id, kind)
            current[task_id] = State(to_state)
            continue
        assert State(from_state) is current[task_id], (task_id, kind, from_state, current[task_id])
        action = ACTION_OF_KIND[kind]
        assert TRANSITIONS.get((current[task_id], action)) is State(to_state), (task_id, kind, from_state, to_state)
        current[task_id] = State(to_state)


def check_runs_never_overlapped(record: Path) -> None:
    spans: dict[str, list[tuple[float, float]]] = {}
    open_runs: dict[str, tuple[str, float]] = {}
    for line in record.read_text().splitlines():
        what, task_id, run, at = line.split()
        if what == "start":
            assert run not in open_runs, f"{run} started twice"
            open_runs[run] = (task_id, float(at))
        else:
            task_id, began = open_runs.pop(run)
            spans.setdefault(task_id, []).append((began, float(at)))
    assert not open_runs, f"runs that never ended: {sorted(open_runs)}"
    for task_id, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            assert start >= end, f"two runs of {task_id} overlapped"


def test_thirty_tasks_through_random_kills_and_stops_lose_nothing_and_run_nothing_twice(
    base: FactoryBase, tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    record = tmp_path / "record.txt"
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    # refresh_every = 0: the factory's own proposal to refresh the living
    # documents (after every 10 landings by default) is no task of this plan.
    configure(base, max_parallel=3, default_agent="faulty", agents={"faulty": {
        "argv": ["{python}", str(script)], "output": "text", "timeout": 120,
        "env": {"AGENT_RECORD": str(record), "AGENT_SLEEP": "1.0"}}}, extra="[artifacts]\nrefresh_every = 0\n")
    with ExecutionLog.open(base.log_path) as log:
        ids = []
        for n in range(TASKS):
            after = (ids[-1],) if n % 5 == 4 else ()
            ids.append(log.add_task(NewTask(title=f"Task {n}", after=after), actor="test").id)
    operator = Operator_(base, random.Random(SEED + 1))
    faults = []
    try:
        for cycle in range(CYCLES):
            faults.append(run_engine_with_a_fault(base, rng, tmp_path, cycle))
            if all(state is State.DONE for state in states(base).values()):
                break
        # Then one engine without faults finishes the plan.
        final = start_factory(base, "run", output=tmp_path / "final.out",
                              env=environment(FACTORY_LEASE_SECONDS=LEASE))
        try:
            wait_for(lambda: "engine started" in (tmp_path / "final.out").read_text(), "the last engine to start")
            wait_for(lambda: all(state is State.DONE for state in states(base).values()),
                     "every task to be done", limit=240)
        finally:
            final.send_signal(signal.SIGTERM)
            assert final.wait(timeout=120) == 0, (tmp_path / "final.out").read_text()
    finally:
        operator.stop()
    print("faults:", "; ".join(faults))

    check_history(base)
    check_runs_never_overlapped(record)
    main_files = set(git(base.root, "ls-tree", "--name-only", "main").splitlines())
    for task_id in ids:
        assert f"work-{task_id}.txt" in main_files, f"{task_id}'s work is not on main"
    with ExecutionLog.open(base.log_path) as log:
        for task_id in ids:
            [approved] = [e for e in log.events(task_id=task_id, kinds=["approved"]) if e.to_state == "done"]
            merged = approved.note.rsplit(" at ", 1)[-1]
            assert git(base.root, "merge-base", "--is-ancestor", merged, "main") == ""
            # Every claim is an attempt, but those the engine gave back.
            claims = log.events(task_id=task_id, kinds=["claimed"])
            given_back = log.events(task_id=task_id, kinds=["stopped"])
            assert len(claims) - len(given_back) == log.get_task(task_id).attempts
    # Nothing stray: no process of any run, no task worktree, no task branch.
    prefix = str(base.runs_dir) + os.sep
    assert not processes.find(lambda run: run.startswith(prefix))
    assert git(base.root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not [p for p in base.worktrees_dir.iterdir()] if base.worktrees_dir.exists() else True
    assert git(base.root, "branch", "--list", "factory/*") == ""
    assert not operator.errors or all("conflict" not in error for error in operator.errors), operator.errors
    for output in tmp_path.glob("*.out"):
        assert "Traceback" not in output.read_text(), output
    json.dumps(faults)  # the sequence is printed above for a failure's report
