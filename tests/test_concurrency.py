"""Several real processes sharing one execution log: every task is claimed
exactly once, and a killed worker's task comes back to the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import LeaseLost
from factory_tui.model import NewTask, State

WORKERS = 4
TASKS = 200

# A worker is a separate Python process that runs this script.
WORKER = textwrap.dedent(
    """
    import json, sys, time, traceback
    from pathlib import Path

    from factory_tui.backends.log import ExecutionLog
    from factory_tui.model import State

    log_path, name, mode, go = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])

    def say(**message):
        print(json.dumps(message), flush=True)

    try:
        log = ExecutionLog.open(log_path)
        say(ready=name)
        # Start together, so that the claims really contend.
        while not go.exists():
            time.sleep(0.005)
        if mode == "drain":
            claimed = []
            while (claim := log.claim_next(name, lease_seconds=60)) is not None:
                claimed.append(claim.task.id)
                time.sleep(0.002)  # the work, so that the others get a turn
                task = log.finish(claim.token, State.REVIEW, note=f"done by {name}")
                assert task.state is State.REVIEW, task
            say(claimed=claimed)
        elif mode == "hold-lease":
            claim = log.claim_next(name, lease_seconds=1.0)
            say(task=claim.task.id, token=claim.token, expires_at=claim.expires_at)
            time.sleep(3600)
        elif mode == "hold-write-lock":
            conn = log._conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE tasks SET title = 'half-written' WHERE seq = 1")
            say(locked=True)
            time.sleep(3600)
    except BaseException as error:
        say(error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        sys.exit(1)
    """
)


@pytest.fixture
def worker_script(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    return script


def start_worker(script: Path, log_path: Path, name: str, mode: str, go: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(script), str(log_path), name, mode, str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_message(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=60)
        raise AssertionError(f"worker said nothing; stderr:\n{process.stderr.read()}")
    message = json.loads(line)
    assert "error" not in message, message.get("traceback", message["error"])
    return message


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    process.stderr.close()


def test_four_processes_claim_every_task_exactly_once(tmp_path: Path, worker_script: Path) -> None:
    log_path = tmp_path / "log.db"
    with ExecutionLog.open(log_path, create=True) as log:
        log.add_tasks(
            [NewTask(title=f"task {n}", priority=n % 3) for n in range(TASKS)], actor="seed")
    go = tmp_path / "go"
    workers = [
        start_worker(worker_script, log_path, f"worker-{n}", "drain", go) for n in range(WORKERS)
    ]
    try:
        for process in workers:
            assert read_message(process) == {"ready": process.args[3]}
        go.touch()
        claimed: dict[str, list[str]] = {}
        for process in workers:
            message = read_message(process)
            claimed[process.args[3]] = message["claimed"]
            assert process.wait(timeout=120) == 0
            stderr = process.stderr.read()
            assert "locked" not in stderr and "Traceback" not in stderr, stderr
    finally:
        for process in workers:
            kill(process)

    every_claim = [task for ids in claimed.values() for task in ids]
    # The claims really contended: more than one process got work.
    assert sum(1 for ids in claimed.values() if ids) >= 2, claimed
    assert len(every_claim) == TASKS
    assert sorted(every_claim) == sorted(f"T-{n}" for n in range(1, TASKS + 1))
    with ExecutionLog.open(log_path) as log:
        tasks = log.list_tasks()
        assert {task.state for task in tasks} == {State.REVIEW}
        assert {task.attempts for task in tasks} == {1}
        assert log.live_leases() == []
        # The log agrees with what each worker saw: one claim and one finish
        # per task, by the worker that claimed it.
        claims = log.events(kinds=["claimed"])
        finishes = log.events(kinds=["finished"])
        assert sorted(e.task_id for e in claims) == sorted(every_claim)
        assert sorted(e.task_id for e in finishes) == sorted(every_claim)
        by_worker = {name: set(ids) for name, ids in claimed.items()}
        for event in claims + finishes:
            assert event.task_id in by_worker[event.actor]
        # Claims were serialised: in the log's order, each took the best task
        # left (priority, then id), whichever process asked.
        order = [(-log.get_task(e.task_id).priority, int(e.task_id[2:])) for e in claims]
        assert order == sorted(order)


def test_a_killed_worker_loses_its_task_to_the_queue(tmp_path: Path, worker_script: Path) -> None:
    log_path = tmp_path / "log.db"
    with ExecutionLog.open(log_path, create=True) as log:
        log.add_tasks([NewTask(title="the job"), NewTask(title="later", priority=-1)], actor="seed")
    go = tmp_path / "go"
    go.touch()
    worker = start_worker(worker_script, log_path, "doomed", "hold-lease", go)
    try:
        assert read_message(worker) == {"ready": "doomed"}
        held = read_message(worker)
        assert held["task"] == "T-1"
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=60) == -signal.SIGKILL
    finally:
        kill(worker)

    # Until the lease runs out, the reaper leaves the task alone.
    with ExecutionLog.open(log_path, clock=lambda: held["expires_at"] - 0.01) as early:
        assert early.reap_expired() == []
        assert early.get_task("T-1").state is State.RUNNING
    with ExecutionLog.open(log_path) as log:
        while time.time() <= held["expires_at"]:
            time.sleep(0.05)
        assert log.reap_expired(actor="engine") == ["T-1"]
        task = log.get_task("T-1")
        assert task.state is State.QUEUED
        expired = log.events(task_id="T-1")[-1]
        assert (expired.kind, expired.actor, expired.from_state, expired.to_state) == (
            "expired", "engine", "running", "queued")
        assert expired.data == {"lease": held["token"], "worker": "doomed"}
        assert log.reap_expired() == []
        # It is claimed again, before the lower-priority task.
        again = log.claim_next("survivor")
        assert again is not None and again.task.id == "T-1" and again.task.attempts == 2
        assert again.token != held["token"]
        # The dead worker's token is worth nothing now.
        with pytest.raises(LeaseLost, match="expired"):
            log.heartbeat(held["token"])
        with pytest.raises(LeaseLost):
            log.finish(held["token"], State.REVIEW)
        assert log.finish(again.token, State.REVIEW).state is State.REVIEW
        assert [e.kind for e in log.events(task_id="T-1")] == [
            "created", "claimed", "expired", "claimed", "finished"]


def test_a_worker_killed_inside_a_write_loses_only_its_own_write(
    tmp_path: Path, worker_script: Path
) -> None:
    log_path = tmp_path / "log.db"
    with ExecutionLog.open(log_path, create=True) as log:
        log.add_task(NewTask(title="original"), actor="seed")
    go = tmp_path / "go"
    go.touch()
    worker = start_worker(worker_script, log_path, "doomed", "hold-write-lock", go)
    try:
        assert read_message(worker) == {"ready": "doomed"}
        assert read_message(worker) == {"locked": True}
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    finally:
        kill(worker)
    # The lock died with the process; the half-done write never happened.
    with ExecutionLog.open(log_path, busy_timeout_ms=2000) as log:
        assert log.get_task("T-1").title == "original"
        claim = log.claim_next("next")
        assert claim is not None and claim.task.title == "original"
        assert [e.kind for e in log.events()] == ["created", "claimed"]
