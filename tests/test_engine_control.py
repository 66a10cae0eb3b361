"""Engines starting, stopping and taking over (issue 7 §4): stopping an
engine does not count as an attempt and the next prompt says what happened;
an engine that takes over a run says so in the log and the run's later
events are its own; ``factory engine status`` and ``factory engine stop``.
Real engines (``python -m factory_tui run``), real agents, real signals."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from factory_tui.model import State
from tests.engine_helpers import (
    add,
    agent_pid,
    agent_printed,
    agent_profile,
    alive,
    apply,
    configure,
    events,
    factory,
    run_dir,
    start_factory,
    task,
    wait_for,
)
from factory_tui.model import Action


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
