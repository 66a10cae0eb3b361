"""Engines starting, stopping and taking over (issue 7 §4): stopping an
engine does not count as an attempt and the next prompt says what happened;
an engine that takes over a run says so in the log and the run's later
events are its own; ``factory engine status`` and ``factory engine stop``.
Real engines (``python -m factory_tui run``), real agents, real signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from factory_tui.model import Action, State
from tests.engine_helpers import (
    add,
    agent_pid,
    agent_printed,
    agent_profile,
    alive,
    apply,
    configure,
    environment,
    events,
    factory,
    run_dir,
    start_factory,
    task,
    wait_for,
)


def worker_of(pid: int) -> str:
    return f"engine:{socket.gethostname()}:{pid}"


def test_a_stopped_engine_gives_the_attempt_back_and_the_next_prompt_says_so(
    base, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="gated", agents={
        "gated": agent_profile(agent, AGENT_GATE=str(gate)),
        "quick": agent_profile(agent),
    })
    task_id = add(base, "Sent back, then interrupted")
    # Attempt 1 reaches review; the operator sends it back with feedback.
    gate.touch()
    first = factory(base, "run", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    apply(base, task_id, Action.REQUEUE, note="name the file after the task")
    gate.unlink()
    # Attempt 2 starts, and its engine is stopped under it (SIGTERM).
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2", attempt=2), "attempt 2 to get going")
    pid = agent_pid(base, task_id, attempt=2)
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0
    assert not alive(pid)
    stopped = task(base, task_id)
    assert (stopped.state, stopped.attempts) == (State.QUEUED, 1)  # the attempt given back
    [given_back] = events(base, task_id, "stopped")
    assert given_back.data["run_started"] is True
    assert (base.runs_dir / task_id / "2.stopped" / "prompt.md").is_file()

    gate.touch()
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    final = task(base, task_id)
    assert (final.state, final.attempts) == (State.REVIEW, 2)
    prompt = (run_dir(base, task_id, 2) / "prompt.md").read_text()
    # Still the operator's feedback after attempt 1, not after a run the
    # engine cut short; and the interruption said as it was.
    assert "This is attempt 2. The operator sent the task back after attempt 1 with this feedback" in prompt
    assert "name the file after the task" in prompt
    assert "## The previous run was interrupted" in prompt
    assert "the engine running it was stopped, not because of anything in the work" in prompt
    # A run after a normal end says nothing of an interruption.
    first_prompt = (run_dir(base, task_id, 1) / "prompt.md").read_text()
    assert "The previous run was interrupted" not in first_prompt


def test_a_first_run_stopped_by_its_engine_is_run_again_as_the_first_attempt(
    base, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="gated", agents={"gated": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Interrupted on its first run")
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")
    engine.send_signal(signal.SIGINT)  # ctrl+c
    assert engine.wait(timeout=60) == 0
    assert task(base, task_id).attempts == 0
    gate.touch()
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert task(base, task_id).attempts == 1
    prompt = (run_dir(base, task_id, 1) / "prompt.md").read_text()
    assert "## The previous run was interrupted" in prompt
    assert "The operator sent the task back" not in prompt
    assert "The branch already holds the work of the interrupted run" in prompt


def test_an_engine_that_takes_over_a_run_says_so_and_its_events_are_its_own(
    base, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="gated", agents={"gated": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Outlive the engine")
    first = start_factory(base, "run", output=tmp_path / "first.out")
    tidy.append(first)
    pid = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")
    first.kill()  # SIGKILL: the agent works on, its engine gone
    first.wait(timeout=30)
    assert alive(pid)

    second = start_factory(base, "run", "--once", output=tmp_path / "second.out")
    tidy.append(second)
    wait_for(lambda: events(base, task_id, "adopted"), "the second engine to take the run over")
    [adopted] = events(base, task_id, "adopted")
    old, new = worker_of(first.pid), worker_of(second.pid)
    assert adopted.actor == new
    assert (adopted.data["from"], adopted.data["to"]) == (old, new)
    assert adopted.note == f"{new} took over the run from {old}"
    gate.touch()
    assert second.wait(timeout=120) == 0, (tmp_path / "second.out").read_text()
    assert task(base, task_id).attempts == 1  # the same run, taken over
    [finished] = events(base, task_id, "finished")
    assert finished.actor == new
    after = [e for e in events(base, task_id) if e.id > adopted.id and e.kind == "progress"]
    assert after and {e.actor for e in after} == {new}


# --- factory engine status / stop ------------------------------------------------------


def test_engine_status_and_stop_for_a_headless_engine(base, agent: Path, tmp_path: Path, tidy) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="gated", agents={"gated": agent_profile(agent, AGENT_GATE=str(gate))})
    idle = json.loads(factory(base, "engine", "status", "--json").stdout)
    assert idle == {"running": False, "pid": None, "host": None, "mode": None, "since": None, "tasks": []}
    assert factory(base, "engine", "status").stdout.startswith("No engine runs on this base")
    nothing = factory(base, "engine", "stop")
    assert (nothing.returncode, nothing.stdout) == (0, "No engine runs on this base; nothing to stop.\n")

    task_id = add(base, "Keep the engine busy")
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    pid = agent_pid(base, task_id)
    status = json.loads(factory(base, "engine", "status", "--json").stdout)
    assert (status["running"], status["pid"], status["mode"]) == (True, engine.pid, "headless")
    assert status["host"] == socket.gethostname() and status["since"]
    assert [(t["task"], t["worker"]) for t in status["tasks"]] == [(task_id, worker_of(engine.pid))]
    lines = factory(base, "engine", "status").stdout.splitlines()
    assert lines[0].startswith(f"engine: headless, pid {engine.pid} on ") and ", since " in lines[0]
    assert lines[1] == f"running: {task_id}"

    stopped = factory(base, "engine", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"Stopped the engine (headless, pid {engine.pid})")
    # It has let go when the command returns: the engine is gone, its agent
    # stopped, the task back in the queue with its attempt given back.
    assert engine.wait(timeout=30) == 0
    assert not alive(pid)
    assert (task(base, task_id).state, task(base, task_id).attempts) == (State.QUEUED, 0)
    assert json.loads(factory(base, "engine", "status", "--json").stdout)["running"] is False


EMBEDDED = """
import sys, time
from factory_tui.backends.base import FactoryBase
from factory_tui.engine import Engine, EngineThread
thread = EngineThread(Engine(FactoryBase.find(sys.argv[1]), mode="embedded"))
thread.start()
print("started", flush=True)
time.sleep(600)
"""


def test_an_engine_inside_a_console_is_not_signalled(base, tmp_path: Path, tidy) -> None:
    configure(base)
    console_like = subprocess.Popen([sys.executable, "-c", EMBEDDED, str(base.root)], stdout=subprocess.PIPE,
                                    text=True, env=environment())
    tidy.append(console_like)
    assert console_like.stdout.readline().strip() == "started"
    wait_for(lambda: factory(base, "engine", "status", "--json").stdout.count('"embedded"'), "the engine to hold the base")
    refused = factory(base, "engine", "stop")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"factory: the engine runs inside a console (pid {console_like.pid}); quit the console to stop it "
        "(it asks whether to stop the agents or leave them to a headless engine)"
    ]
    assert console_like.poll() is None  # never signalled
    as_json = factory(base, "engine", "stop", "--json")
    assert as_json.returncode == 1 and "inside a console" in json.loads(as_json.stderr)["error"]


def test_the_engine_a_quitting_console_leaves_its_agents_to_can_be_stopped(
    base, agent: Path, tmp_path: Path, tidy,
) -> None:
    import os

    from factory_tui.engine_host import EngineHost

    gate = tmp_path / "gate"
    configure(base, default_agent="gated", agents={"gated": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Outlive the console")
    host = EngineHost(base)
    assert host.start() == "embedded"
    working = agent_pid(base, task_id)
    # "Leave them running": the console's engine hands its agents to a headless one.
    headless = host.hand_over()
    tidy.append(headless)
    wait_for(lambda: json.loads(factory(base, "engine", "status", "--json").stdout)["pid"] == headless,
             "the headless engine to hold the base")
    wait_for(lambda: events(base, task_id, "adopted"), "the headless engine to take the run over")
    assert alive(working)
    stopped = factory(base, "engine", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {headless}" in stopped.stdout
    wait_for(lambda: not alive(headless), "the headless engine to exit")
    try:
        os.waitpid(headless, 0)  # our child: reaped here, unless subprocess did already
    except ChildProcessError:
        pass
    assert not alive(working)
    assert task(base, task_id).state is State.QUEUED
