"""The engine under the faults found by trying to break it (issue: hardening).

A busy log, an engine stopped with SIGSTOP, an engine killed inside the
window between starting an agent and recording it, agents that leave
processes behind in other sessions, agents that report failure while exiting
0, agents that break their worktree or do nothing, a disk that fills up.

Everything is real: ``factory run`` subprocesses, real agents (the small
scripted agent of ``test_engine.py``, stand-ins for ``claude`` and ``codex``),
real git, real SQLite, a real lock held by another process. Crash windows are
hit with the engine's fault points (``FACTORY_FAULTS``), not with sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import State
from tests.engine_helpers import (
    add,
    agent_pid,
    agent_profile,
    alive,
    configure,
    environment,
    events,
    factory,
    git,
    no_traceback_anywhere,
    run_dir,
    start_factory,
    starts,
    task,
    wait_for,
)

LEASE = "2"  # seconds: leases run out within a test's patience


def lease_env(**extra: str) -> dict[str, str]:
    return environment(FACTORY_LEASE_SECONDS=LEASE, **extra)


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def lease_expiry(base: FactoryBase, task_id: str) -> float | None:
    """The task's lease expiry, read with plain sqlite3 (a read never waits
    for a writer in WAL mode)."""
    conn = sqlite3.connect(f"file:{base.log_path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT lease_expires FROM tasks WHERE seq = ?", (int(task_id[2:]),)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


LOCKER = r"""
import sqlite3, sys, time, os
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()          # says: the lock is held
deadline = time.monotonic() + 300
while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
    time.sleep(0.02)
