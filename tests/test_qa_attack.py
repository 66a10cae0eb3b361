"""The QA gate attacked (issue 8): an engine suspended with SIGSTOP while a
task is checking, QA commands and judges that stop themselves, a disk that
fills while QA writes, and output that tries to reach the terminal. Real
bases, real git, real ``factory`` subprocesses; waits have deadlines."""

from __future__ import annotations

import os
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.qa_judge import run_judge
from factory_tui.model import State
from factory_tui.qa_model import Verdict
from tests.engine_helpers import add, alive, environment, events, factory, start_factory, task, wait_for
from tests.test_qa_gate import qa_config, qa_rows, scenario
from tests.test_qa_judge import script_judge
from tests.test_qa_runner import head, python, run
from tests.test_qa_runner import scenario as command_scenario

# The first run marks itself started and waits (with a deadline) for the
# release file; every run appends to "<mark>.runs", and passes.
HELD_ONCE = textwrap.dedent("""
    import os, pathlib, sys, time
    mark = pathlib.Path(sys.argv[1])
    runs = mark.with_suffix(".runs")
    first = not runs.exists()
    with open(runs, "a") as handle:
        handle.write("run\\n")
    if first:
        mark.write_text(str(os.getpid()))
        release = mark.with_suffix(".release")
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    print("checked")
""")


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return None


def lease_expiry(base: FactoryBase, task_id: str) -> float:
    with sqlite3.connect(base.log_path) as conn:
        row = conn.execute("SELECT lease_expires FROM tasks WHERE seq = ?", (int(task_id.split("-")[1]),)).fetchone()
    return row[0] or 0.0


# --- 1. an engine suspended while a task is checking -------------------------------------


def test_an_engine_suspended_past_its_checks_lease_never_records_it_twice(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    mark = tmp_path / "qa"
    script = tmp_path / "held_once.py"
    script.write_text(HELD_ONCE)
    qa_config(base, agent)
    scenario(base, "held", {"kind": "test", "retries": 0, "run": ["{python}", str(script), str(mark)]})
    task_id = add(base, "Outlast a suspended check")
    env = environment(FACTORY_LEASE_SECONDS="2")
    engine = start_factory(base, "run", output=tmp_path / "engine.out", env=env)
    tidy.append(engine)
    command = int(wait_for(lambda: mark.exists() and mark.read_text(), "the QA command to start"))
    tidy.append(command)

    engine.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: proc_state(engine.pid) == "T", "the engine to stop")
        wait_for(lambda: lease_expiry(base, task_id) < time.time() - 1, "the check's lease to run out")
        # A second engine is refused while the first holds the base, stopped or not.
        second = factory(base, "run", "--once", env=env)
        assert second.returncode != 0
        [line] = second.stderr.strip().splitlines()
        assert line.startswith("factory: another engine is running on this base"), line
        # Another reaper finds the lapsed lease: the check waits for an engine to run it again.
        with ExecutionLog.open(base.log_path) as log:
            assert log.reap_expired(actor="test:reaper") == [task_id]
        # The first command ends while its engine sleeps: what it found is
        # not the check's any more.
        mark.with_suffix(".release").touch()
        wait_for(lambda: not alive(command), "the first QA command to end")
    finally:
        engine.send_signal(signal.SIGCONT)

    # The engine finds its lease gone, records nothing of that check, takes
    # the check again and concludes it once.
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the check to be concluded", limit=60)
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0
    assert [str(row.result.verdict) for row in qa_rows(base, task_id)] == ["PASS"]  # counted once
    assert mark.with_suffix(".runs").read_text() == "run\nrun\n"  # run again, one after the other
    assert len(events(base, task_id, "passed")) == 1
    assert len(events(base, task_id, "finished", "checking")) == 1  # the agent ran once
    assert "Traceback" not in (tmp_path / "engine.out").read_text()


# --- 1. a QA command or a judge that stops itself ------------------------------------------


def test_a_stopped_qa_command_is_ended_by_its_timeout(base: FactoryBase, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"""
        import os, pathlib, signal
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)
    """
    result = run(base, command_scenario(*python(code), timeout=1.0, retries=0), head(base.root))
    assert (result.verdict, result.reason) == (Verdict.ERROR, "did not finish within 1 s")
    pid = int(pid_file.read_text())
    wait_for(lambda: not alive(pid), "the stopped command to be gone", 10)


def test_a_stopped_judge_is_ended_by_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    stopping = script_judge(tmp_path, "stopping", f"""
        import os, pathlib, signal
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        print("thinking", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        print("VERDICT: PASS")
    """)
    outcome = run_judge(profile=stopping, prompt="p", cwd=tmp_path, out_dir=tmp_path / "qa", timeout=1, votes=1)
    assert (outcome.verdict, outcome.reason) == (Verdict.ERROR, "the judge did not answer within 1 s")
    pid = int(pid_file.read_text())
    wait_for(lambda: not alive(pid), "the stopped judge to be gone", 10)
