"""The QA gate attacked (issue 8): an engine suspended with SIGSTOP while a
task is checking, QA commands and judges that stop themselves, a disk that
fills while QA writes, and output that tries to reach the terminal. Real
bases, real git, real ``factory`` subprocesses; waits have deadlines."""

from __future__ import annotations

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


# --- 2. a disk that fills while QA writes its output ------------------------------------------

# Prints 3 MB (the runner keeps 2 MB of it: more than the 1 MB disk holds) and passes.
LOUD = "import sys\nfor _ in range(3 * 1024):\n    sys.stdout.write('x' * 1023 + '\\n')\n"

QA_RUN_ON_FULL_DISK = r'''
set -e
mkdir -p "$QA_DIR"
mount -t tmpfs -o size=1m tmpfs "$QA_DIR"
status=0
"$PY" -m factory_tui qa run --task "$TASK" > "$OUT/run.out" 2> "$OUT/run.err" || status=$?
echo "$status" > "$OUT/run.status"
'''


def unshare_or_skip() -> None:
    import shutil
    import subprocess

    import pytest

    if shutil.which("unshare") is None:
        pytest.skip("`unshare` is not installed: a small full disk needs a mount namespace")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rm is not allowed here: {probe.stderr.decode().strip()}")


def test_qa_run_on_a_full_disk_is_an_error_in_one_line_and_the_task_stays(base: FactoryBase, tmp_path: Path) -> None:
    import subprocess

    from tests.test_qa_harden import task_in_review, write_scenario

    unshare_or_skip()
    write_scenario(base, "loud", {"kind": "test", "retries": 0, "run": ["{python}", "-c", LOUD]})
    task_id = task_in_review(base, "Say a lot", {"x.txt": "x\n"})
    qa_dir = base.run_dir(task_id, 1) / "qa"
    env = environment(QA_DIR=str(qa_dir), PY=__import__("sys").executable, TASK=task_id, OUT=str(tmp_path))
    done = subprocess.run(["unshare", "-rm", "sh", "-c", QA_RUN_ON_FULL_DISK], cwd=base.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out, err = (tmp_path / "run.out").read_text(), (tmp_path / "run.err").read_text()
    assert "Traceback" not in out + err
    status = int((tmp_path / "run.status").read_text())
    assert status != 0
    if err.strip():
        [line] = err.strip().splitlines()
        assert line.startswith("factory: ") and "disk is full" in line, line
    else:
        [line] = out.strip().splitlines()
        assert line.startswith("ERROR loud (test, required)") and "disk is full" in line, line
    assert task(base, task_id).state is State.REVIEW  # not lost
    assert not list((base.qa_work_dir / "checkouts").glob("*-*"))  # the clean checkout went


ENGINE_ON_FULL_QA_DISK = r'''
set -e
"$PY" -m factory_tui run --once > "$OUT/engine.out" 2> "$OUT/engine.err" &
engine=$!
# The agent's run folder is made as it starts: its QA folder goes on the small disk then.
while [ ! -e "$RUN_DIR/agent.pid" ]; do sleep 0.02; done
mkdir -p "$QA_DIR"
mount -t tmpfs -o size=1m tmpfs "$QA_DIR"
touch "$GATE"
status=0; wait $engine || status=$?
echo "$status" > "$OUT/engine.status"
'''


def test_an_engine_whose_qa_output_fills_the_disk_sends_the_task_back_and_keeps_running(
    base: FactoryBase, agent: Path, tmp_path: Path,
) -> None:
    import subprocess
    import sys

    unshare_or_skip()
    gate = tmp_path / "gate"
    qa_config(base, agent, AGENT_GATE=str(gate))
    scenario(base, "loud", {"kind": "test", "retries": 0, "run": ["{python}", "-c", LOUD]})
    task_id = add(base, "Say a lot")
    # The first attempt's QA folder is a 1 MB disk; the second's is not.
    env = environment(RUN_DIR=str(base.run_dir(task_id, 1)), QA_DIR=str(base.run_dir(task_id, 1) / "qa"),
                      PY=sys.executable, OUT=str(tmp_path), GATE=str(gate))
    done = subprocess.run(["unshare", "-rm", "sh", "-c", ENGINE_ON_FULL_QA_DISK], cwd=base.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out, err = (tmp_path / "engine.out").read_text(), (tmp_path / "engine.err").read_text()
    assert int((tmp_path / "engine.status").read_text()) == 0, out + err
    assert "Traceback" not in out + err
    rows = sorted(qa_rows(base, task_id), key=lambda row: row.id)
    assert [str(row.result.verdict) for row in rows] == ["ERROR", "PASS"], [row.result for row in rows]
    assert rows[0].result.reason.startswith("QA could not write its output: the disk is full"), rows[0].result.reason
    [rejected] = events(base, task_id, "rejected")
    assert "the disk is full" in (rejected.note or "")
    assert task(base, task_id).state is State.REVIEW  # the next round, with room, passed


# --- 3. output that tries to reach the terminal -----------------------------------------------

HOSTILE_OUTPUT = (b"plain start\n\x1b[2J\x1b]0;owned\x07title\n[bold red]markup[/]\n"
                  b"bad utf-8 \xff\xfe here\nnul \x00 byte\x08\x08\n\x1b[31mred\x1b[0m end\n")


def hostile_run(base: FactoryBase) -> int:
    from factory_tui.model import NewTask
    from tests.test_qa_pane import result

    out = base.runs_dir / "qa" / "20250101-hostile"
    out.mkdir(parents=True)
    (out / "output.log").write_bytes(HOSTILE_OUTPUT)
    with ExecutionLog.open(base.log_path) as log:
        task_ = log.add_task(NewTask(title="a task"), actor="test")
        [run_id] = log.record_qa_on_demand(
            [result("hostile", Verdict.FAIL, reason="\x1b[2Jreason [b]x[/b]", output=str(out.relative_to(base.root)))],
            actor="test", task_id=task_.id)
    return run_id


def test_qa_show_prints_hostile_output_literally(base: FactoryBase) -> None:
    run_id = hostile_run(base)
    shown = factory(base, "qa", "show", str(run_id))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text and "\x08" not in text
    assert "[bold red]markup[/]" in text and "plain start" in text and "red" in text
    assert "bad utf-8 " in text


async def test_the_run_screen_shows_hostile_output_literally(base: FactoryBase) -> None:
    from factory_tui.app import FactoryApp
    from factory_tui.screens.qa import QaRunScreen
    from factory_tui.widgets.transcript import TranscriptView
    from tests.console_helpers import ready, wait_until

    run_id = hostile_run(base)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        with ExecutionLog.open(base.log_path) as log:
            found = log.qa_run(run_id)
        app.push_screen(QaRunScreen(found))
        await wait_until(pilot, lambda: isinstance(app.screen, QaRunScreen) and app.screen.files is not None, "the run")
        await wait_until(pilot, lambda: app.screen.query(TranscriptView)
                         and app.screen.query_one(TranscriptView).row_count >= 6, "the output's lines")
        view = app.screen.query_one(TranscriptView)
        # What reaches the screen: each row as rendered.
        rows = ["".join(segment.text for segment in view.render_row(n, 120)) for n in range(view.row_count)]
        assert any("[bold red]markup[/]" in row for row in rows), rows
        for row in rows:
            assert not any(ch in row for ch in "\x1b\x07\x00\x08"), repr(row)
        title = "".join(str(widget.render()) for widget in app.screen.query("Static"))
        assert "\x1b" not in title