conn.execute("ROLLBACK")
"""


class HeldLog:
    """Another process holding the log's write lock (BEGIN IMMEDIATE) until
    released: a real lock, as a slow import or a stuck tool would hold it."""

    def __init__(self, base: FactoryBase, folder: Path) -> None:
        self.held = folder / "lock-held"
        self.gate = folder / "lock-gate"
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(base.log_path), str(self.held), str(self.gate)])
        wait_for(self.held.exists, "the other process to hold the log's write lock")

    def release(self) -> None:
        self.gate.touch()
        self.process.wait(timeout=30)


# --- 1. a busy log is a passing condition ------------------------------------------


def test_a_log_held_by_another_process_kills_no_agent_and_fails_no_task(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, max_parallel=2, default_agent="steady", agents={
        "steady": agent_profile(agent, AGENT_GATE=str(gate)),
        # Says nothing while it works: only heartbeats write for it.
        "silent": agent_profile(agent, AGENT_GATE=str(gate), AGENT_LINES="0"),
    })
    talkative = add(base, "Talk while the log is locked")
    silent = add(base, "Keep quiet while the log is locked", profile="silent")
    engine = start_factory(base, "run", output=tmp_path / "engine.out", env=lease_env())
    tidy.append(engine)
    pids = {task_id: agent_pid(base, task_id) for task_id in (talkative, silent)}

    lock = HeldLog(base, tmp_path)
    try:
        # Held long enough for the leases to run out unrenewed: every
        # heartbeat in between met a busy log.
        for task_id in pids:
            wait_for(lambda task_id=task_id: lease_expiry(base, task_id) < time.time() - 1,
                     f"{task_id}'s lease to run out while the log is held")
        # The agents finish while the log is still held: their ends must wait.
        gate.touch()
        for task_id in pids:
            wait_for((run_dir(base, task_id) / "exit.code").exists, f"{task_id}'s agent to end")
        wait_for(lambda: "the log is busy" in (tmp_path / "engine.out").read_text(),
                 "the engine to say the log is busy")
        assert engine.poll() is None, (tmp_path / "engine.out").read_text()
        for task_id in pids:
            assert task(base, task_id).state is State.RUNNING
    finally:
        lock.release()

    for task_id in pids:
        wait_for(lambda task_id=task_id: task(base, task_id).state is State.REVIEW, f"{task_id} to reach review")
    output = (tmp_path / "engine.out").read_text()
    assert engine.poll() is None, output  # it never exits over a busy log
    # One busy spell, said once, however many writes waited in it.
    assert output.count("the log is busy") == 1 and output.count("the log is free again") == 1, output
    for task_id, pid in pids.items():
        assert (run_dir(base, task_id) / "exit.code").read_text().strip() == "0"
        assert not alive(pid)
        assert not events(base, task_id, "failed", "expired", "stopped")
        assert len(events(base, task_id, "claimed")) == 1
        assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
        assert git(base.worktrees_dir / task_id, "status", "--porcelain") == ""
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0
    no_traceback_anywhere(base, output)


def test_an_engine_error_after_the_agent_started_commits_what_it_left(
    base: FactoryBase, agent: Path,
) -> None:
    # The path that fails a run early (here: a fault the engine did not
    # expect while concluding) commits the agent's work like every other.
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    task_id = add(base, "Meet an engine fault")

    done = factory(base, "run", "--once", env=environment(FACTORY_FAULTS="conclude.begin=bug"))

    assert done.returncode == 1, done.stdout + done.stderr
    final = task(base, task_id)
    assert final.state is State.FAILED
    [failed] = events(base, task_id, "failed")
    assert failed.note.startswith("engine error:")
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"


# --- 2. an engine never expires its own live lease ----------------------------------


def test_an_engine_stopped_past_its_leases_renews_them_and_concludes_the_run(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate), AGENT_RECORD=str(record))})
    task_id = add(base, "Outlast a suspended engine")
    engine = start_factory(base, "run", output=tmp_path / "engine.out", env=lease_env())
    tidy.append(engine)
    agent_pid(base, task_id)

    engine.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: proc_state(engine.pid) == "T", "the engine to stop")
        # Its lease runs out, and the agent finishes while the engine sleeps.
        wait_for(lambda: lease_expiry(base, task_id) < time.time() - 2, "the lease to run out")
        gate.touch()
        wait_for((run_dir(base, task_id) / "exit.code").exists, "the agent to end")
    finally:
        engine.send_signal(signal.SIGCONT)

    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the run to be concluded")
    final = task(base, task_id)
    assert final.attempts == 1
    assert len(events(base, task_id, "claimed")) == 1
    assert not events(base, task_id, "expired", "stopped", "failed")
    assert starts(record) == [task_id]  # one paid run, not two
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0


def test_another_holders_expired_lease_is_still_reaped(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, max_parallel=1, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    busy = add(base, "Keeps the only slot busy")
    engine = start_factory(base, "run", output=tmp_path / "engine.out", env=lease_env())
    tidy.append(engine)
    agent_pid(base, busy)  # the slot is taken: the engine claims nothing more
    task_id = add(base, "Held by a worker that is gone")
    # Another worker's claim, whose lease ran out long ago (made with a clock
    # an hour behind).
    with ExecutionLog.open(base.log_path, clock=lambda: time.time() - 3600) as log:
        claim = log.claim_next("engine:gone:1", lease_seconds=60)
    assert claim is not None and claim.task.id == task_id

    wait_for(lambda: task(base, task_id).state is State.QUEUED, "the other holder's lease to be reaped")
    [expired] = events(base, task_id, "expired")
    assert expired.actor.startswith("engine:") and expired.actor != "engine:gone:1"
    gate.touch()
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the reaped task to run and reach review")
    assert "lease expired, back to queued" in (tmp_path / "engine.out").read_text()
    assert [event.actor for event in events(base, task_id, "claimed")][0] == "engine:gone:1"
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0


# --- 3. no crash window lets two agents share a worktree ---------------------------


@pytest.mark.parametrize("window", ["run.spawned", "run.marked"])
def test_an_engine_killed_while_starting_an_agent_never_lets_two_share_a_worktree(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy, window: str,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate), AGENT_RECORD=str(record))})
    task_id = add(base, "Start at a bad moment")
    # Killed right after the run was marked (before its supervisor started)
    # or right after the supervisor started (before its pid was recorded).
    first = start_factory(base, "run", output=tmp_path / "first.out",
                          env=environment(FACTORY_FAULTS=f"{window}=kill"))
    tidy.append(first)
    assert first.wait(timeout=60) == -signal.SIGKILL
    marker = json.loads((run_dir(base, task_id) / "run.json").read_text())
    assert marker["token"] and marker["supervisor_pid"] is None
    if window == "run.spawned":
        wait_for(lambda: starts(record) == [task_id], "the first attempt's agent to start")
        first_agent = agent_pid(base, task_id)

    second = start_factory(base, "run", output=tmp_path / "second.out")
    tidy.append(second)
    if window == "run.spawned":
        # The running attempt is found by the name in its environment and
        # taken over: no second attempt while it runs.
        wait_for(lambda: "took over its running agent" in (tmp_path / "second.out").read_text(),
                 "the second engine to take the run over")
        assert alive(first_agent)
        assert task(base, task_id).attempts == 1
    gate.touch()
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the task to reach review")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0

    ends = [line for line in record.read_text().splitlines() if line.startswith("end ")]
    assert len(starts(record)) == 1 and len(ends) == 1  # exactly one agent ever ran
    # Taken over, or given back (a run that never started is no attempt).
    assert task(base, task_id).attempts == 1
    no_traceback_anywhere(base, (tmp_path / "second.out").read_text())


def test_a_live_process_of_an_earlier_run_is_stopped_before_a_new_attempt_starts(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    # A process of a run of T-1 still at work in another session (an
    # earlier plan's run, say), and a new T-1 about to start in that place.
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    old_run = run_dir(base, "T-1")
    old_run.mkdir(parents=True)
    leftover = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, "FACTORY_RUN": str(old_run)}, start_new_session=True)
    tidy.append(leftover.pid)
    task_id = add(base, "Start where a run still works")
    assert task_id == "T-1"

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert leftover.wait(timeout=30) is not None  # stopped, and reaped by us
    assert task(base, task_id).state is State.REVIEW
    assert list(old_run.parent.glob("1.earlier-*")), "the earlier run's folder is kept aside"


# --- 4. every process an agent started ends with its run ---------------------------

ESCAPER = r'''
import os, subprocess, sys
from pathlib import Path
run = Path(os.environ["FACTORY_RUN"])
# A new session (setsid) and a double-forked daemon: neither is in the run's
# process group any more.
subprocess.Popen(["setsid", "sh", "-c", f"echo $$ > {run}/setsid.pid; exec sleep 300"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        (run / "daemon.pid").write_text(str(os.getpid()))
        import time
        time.sleep(300)
    os._exit(0)
import time
while not ((run / "setsid.pid").exists() and (run / "daemon.pid").exists()):
    time.sleep(0.01)
Path("escaped.txt").write_text("work\n")
gate = os.environ.get("AGENT_GATE")
if gate:
    import time
    while not os.path.exists(gate):
        time.sleep(0.02)
'''


@pytest.mark.parametrize("how", ["finish", "cancel", "timeout"])
def test_processes_that_left_the_run_s_group_end_with_it(
    base: FactoryBase, tmp_path: Path, tidy, how: str,
) -> None:
    script = tmp_path / "escaper.py"
    script.write_text(ESCAPER)
    knobs = {} if how == "finish" else {"AGENT_GATE": str(tmp_path / "never")}
    profile = agent_profile(script, timeout=3 if how == "timeout" else 120, **knobs)
    configure(base, default_agent="escaper", agents={"escaper": profile})
    task_id = add(base, "Leave daemons behind")
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    folder = run_dir(base, task_id)
    def pids() -> list[int] | None:
        # A pid file can be there and still empty for a moment.
        texts = [(folder / name).read_text().strip() if (folder / name).exists() else ""
                 for name in ("setsid.pid", "daemon.pid")]
        return [int(text) for text in texts] if all(text.isdigit() for text in texts) else None

    escaped = wait_for(pids, "the agent's escaped processes to start")
    tidy.extend(escaped)
    if how == "cancel":
        factory(base, "task", "cancel", task_id)

    for pid in escaped:
        wait_for(lambda pid=pid: not alive(pid), f"escaped process {pid} to end with its run", limit=30)
    wanted = {"finish": State.REVIEW, "cancel": State.CANCELLED, "timeout": State.FAILED}[how]
    wait_for(lambda: task(base, task_id).state is wanted, f"{task_id} to be {wanted}")
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0


# --- 6(c, e). an agent's failure is a failure, whatever its exit status -------------

AUTH_EXPIRED = (
    '{"type":"system","subtype":"init","cwd":"/tmp","session_id":"s","model":"claude-x"}\n'
    '{"type":"result","subtype":"success","is_error":true,"duration_ms":120,"num_turns":1,'
    '"result":"Failed to authenticate: OAuth session expired. Please run /login.",'
    '"session_id":"s","total_cost_usd":0}\n'
)
CODEX_FAILED = (
    '{"type":"thread.started","thread_id":"t"}\n'
    '{"type":"turn.started"}\n'
    '{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}\n'
)


@pytest.mark.parametrize("output, stream, reason", [
    ("claude-stream-json", AUTH_EXPIRED, "Failed to authenticate: OAuth session expired"),
    ("codex-json", CODEX_FAILED, "turn failed: stream disconnected before completion"),
], ids=["claude", "codex"])
def test_an_agent_that_reports_failure_and_exits_0_fails_its_task(
    base: FactoryBase, tmp_path: Path, output: str, stream: str, reason: str,
) -> None:
    # A stand-in that replays what the real CLI printed, changes a file
    # (so that "no work" is not the reason) and exits 0.
    replay = tmp_path / "stream.jsonl"
    replay.write_text(stream)
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(
        "import sys, pathlib\n"
        "pathlib.Path('touched.txt').write_text('x')\n"
        f"sys.stdout.write(pathlib.Path({str(replay)!r}).read_text())\n")
    configure(base, default_agent="stand-in", agents={"stand-in": {
        "argv": ["{python}", str(stand_in)], "output": output, "timeout": 60}})
    task_id = add(base, "Run with an expired login")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    assert task(base, task_id).state is State.FAILED
    [failed] = events(base, task_id, "failed")
    assert failed.note.startswith("the agent reported a failure")
    assert reason in failed.note
    assert json.loads((run_dir(base, task_id) / "exit.json").read_text())["exit_code"] == 0


def test_an_agent_that_deletes_its_worktree_s_git_is_failed_and_its_files_named(
    base: FactoryBase, tmp_path: Path,
) -> None:
    vandal = tmp_path / "vandal.py"
    vandal.write_text(
        "import os, pathlib\n"
        "pathlib.Path('result.txt').write_text('the work')\n"
        "os.remove('.git')\n")
    configure(base, default_agent="vandal", agents={"vandal": agent_profile(vandal)})
    task_id = add(base, "Break the worktree")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    assert task(base, task_id).state is State.FAILED
    [failed] = events(base, task_id, "failed")
    assert "its .git is gone" in failed.note and "result.txt" in failed.note
    assert (base.worktrees_dir / task_id / "result.txt").read_text() == "the work"  # kept
    no_traceback_anywhere(base, done.stdout, done.stderr)


def test_an_agent_that_leaves_no_work_does_not_reach_review(base: FactoryBase, tmp_path: Path) -> None:
    idle = tmp_path / "idle.py"
    idle.write_text("print('I looked around and changed nothing')\n")
    configure(base, default_agent="idle", agents={"idle": agent_profile(idle)})
    task_id = add(base, "Do nothing")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    [failed] = events(base, task_id, "failed")
    assert "no work to review" in failed.note


# --- 8. files are the owner's; transcripts are safe to tail ------------------------


def test_run_folders_and_files_are_the_owner_s_alone(base: FactoryBase, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.py"
    noisy.write_text(
        "import pathlib\n"
        "pathlib.Path('out.txt').write_text('x')\n"
        "print('\\x1b[2J\\x1b]0;owned\\x07 red \\x1b[31mtext\\x9b')\n")
    configure(base, default_agent="noisy", agents={"noisy": agent_profile(noisy)})
    task_id = add(base, "Print escapes")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    folder = run_dir(base, task_id)
    for path in (folder.parent.parent, folder.parent, folder):
        assert path.stat().st_mode & 0o777 == 0o700, path
    for name in ("prompt.md", "run.json", "output.raw", "transcript.log", "agent.pid", "exit.code", "exit.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    transcript = (folder / "transcript.log").read_text(encoding="utf-8")
    assert "\x1b" not in transcript and "\x07" not in transcript and "\x9b" not in transcript
    assert "␛[31mtext" in transcript
    assert "\x1b[31m" in (folder / "output.raw").read_text(encoding="utf-8", errors="replace")
    # The agent's own files are made under the engine's umask, not the run's.
    umask = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                     if line.startswith("Umask:")), 8)
    assert (base.worktrees_dir / task_id / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_living_documents_that_lead_outside_the_repository_are_not_read(
    base: FactoryBase, agent: Path, tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("SECRET-KEY-123\n")
    (base.artifacts_dir / "leak.md").symlink_to(secret)
    os.mkfifo(base.artifacts_dir / "pipe.md")  # would block a reader for ever
    (base.artifacts_dir / "practices.md").write_text("Write tests first.\n")
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    task_id = add(base, "Read the documents")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    prompt = (run_dir(base, task_id) / "prompt.md").read_text()
    assert "Write tests first." in prompt
    assert "SECRET-KEY-123" not in prompt


# --- 8. a full disk stops the engine with one line ---------------------------------


def test_a_disk_that_fills_as_a_run_starts_stops_the_engine_and_gives_the_task_back(
    base: FactoryBase, agent: Path,
) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    task_id = add(base, "Start on a full disk")

    done = factory(base, "run", env=environment(FACTORY_FAULTS="run.marked=fail"))

    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("factory: ") and "the disk is full" in line
    assert task(base, task_id).state is State.QUEUED  # not left running
    assert not events(base, task_id, "failed")
    # With room again, the task runs.
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert task(base, task_id).state is State.REVIEW


DISK_FULL_SCRIPT = r'''
set -e
python() { "$PY" "$@"; }
mount -t tmpfs -o size=3m tmpfs "$DISK"
cp -a "$SOURCE" "$DISK/repo"
cd "$DISK/repo"
python -m factory_tui run > "$DISK/../engine.out" 2> "$DISK/../engine.err" &
engine=$!
while [ ! -e "$DISK/repo/.factory/runs/T-1/1/agent.pid" ]; do sleep 0.02; done
# Fill the disk, then let the agent finish.
dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null || true
touch "$GATE"
status=0; wait $engine || status=$?
echo "$status" > "$DISK/../engine.status"
rm -f "$DISK/filler"
python -m factory_tui plan list --json > "$DISK/../after.json"
python -m factory_tui run --once > "$DISK/../again.out" 2>&1 || true
python -m factory_tui plan list --json > "$DISK/../final.json"
'''


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a private tmpfs")
def test_a_disk_that_fills_under_a_running_engine_stops_it_with_one_line_and_loses_nothing(
    base: FactoryBase, agent: Path, tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    add(base, "Work on a disk that fills")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rm is not allowed here: {probe.stderr.decode().strip()}")
    disk = tmp_path / "disk" / "mnt"
    disk.mkdir(parents=True)
    env = environment(DISK=str(disk), SOURCE=str(base.root), GATE=str(gate), PY=sys.executable)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", DISK_FULL_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = disk.parent
    status = int((out / "engine.status").read_text())
    errors = (out / "engine.err").read_text()
    assert status == 1, errors + (out / "engine.out").read_text()
    assert len(errors.strip().splitlines()) == 1 and errors.startswith("factory: "), errors
    assert "full" in errors
    assert "Traceback" not in errors + (out / "engine.out").read_text() + (out / "again.out").read_text()
    # Nothing lost: after room was made, the next engine finished the task
    # (its agent's work is on its branch, in review or failed with a reason).
    final = json.loads((out / "final.json").read_text())
    assert final[0]["state"] in ("review", "failed"), final


# --- 7. ids and branches of another plan are never taken over ---------------------


def _someones_branch(base: FactoryBase, branch: str) -> str:
    git(base.root, "checkout", "-q", "-b", branch)
    (base.root / "theirs.txt").write_text("someone else's work\n")
    git(base.root, "add", "theirs.txt")
    git(base.root, "commit", "-q", "-m", "someone else's commit")
    git(base.root, "checkout", "-q", "main")
    return git(base.root, "rev-parse", branch)


def test_a_branch_the_plan_did_not_make_is_never_run_on_or_merged(base: FactoryBase, agent: Path) -> None:
    theirs = _someones_branch(base, "factory/T-1")
    main_before = git(base.root, "rev-parse", "main")
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    task_id = add(base, "A new T-1")
    assert task_id == "T-1"

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    [failed] = events(base, task_id, "failed")
    assert "branch factory/T-1 exists with 1 commit this plan did not make" in failed.note
    assert "git branch -m factory/T-1" in failed.note
    assert git(base.root, "rev-parse", "factory/T-1") == theirs  # untouched
    assert git(base.root, "rev-parse", "main") == main_before
    assert not (base.worktrees_dir / task_id).exists()
    # Renamed as the message says, the task runs on a branch of its own.
    git(base.root, "branch", "-m", "factory/T-1", "old/T-1")
    factory(base, "task", "requeue", task_id)
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    approved = factory(base, "task", "approve", task_id)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "theirs.txt" not in git(base.root, "ls-tree", "--name-only", "main")


def test_a_new_log_after_the_old_one_was_deleted_does_not_adopt_its_branches(
    base: FactoryBase, agent: Path,
) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    add(base, "The old plan's T-1")
    assert factory(base, "run", "--once").returncode == 0  # factory/T-1 with work, in review
    old_tip = git(base.root, "rev-parse", "factory/T-1")
    base.log_path.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(base.log_path) + extra).unlink(missing_ok=True)
    init = factory(base, "init", str(base.root))
    assert init.returncode == 0 and "factory/T-1" in init.stdout, init.stdout + init.stderr
    task_id = add(base, "The new plan's T-1")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    [failed] = events(base, task_id, "failed")
    assert "this plan did not make" in failed.note or "not a worktree" in failed.note, failed.note
    assert git(base.root, "rev-parse", "factory/T-1") == old_tip
