"""The engine, really run: ``factory run`` as a subprocess (or an ``Engine`` in
a thread of this process) on real bases, with real git worktrees and real
agent subprocesses — the package's demo agent, or a small Python agent
written into the test's folder and named in factory.toml as a profile.

Nothing of ours is mocked. Where a test waits for something (an agent to
start, a process to go) it waits with a generous limit; no test asserts how
long anything took. The figures worth knowing (how soon a cancelled agent was
gone, the engine's peak memory under 50 MB of output) are recorded with
``record_property`` and printed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import MergeFailed
from factory_tui.backends.worktrees import MergeRefused
from factory_tui.engine import Engine, EngineBusy, EngineLock, EngineThread
from factory_tui.engine_host import EngineHost
from factory_tui.model import Action, State
from tests.engine_helpers import (
    BIG_AGENT,
    BIG_LINES,
    LINE_BYTES,
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
    factory_argv,
    git,
    group_members,
    has_branch,
    no_traceback_anywhere,
    run_dir,
    run_group,
    start_factory,
    starts,
    task,
    toml_value,
    wait_for,
)

# --- 1. a plan through the demo agent ---------------------------------------------


def check_run(base: FactoryBase, task_id: str, attempt: int, title: str, body: str) -> str:
    """The run folder and worktree of a task the demo agent finished; returns
    the prompt's text."""
    folder = run_dir(base, task_id, attempt)
    prompt = (folder / "prompt.md").read_text(encoding="utf-8")
    assert prompt.startswith(f"# {task_id}: {title}")
    assert body in prompt
    raw = (folder / "output.raw").read_text(encoding="utf-8")
    assert '"type": "result"' in raw  # the agent's own stream-json, kept as it came
    transcript = (folder / "transcript.log").read_text(encoding="utf-8").splitlines()
    assert transcript, "an empty transcript"
    assert not any(line.lstrip().startswith("{") for line in transcript), "raw JSON in the transcript"
    assert any(line.startswith(f"⏺ Working on {task_id}: {title}") for line in transcript)
    assert transcript[-1].startswith("✓ finished: success")
    outcome = json.loads((folder / "exit.json").read_text())
    assert outcome["exit_code"] == 0 and not outcome["timed_out"] and outcome["failure"] is None
    # The worktree, on the task's branch, holding the agent's commit.
    worktree = base.worktrees_dir / task_id
    assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/factory/{task_id}"
    subjects = git(base.root, "log", "--format=%s", f"factory/{task_id}").splitlines()
    expected = f"{task_id}: {title}" + (f" (run {attempt})" if attempt > 1 else "")
    assert subjects[0] == expected
    assert git(worktree, "status", "--porcelain") == ""
    assert f"# {task_id}: {title}" in git(base.root, "show", f"factory/{task_id}:notes/{task_id}.md")
    return prompt


def test_run_once_takes_a_plan_with_dependencies_through_the_demo_agent(base: FactoryBase) -> None:
    configure(base, max_parallel=2)
    login = add(base, "Write the login endpoint", body="Accept a user name and a password; answer with a token.")
    docs = add(base, "Document the login endpoint", body="Describe the endpoint in the README.", after=(login,))
    health = add(base, "Add a health check", body="GET /health answers ok.", priority=3)

    first = factory(base, "run", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    assert task(base, login).state is State.REVIEW
    assert task(base, health).state is State.REVIEW
    # Its dependency is in review, not done: it is not started.
    assert task(base, docs).state is State.QUEUED
    assert not (base.runs_dir / docs).exists() and not events(base, docs, "claimed")
    check_run(base, login, 1, "Write the login endpoint", "Accept a user name and a password")
    check_run(base, health, 1, "Add a health check", "GET /health answers ok.")
    for task_id in (login, health):
        assert events(base, task_id, "progress"), f"no progress events for {task_id}"
        finished = events(base, task_id, "finished")
        assert len(finished) == 1
        # The note says how the run went in the agent's own figures.
        assert finished[0].note.startswith("agent finished · 4 turns · $"), finished[0].note
        assert finished[0].data["run"] == f".factory/runs/{task_id}/1"
        assert finished[0].data["cost_usd"] > 0

    # The operator merges one and sends the other back with feedback.
    apply(base, login, Action.APPROVE)
    assert git(base.root, "log", "-1", "--format=%s", "main") == f"{login}: Write the login endpoint"
    apply(base, health, Action.REQUEUE, note="Also answer HEAD requests.")

    second = factory(base, "run", "--once")
    assert second.returncode == 0, second.stdout + second.stderr
    assert task(base, docs).state is State.REVIEW
    assert task(base, health).state is State.REVIEW and task(base, health).attempts == 2
    docs_prompt = check_run(base, docs, 1, "Document the login endpoint", "Describe the endpoint in the README.")
    # What the dependency produced: its title and its agent's last words.
    assert "Write the login endpoint" in docs_prompt
    [login_finished] = events(base, login, "finished")
    assert login_finished.data["summary"].startswith("Done: created `")
    assert login_finished.data["summary"] in docs_prompt
    health_prompt = check_run(base, health, 2, "Add a health check", "GET /health answers ok.")
    assert "Also answer HEAD requests." in health_prompt
    assert "Also answer HEAD requests." not in (run_dir(base, health, 1) / "prompt.md").read_text()
    # The second attempt went on in the same branch: both commits are there.
    subjects = git(base.root, "log", "--format=%s", f"factory/{health}").splitlines()
    assert subjects[:2] == [f"{health}: Add a health check (run 2)", f"{health}: Add a health check"]
    no_traceback_anywhere(base, first.stdout, first.stderr, second.stdout, second.stderr)


def test_a_failing_demo_agent_fails_its_task_and_the_run_exits_1(base: FactoryBase) -> None:
    configure(base)
    task_id = add(base, "Break something")

    done = factory(base, "run", "--once", env=environment(FACTORY_DEMO_FAIL_RATE="1"))

    assert done.returncode == 1, done.stdout + done.stderr
    failed = task(base, task_id)
    assert failed.state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert event.note.startswith("agent exited 1; last output: ")
    assert "A check fails and I cannot fix it" in event.note
    assert "the demo agent was told to fail" in event.note
    assert event.data["run"] == f".factory/runs/{task_id}/1"
    # What it did before failing is on its branch.
    assert git(base.root, "log", "-1", "--format=%s", f"factory/{task_id}") == f"{task_id}: Break something"
    no_traceback_anywhere(base, done.stdout, done.stderr)


def test_an_agent_gets_its_arguments_and_environment_and_can_call_factory(
    base: FactoryBase, agent: Path, tmp_path: Path,
) -> None:
    given = tmp_path / "given.json"
    configure(base, default_agent="talker", agents={"talker": agent_profile(
        agent, argv=["{python}", str(agent), "{task_id}", "{prompt}", "{prompt_file}", "{worktree}"],
        AGENT_ARGS_OUT=str(given), AGENT_CALLS_FACTORY="1", FROM_PROFILE="yes")})
    hostile = "Quote ' and \" and ; rm -rf / and $(echo no) and {task_id} and {{braces}}"
    task_id = add(base, "Talk back", body=hostile)

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(given.read_text())
    folder = run_dir(base, task_id)
    worktree = base.worktrees_dir / task_id
    # Each placeholder fills one whole argument; the prompt's own braces and
    # shell syntax reach the agent as they are.
    assert seen["argv"][1:] == [task_id, (folder / "prompt.md").read_text(encoding="utf-8"),
                                str(folder / "prompt.md"), str(worktree)]
    assert hostile in seen["argv"][2]
    assert Path(seen["cwd"]) == worktree
    assert seen["env"]["FACTORY_BASE"] == str(base.root)
    assert seen["env"]["FACTORY_TASK"] == task_id
    assert seen["env"]["FACTORY_RUN"] == str(folder)
    assert json.loads((folder / "run.json").read_text())["argv"] == [sys.executable, *seen["argv"]]
    # Its note and its follow-up proposal landed in the log.
    notes = [event for event in events(base, task_id, "note") if event.note == f"{task_id} says hello"]
    assert len(notes) == 1
    with ExecutionLog.open(base.log_path) as log:
        [follow_up] = [t for t in log.list_tasks() if t.title == f"Follow up on {task_id}"]
    assert follow_up.state is State.PROPOSED and follow_up.depends_on == (task_id,)
    assert follow_up.source == f"agent:{task_id}"
    assert task(base, task_id).state is State.REVIEW


def test_worktrees_get_the_configured_copies_and_set_up(base: FactoryBase, agent: Path) -> None:
    (base.root / ".gitignore").write_text(".env\nset-up.txt\n")
    git(base.root, "add", ".gitignore")
    git(base.root, "commit", "-q", "-m", "ignore local files")
    (base.root / ".env").write_text("SECRET=local\n")
    setup = [sys.executable, "-c", "open('set-up.txt', 'w').write('ran')"]
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)},
              extra=f"\n[worktree]\ncopy = [\".env\"]\nsetup = {toml_value(setup)}\n")
    task_id = add(base, "Use the local settings")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    worktree = base.worktrees_dir / task_id
    assert (worktree / ".env").read_text() == "SECRET=local\n"
    assert (worktree / "set-up.txt").read_text() == "ran"
    # Copied and set-up files are the checkout's, not the task's work.
    assert git(base.root, "ls-tree", "-r", "--name-only", f"factory/{task_id}").splitlines() == [
        ".gitignore", "README.md", f"work-{task_id}.txt"]


def test_a_claim_whose_engine_died_before_starting_the_agent_is_given_back(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    task_id = add(base, "Claimed, never started")
    with ExecutionLog.open(base.log_path) as log:
        claim = log.claim_next("engine:elsewhere:1", lease_seconds=600)
    assert claim is not None and claim.task.id == task_id

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{task_id}: agent gone, back to queued" in done.stdout
    final = task(base, task_id)
    # The claim that never started was no attempt: it was given back.
    assert final.state is State.REVIEW and final.attempts == 1
    kinds = [event.kind for event in events(base, task_id) if event.kind != "progress"]
    assert kinds == ["created", "claimed", "stopped", "claimed", "finished"]
    assert events(base, task_id, "stopped")[0].data["run_started"] is False
    assert (run_dir(base, task_id, 1) / "exit.json").exists()
    assert not run_dir(base, task_id, 2).exists()


def test_the_engine_renews_its_leases_while_agents_run(base: FactoryBase, agent: Path, tmp_path: Path, tidy) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Take a while")
    thread = EngineThread(Engine(base, mode="embedded", lease_seconds=2))
    thread.start()
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")

    with ExecutionLog.open(base.log_path) as log:
        [(_, _, _, first_expiry)] = log.live_leases()
        # Whoever reaps meanwhile (another engine starting) finds nothing
        # expired: the engine keeps renewing the lease, past its first term.
        renewals = set()

        def renewed_again() -> bool:
            assert log.reap_expired(actor="test:reaper") == []
            [(_, _, _, expiry)] = log.live_leases()
            if expiry > first_expiry:
                renewals.add(expiry)
            return len(renewals) >= 4

        wait_for(renewed_again, "four renewals of the lease")
        assert log.reap_expired(actor="test:reaper") == []
    gate.touch()
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the task to reach review")
    thread.stop(timeout=60)
    assert thread.error is None
    assert len(events(base, task_id, "claimed")) == 1
    assert not events(base, task_id, "expired")


# --- 2. scheduling --------------------------------------------------------------------


def intervals(record: Path) -> dict[str, list[float]]:
    spans: dict[str, list[float]] = {}
    for line in record.read_text().splitlines():
        _, task_id, at = line.split()
        spans.setdefault(task_id, []).append(float(at))
    return spans


def most_at_once(spans: dict[str, list[float]]) -> int:
    points = []
    for start, end in spans.values():
        points += [(start, 1), (end, -1)]
    # An end before a start at the same instant: touching is not overlapping.
    points.sort(key=lambda point: (point[0], point[1]))
    running = most = 0
    for _, step in points:
        running += step
        most = max(most, running)
    return most


def test_never_more_than_max_parallel_agents_at_once(base: FactoryBase, agent: Path, record: Path) -> None:
    configure(base, max_parallel=2, default_agent="sleepy",
              agents={"sleepy": agent_profile(agent, AGENT_SLEEP="0.4", AGENT_RECORD=str(record))})
    ids = [add(base, f"Task {n}") for n in range(5)]

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert all(task(base, task_id).state is State.REVIEW for task_id in ids)
    spans = intervals(record)
    assert sorted(spans) == sorted(ids) and all(len(span) == 2 for span in spans.values())
    # Two at once (the slots are used), never three.
    assert most_at_once(spans) == 2
    for task_id in ids:
        # The agent left its file uncommitted; the engine committed it.
        assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
        assert len(events(base, task_id, "claimed")) == 1


def test_many_runs_starting_at_once_each_get_their_worktree(base: FactoryBase, agent: Path) -> None:
    # Eight worktrees made at the same moment: git cannot make two at once
    # in one repository, so this fails now and then unless the engine makes
    # them one after the other.
    configure(base, max_parallel=8, default_agent="quick", agents={"quick": agent_profile(agent, AGENT_LINES="1")})
    ids = [add(base, f"Task {n}") for n in range(16)]

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    for task_id in ids:
        assert task(base, task_id).state is State.REVIEW
        assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"


def test_ready_tasks_run_by_priority_and_blocked_ones_not_at_all(base: FactoryBase, agent: Path, record: Path) -> None:
    configure(base, max_parallel=2, default_agent="quick",
              agents={"quick": agent_profile(agent, AGENT_RECORD=str(record))})
    low = add(base, "Low", priority=1)
    high = add(base, "High", priority=5)
    middle = add(base, "Middle", priority=3)
    high_later = add(base, "High, added later", priority=5)
    blocked = add(base, "Urgent but blocked", priority=9, after=(low,))

    done = factory(base, "run", "--once", "--max-parallel", "1")

    assert done.returncode == 0, done.stdout + done.stderr
    claims = [event.task_id for event in events(base, None, "claimed")]
    assert claims == [high, high_later, middle, low]
    assert starts(record) == claims
    # Its dependency ended in review, not done: never started.
    assert task(base, blocked).state is State.QUEUED
    assert not (base.runs_dir / blocked).exists()
    assert not (base.worktrees_dir / blocked).exists()

    apply(base, low, Action.APPROVE)
    again = factory(base, "run", "--once", "--max-parallel", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert task(base, blocked).state is State.REVIEW
    assert starts(record)[-1] == blocked


def test_a_runs_end_claims_the_next_task_with_it(base: FactoryBase, agent: Path, record: Path) -> None:
    # One slot and a backlog: each run's end (review, or failed) and the
    # next claim are one transaction, so its events come in pairs, the
    # claim right after the end, and every task runs once.
    configure(base, max_parallel=1, default_agent="quick",
              agents={"quick": agent_profile(agent, AGENT_RECORD=str(record)),
                      "broken": agent_profile(agent, AGENT_RECORD=str(record), AGENT_EXIT="3")})
    ids = [add(base, "First"), add(base, "Second, fails", profile="broken"), add(base, "Third")]

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr  # one task failed
    assert [task(base, task_id).state for task_id in ids] == [State.REVIEW, State.FAILED, State.REVIEW]
    assert starts(record) == ids
    runs = [event for event in events(base) if event.kind in ("claimed", "finished", "failed")]
    assert [(event.kind, event.task_id) for event in runs] == [
        ("claimed", ids[0]), ("finished", ids[0]), ("claimed", ids[1]), ("failed", ids[1]),
        ("claimed", ids[2]), ("finished", ids[2]),
    ]
    for end, claim in ((runs[1], runs[2]), (runs[3], runs[4])):
        assert claim.id == end.id + 1 and claim.actor == end.actor


# --- 3. cancel from another process ----------------------------------------------------


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["plain", "ignores-sigterm"])
def test_cancelling_a_running_task_stops_its_agent(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy, record_property, ignores_sigterm: bool,
) -> None:
    knobs = {"AGENT_SLEEP": "600", **({"AGENT_IGNORE_TERM": "1"} if ignores_sigterm else {})}
    configure(base, default_agent="sleepy", agents={"sleepy": agent_profile(agent, **knobs)})
    task_id = add(base, "Take forever")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)

    pid = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")
    assert alive(pid)

    apply(base, task_id, Action.CANCEL)  # this process, not the engine's
    cancelled_at = time.monotonic()
    deadline = cancelled_at + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    gone_after = time.monotonic() - cancelled_at
    record_property("agent_gone_after_cancel_s", round(gone_after, 3))
    print(f"agent gone {gone_after:.3f} s after the cancel ({'ignoring' if ignores_sigterm else 'obeying'} SIGTERM)")
    assert not alive(pid)
    # The supervisor goes with it (it may take the engine a moment to reap it).
    wait_for(lambda: not group_members(run_group(base, task_id)), "the run's process group to empty", limit=10)

    assert engine.wait(timeout=60) == 0
    output = (tmp_path / "engine.out").read_text()
    assert task(base, task_id).state is State.CANCELLED
    notes = [event.note for event in events(base, task_id, "note")]
    assert any("agent stopped" in note for note in notes), notes
    assert not events(base, task_id, "finished", "failed", "stopped")
    # Its work was committed to the branch, then the worktree folder removed.
    assert not (base.worktrees_dir / task_id).exists()
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    outcome = json.loads((run_dir(base, task_id) / "exit.json").read_text())
    assert outcome["stopped"] is True
    no_traceback_anywhere(base, output)


def test_a_task_cancelled_and_queued_again_at_once_never_has_two_agents(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy,
) -> None:
    # The first agent shrugs off SIGTERM, so it takes the engine a while to
    # stop it: long enough for the task, queued again, to be claimed anew.
    gate = tmp_path / "gate"
    configure(base, default_agent="stubborn", agents={"stubborn": agent_profile(
        agent, AGENT_GATE=str(gate), AGENT_IGNORE_TERM="1", AGENT_RECORD=str(record))})
    task_id = add(base, "Start over")
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    first = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")

    apply(base, task_id, Action.CANCEL)
    apply(base, task_id, Action.REQUEUE, note="Start over, differently.")
    second = agent_pid(base, task_id, attempt=2)

    # By the time the second agent runs, the first is gone, its work committed.
    assert not alive(first) and not group_members(run_group(base, task_id, 1))
    assert alive(second)
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    gate.touch()
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the second run to reach review")
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 0
    output = (tmp_path / "engine.out").read_text()
    final = task(base, task_id)
    assert final.attempts == 2
    assert len(events(base, task_id, "claimed")) == 2
    assert len(events(base, task_id, "finished")) == 1
    assert starts(record) == [task_id, task_id]
    assert "Start over, differently." in (run_dir(base, task_id, 2) / "prompt.md").read_text()
    no_traceback_anywhere(base, output)


# --- 4. timeout -------------------------------------------------------------------------


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["plain", "ignores-sigterm"])
def test_an_agent_that_hangs_is_timed_out(base: FactoryBase, agent: Path, tidy, ignores_sigterm: bool) -> None:
    knobs = {"AGENT_SLEEP": "600", "AGENT_CHILD": "1", **({"AGENT_IGNORE_TERM": "1"} if ignores_sigterm else {})}
    configure(base, default_agent="hangs", agents={"hangs": agent_profile(agent, timeout=1, **knobs)})
    task_id = add(base, "Hang")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    assert task(base, task_id).state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert event.note.startswith("timed out after 1 s; last output: "), event.note
    assert f"{task_id} line 2" in event.note
    pid = int((run_dir(base, task_id) / "agent.pid").read_text())
    child = int((run_dir(base, task_id) / "child.pid").read_text())
    assert not alive(pid) and not alive(child)
    assert not group_members(run_group(base, task_id))
    outcome = json.loads((run_dir(base, task_id) / "exit.json").read_text())
    assert outcome["timed_out"] is True
    no_traceback_anywhere(base, done.stdout, done.stderr)


# --- 5. bad exits and bad profiles --------------------------------------------------------


def test_an_agent_that_exits_non_zero_fails_with_its_last_lines(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="grumpy", agents={"grumpy": agent_profile(agent, AGENT_EXIT="3", AGENT_LINES="8")})
    task_id = add(base, "Complain")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    assert task(base, task_id).state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert event.note.startswith("agent exited 3; last output: "), event.note
    assert f"{task_id} line 7" in event.note and f"{task_id} done" in event.note
    assert f"{task_id} line 0" not in event.note  # the last lines, not all of them
    # Its work is kept on the branch all the same.
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    no_traceback_anywhere(base, done.stdout, done.stderr)


def test_processes_an_agent_leaves_behind_go_with_its_run(base: FactoryBase, agent: Path, tidy) -> None:
    # The agent exits at once, leaving a helper in its process group that
    # shrugs off SIGTERM: it must not outlive the run, working on in the
    # worktree after the task went to review.
    configure(base, default_agent="messy", agents={"messy": agent_profile(agent, AGENT_CHILD="1")})
    task_id = add(base, "Leave a mess")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    child = int((run_dir(base, task_id) / "child.pid").read_text())
    wait_for(lambda: not alive(child), "the helper the agent left to be gone", limit=10)
    assert not group_members(run_group(base, task_id))


def test_a_missing_agent_program_fails_with_a_clear_reason(base: FactoryBase) -> None:
    configure(base, default_agent="ghost",
              agents={"ghost": {"argv": ["no-such-agent-xyz", "{prompt_file}"], "output": "text"}})
    task_id = add(base, "Call nobody")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    assert task(base, task_id).state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert event.note == "agent program not found: no-such-agent-xyz"
    assert "agent program not found: no-such-agent-xyz" in done.stdout
    assert done.stderr == ""
    no_traceback_anywhere(base, done.stdout, done.stderr)


def test_a_profile_with_an_unknown_placeholder_is_refused_before_anything_runs(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="broken",
              agents={"broken": {"argv": ["{python}", str(agent), "{nope}"], "output": "text"}})
    task_id = add(base, "Use a broken profile")

    done = factory(base, "run", "--once")

    # factory.toml is refused when it is read: one line, and the task is
    # left queued for a corrected profile rather than failed by it.
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("factory: ") and "[agents.broken]" in line
    assert "unknown placeholder {nope}" in line
    assert "{prompt_file}" in line  # the known ones are listed
    assert task(base, task_id).state is State.QUEUED
    assert EngineLock.holder(base) is None
    no_traceback_anywhere(base, done.stdout, done.stderr)


def test_a_broken_factory_toml_stops_the_engine_with_one_line(base: FactoryBase) -> None:
    base.config_path.write_text("max_parallel = [oops\n")

    done = factory(base, "run", "--once")

    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("factory: ") and "factory.toml is not valid TOML" in line
    assert EngineLock.holder(base) is None


# --- 6. 50 MB of output ------------------------------------------------------------------


# Starts a command and reports its exit status and peak memory (wait4's
# ru_maxrss, which covers the child and what it waited for). A small process
# of its own: a child forked from pytest would count pytest's memory as its
# own peak, since ru_maxrss keeps the high-water mark across fork and exec.
LAUNCHER = r'''
import os, subprocess, sys
with open(sys.argv[1], "wb") as output:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
'''


def run_measured(base: FactoryBase, output: Path) -> tuple[int, float]:
    """``factory run --once`` as a child process: its exit status, and the
    peak resident memory (MB) of it and of what it waited for."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(output), *factory_argv(base, "run", "--once")],
                          capture_output=True, text=True, env=environment(), timeout=300, check=True)
    status, kilobytes = done.stdout.split()
    return int(status), int(kilobytes) / 1024  # kilobytes on Linux


def test_fifty_megabytes_of_output_with_bounded_memory(
    base: FactoryBase, agent: Path, tmp_path: Path, record_property,
) -> None:
    script = tmp_path / "big.py"
    script.write_text(BIG_AGENT, encoding="utf-8")
    configure(base, default_agent="quiet",
              agents={"quiet": agent_profile(agent), "loud": agent_profile(script)})
    # The same engine on a run of three lines, for comparison.
    quiet = add(base, "Say little")
    status, quiet_mb = run_measured(base, tmp_path / "quiet.out")
    assert status == 0 and task(base, quiet).state is State.REVIEW
    task_id = add(base, "Say a lot", profile="loud")

    status, peak_mb = run_measured(base, tmp_path / "engine.out")

    output = (tmp_path / "engine.out").read_text()
    assert status == 0, output
    assert task(base, task_id).state is State.REVIEW
    folder = run_dir(base, task_id)
    assert (folder / "output.raw").stat().st_size == BIG_LINES * LINE_BYTES
    lines = 0
    with open(folder / "transcript.log", encoding="utf-8") as transcript:
        for number, line in enumerate(transcript):
            if number == 0:
                assert line == f"⏺ line 0000000 {'x' * 80}\n"
            lines += 1
    assert lines == BIG_LINES
    assert line == f"⏺ line {BIG_LINES - 1:07d} {'x' * 80}\n"
    # Progress reaches the log at a bounded rate, not a line per line.
    progress = events(base, task_id, "progress")
    assert 1 <= len(progress) < 1000
    record_property("engine_peak_rss_mb", round(peak_mb, 1))
    record_property("engine_peak_rss_mb_quiet_run", round(quiet_mb, 1))
    print(f"engine peak RSS: {peak_mb:.1f} MB with 50 MB of agent output, {quiet_mb:.1f} MB with three lines")
    assert peak_mb < 200
    # 50 MB of output costs the engine little more than three lines do.
    assert peak_mb - quiet_mb < 40
    no_traceback_anywhere(base, output)


# --- 7. the engine killed with SIGKILL ---------------------------------------------------


def test_an_engine_killed_mid_run_is_taken_over_by_the_next(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, max_parallel=2, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate), AGENT_RECORD=str(record))})
    ids = [add(base, f"Task {n}") for n in range(3)]
    first = start_factory(base, "run", output=tmp_path / "first.out")
    tidy.append(first)
    wait_for(lambda: len(starts(record)) == 2, "two agents to start")
    running = starts(record)
    for task_id in running:
        wait_for(lambda task_id=task_id: agent_printed(base, task_id, f"{task_id} line 2"),
                 f"{task_id}'s agent to get going")
    pids = [agent_pid(base, task_id) for task_id in running]

    first.kill()
    first.wait(timeout=30)

    assert EngineLock.holder(base) is None  # the kernel let go of the lock
    # The agents work on without it, each under its own live lease.
    assert all(alive(pid) for pid in pids)
    assert all(task(base, task_id).state is State.RUNNING for task_id in running)
    gate.touch()
    second = factory(base, "run", "--once")

    assert second.returncode == 0, second.stdout + second.stderr
    for task_id in running:
        assert f"{task_id}: took over its running agent" in second.stdout
    for task_id in ids:
        final = task(base, task_id)
        assert final.state is State.REVIEW, (task_id, final.state)
        assert final.attempts == 1
        assert len(events(base, task_id, "claimed")) == 1
        assert len(events(base, task_id, "finished")) == 1
        assert not events(base, task_id, "stopped", "expired", "failed")
        assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    # No agent ran twice; the ones running at the kill finished their run,
    # and their transcripts hold every line once.
    assert sorted(starts(record)) == sorted(ids)
    assert not any(alive(pid) for pid in pids)
    for task_id in running:
        transcript = (run_dir(base, task_id) / "transcript.log").read_text()
        assert transcript.splitlines() == [f"⏺ {task_id} line {n}" for n in range(3)] + [f"⏺ {task_id} done"]
    no_traceback_anywhere(base, second.stdout, second.stderr)


def test_an_agent_whose_supervisor_died_with_the_engine_is_stopped_before_its_task_runs_again(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate), AGENT_RECORD=str(record))})
    task_id = add(base, "Lose the supervisor")
    first = start_factory(base, "run", output=tmp_path / "first.out")
    tidy.append(first)
    old_agent = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")
    supervisor = json.loads((run_dir(base, task_id) / "run.json").read_text())["supervisor_pid"]
    # The engine and the run's supervisor die; the agent, in its own
    # process group, works on with nobody watching it.
    first.kill()
    first.wait(timeout=30)
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not alive(supervisor), "the supervisor to die")
    assert alive(old_agent)

    second = start_factory(base, "run", "--once", output=tmp_path / "second.out")
    tidy.append(second)
    # The lost run is no attempt: its folder is set aside, and the same
    # attempt runs again in a folder of its own.
    wait_for(lambda: (base.runs_dir / task_id / "1.stopped").is_dir(), "the lost run to be set aside")
    new_agent = agent_pid(base, task_id, attempt=1)

    # Two agents never work in one worktree: the orphan went first.
    assert not alive(old_agent) and not group_members(supervisor)
    assert alive(new_agent)
    gate.touch()
    assert second.wait(timeout=120) == 0, (tmp_path / "second.out").read_text()
    final = task(base, task_id)
    assert final.state is State.REVIEW and final.attempts == 1
    [stopped] = events(base, task_id, "stopped")
    assert "work committed" in stopped.note
    assert starts(record) == [task_id, task_id]
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    no_traceback_anywhere(base, (tmp_path / "second.out").read_text())


def test_a_supervisor_killed_under_a_running_engine_fails_the_task_and_stops_the_agent(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Lose the supervisor")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)
    pid = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")
    supervisor = json.loads((run_dir(base, task_id) / "run.json").read_text())["supervisor_pid"]

    os.kill(supervisor, signal.SIGKILL)

    assert engine.wait(timeout=120) == 1
    output = (tmp_path / "engine.out").read_text()
    assert task(base, task_id).state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert event.note.startswith("the run's supervisor ended without a result"), event.note
    assert not alive(pid) and not group_members(supervisor)
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    no_traceback_anywhere(base, output)


# --- 8. stopping: agents stopped, or handed over --------------------------------------------


def test_sigterm_stops_the_agents_and_their_tasks_go_back_to_the_queue(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    configure(base, max_parallel=2, default_agent="slow", agents={"slow": agent_profile(agent, AGENT_SLEEP="600")})
    ids = [add(base, "First"), add(base, "Second")]
    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    pids = [agent_pid(base, task_id) for task_id in ids]
    for task_id in ids:
        wait_for(lambda task_id=task_id: agent_printed(base, task_id, f"{task_id} line 2"),
                 f"{task_id}'s agent to get going")

    engine.send_signal(signal.SIGTERM)

    assert engine.wait(timeout=60) == 0
    output = (tmp_path / "engine.out").read_text()
    assert not any(alive(pid) for pid in pids)
    for task_id in ids:
        stopped = task(base, task_id)
        assert stopped.state is State.QUEUED
        [event] = events(base, task_id, "stopped")
        assert event.from_state == "running" and event.to_state == "queued"
        assert "committed" in event.note
        # The worktree stays for the next run, its work committed.
        assert (base.worktrees_dir / task_id).is_dir()
        assert git(base.worktrees_dir / task_id, "status", "--porcelain") == ""
        assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    assert EngineLock.holder(base) is None

    # The next run goes on in the same branches.
    configure(base, max_parallel=2, default_agent="slow", agents={"slow": agent_profile(agent, AGENT_EDIT="more.txt")})
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    for task_id in ids:
        # Stopping the engine did not count as an attempt.
        assert task(base, task_id).state is State.REVIEW and task(base, task_id).attempts == 1
        assert (base.runs_dir / task_id / "1.stopped" / "output.raw").is_file()
        assert git(base.root, "show", f"factory/{task_id}:more.txt") == f"a line from {task_id}"
        assert len(git(base.root, "log", "--format=%s", f"main..factory/{task_id}").splitlines()) == 2
    no_traceback_anywhere(base, output, again.stdout, again.stderr)


def test_request_stop_with_stop_agents_sends_tasks_back_with_their_work(base: FactoryBase, agent: Path, tidy) -> None:
    configure(base, default_agent="slow", agents={"slow": agent_profile(agent, AGENT_SLEEP="600")})
    task_id = add(base, "Be stopped")
    thread = EngineThread(Engine(base, mode="embedded"))
    thread.start()
    pid = agent_pid(base, task_id)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")

    thread.stop(stop_agents=True, timeout=60)

    assert not thread.is_alive() and thread.error is None and thread.exit_status == 0
    assert not alive(pid)
    assert task(base, task_id).state is State.QUEUED
    assert len(events(base, task_id, "stopped")) == 1
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    assert EngineLock.holder(base) is None


def test_an_agent_that_finishes_as_the_engine_stops_keeps_its_result(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Finish just in time")
    exit_json = run_dir(base, task_id) / "exit.json"
    exit_code = run_dir(base, task_id) / "exit.code"

    def report(line: str) -> None:
        # Called in the engine's thread as it starts to stop its agents:
        # the agent finishes on its own right then, before any stop signal.
        if line.startswith("stopping "):
            gate.touch()
            wait_for(exit_code.exists, "the run to end")

    thread = EngineThread(Engine(base, mode="embedded", report=report))
    thread.start()
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent to get going")

    thread.stop(stop_agents=True, timeout=120)

    assert not thread.is_alive() and thread.error is None
    assert json.loads(exit_json.read_text())["stopped"] is False
    final = task(base, task_id)
    assert final.state is State.REVIEW, [(e.kind, e.note) for e in events(base, task_id)]
    assert not events(base, task_id, "stopped")
    assert len(events(base, task_id, "finished")) == 1


# The console's side of a hand-over, as the console does it when the operator
# quits and leaves the agents running: an engine in a thread, then
# EngineHost.hand_over(), then the process ends.
CONSOLE_SIDE = r'''
import sys, time
from pathlib import Path
from factory_tui.backends.base import FactoryBase
from factory_tui.engine_host import EngineHost

base = FactoryBase(Path(sys.argv[1]))
host = EngineHost(base)
assert host.start() == "embedded", host.describe()
raw = base.runs_dir / sys.argv[2] / "1" / "output.raw"
deadline = time.monotonic() + 60
while not (raw.exists() and b"line 2" in raw.read_bytes()):
    if time.monotonic() > deadline:
        sys.exit("the agent did not start")
    time.sleep(0.05)
print(host.hand_over(), flush=True)
'''


def test_leaving_the_agents_running_hands_them_to_a_headless_engine(
    base: FactoryBase, agent: Path, record: Path, tmp_path: Path, tidy,
) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_GATE=str(gate), AGENT_RECORD=str(record))})
    task_id = add(base, "Outlive the console")
    script = tmp_path / "console_side.py"
    script.write_text(CONSOLE_SIDE, encoding="utf-8")

    console = subprocess.run([sys.executable, str(script), str(base.root), task_id],
                             capture_output=True, text=True, env=environment(), timeout=120, check=False)

    assert console.returncode == 0, console.stdout + console.stderr
    headless = int(console.stdout.strip())
    tidy.append(headless)
    # The console's process is gone; the agent and its supervisor are not.
    pid = agent_pid(base, task_id)
    supervisor = json.loads((run_dir(base, task_id) / "run.json").read_text())["supervisor_pid"]
    assert alive(pid) and alive(supervisor)
    holder = wait_for(lambda: (EngineLock.holder(base) or {}).get("pid") == headless and EngineLock.holder(base),
                      "the headless engine to take the lock")
    assert holder["mode"] == "headless"
    assert task(base, task_id).state is State.RUNNING

    gate.touch()
    wait_for(lambda: task(base, task_id).state is State.REVIEW, "the task to reach review")

    final = task(base, task_id)
    assert final.attempts == 1
    assert len(events(base, task_id, "claimed")) == 1
    assert not events(base, task_id, "stopped", "expired", "failed")
    assert starts(record) == [task_id]
    assert git(base.root, "show", f"factory/{task_id}:work-{task_id}.txt") == f"work on {task_id}"
    transcript = (run_dir(base, task_id) / "transcript.log").read_text().splitlines()
    assert transcript == [f"⏺ {task_id} line {n}" for n in range(3)] + [f"⏺ {task_id} done"]
    handover_log = (base.dir / "engine.log").read_text()
    assert f"{task_id}: took over its running agent" in handover_log
    assert "Traceback" not in handover_log
    os.kill(headless, signal.SIGTERM)
    wait_for(lambda: not alive(headless), "the headless engine to stop")
    assert EngineLock.holder(base) is None


# --- 9. faults with git -----------------------------------------------------------------


def test_a_worktree_deleted_by_hand_is_made_again_from_its_branch(base: FactoryBase) -> None:
    configure(base)
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    first = git(base.root, "rev-parse", f"factory/{task_id}")
    shutil.rmtree(base.worktrees_dir / task_id)
    apply(base, task_id, Action.REQUEUE, note="Once more, please.")

    again = factory(base, "run", "--once")

    assert again.returncode == 0, again.stdout + again.stderr
    assert task(base, task_id).state is State.REVIEW
    worktree = base.worktrees_dir / task_id
    assert worktree.is_dir()
    assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/factory/{task_id}"
    # The earlier commit is kept; the new one sits on top of it.
    assert git(base.root, "rev-parse", f"factory/{task_id}~1") == first
    notes = (worktree / "notes" / f"{task_id}.md").read_text()
    assert "demo agent run 1: created." in notes and "demo agent run 2: revisited." in notes


def test_approving_after_the_base_moved_with_a_conflict_fails_the_task(base: FactoryBase) -> None:
    configure(base)
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    # Meanwhile someone commits a different file of the same name on main.
    (base.root / "notes").mkdir()
    (base.root / "notes" / f"{task_id}.md").write_text("the user's own notes\n")
    git(base.root, "add", f"notes/{task_id}.md")
    git(base.root, "commit", "-q", "-m", "the user's notes")
    main = git(base.root, "rev-parse", "main")

    with pytest.raises(MergeFailed) as refused:
        apply(base, task_id, Action.APPROVE)

    assert f"notes/{task_id}.md" in str(refused.value)
    assert task(base, task_id).state is State.FAILED
    [event] = events(base, task_id, "failed")
    assert f"notes/{task_id}.md" in event.note
    assert event.data["conflicts"] == [f"notes/{task_id}.md"]
    assert git(base.root, "rev-parse", f"factory/{task_id}") == branch
    assert git(base.root, "rev-parse", "main") == main
    assert (base.root / "notes" / f"{task_id}.md").read_text() == "the user's own notes\n"
    assert git(base.worktrees_dir / task_id, "symbolic-ref", "HEAD") == f"refs/heads/factory/{task_id}"


def test_approving_with_an_unrelated_uncommitted_change_merges_and_keeps_it(base: FactoryBase) -> None:
    configure(base)
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    (base.root / "README.md").write_text("# a project\n\nthe user's edit, not committed\n")

    outcome = apply(base, task_id, Action.APPROVE)

    assert outcome.task.state is State.DONE
    assert git(base.root, "rev-parse", "main") == branch  # a fast-forward
    assert (base.root / "notes" / f"{task_id}.md").is_file()
    assert (base.root / "README.md").read_text() == "# a project\n\nthe user's edit, not committed\n"
    assert git(base.root, "status", "--porcelain", "README.md") == "M README.md"
    assert not (base.worktrees_dir / task_id).exists()
    assert not has_branch(base.root, f"factory/{task_id}")


def test_approving_over_an_overlapping_uncommitted_change_is_refused(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="editor", agents={"editor": agent_profile(agent, AGENT_EDIT="README.md")})
    task_id = add(base, "Edit the README")
    assert factory(base, "run", "--once").returncode == 0
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    main = git(base.root, "rev-parse", "main")
    users = "# a project\n\nthe user's edit, not committed\n"
    (base.root / "README.md").write_text(users)

    with pytest.raises(MergeRefused) as refused:
        apply(base, task_id, Action.APPROVE)

    message = str(refused.value)
    assert "nothing changed" in message and "README.md" in message, message
    assert task(base, task_id).state is State.REVIEW
    assert not events(base, task_id, "approved", "failed")
    assert (base.root / "README.md").read_text() == users
    assert git(base.root, "rev-parse", "main") == main
    assert git(base.root, "rev-parse", f"factory/{task_id}") == branch
    assert (base.worktrees_dir / task_id).is_dir()


def test_work_left_in_the_worktree_at_approval_lands_with_the_branch(base: FactoryBase) -> None:
    configure(base)
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    # The operator finished the work by hand in the worktree, not committed.
    (base.worktrees_dir / task_id / "fixed-by-hand.txt").write_text("the operator's fix\n")

    outcome = apply(base, task_id, Action.APPROVE)

    assert outcome.task.state is State.DONE and outcome.warning is None
    main = git(base.root, "rev-parse", "main")
    assert git(base.root, "rev-parse", "main^") == branch  # the fix, committed on top
    assert outcome.merge_commit == main
    assert (base.root / "fixed-by-hand.txt").read_text() == "the operator's fix\n"
    assert not (base.worktrees_dir / task_id).exists()
    assert not has_branch(base.root, f"factory/{task_id}")


def test_work_left_in_the_worktree_that_cannot_land_stays_on_the_branch_and_the_worktree(
    base: FactoryBase,
) -> None:
    configure(base)
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    (base.worktrees_dir / task_id / "fix.txt").write_text("the operator's fix\n")
    # The user's own uncommitted file of the same name in the main checkout.
    (base.root / "fix.txt").write_text("the user's own file\n")

    outcome = apply(base, task_id, Action.APPROVE)

    # The branch as it was committed landed; the fix is committed on the
    # branch, which stays with its worktree, and the warning says so.
    assert outcome.task.state is State.DONE
    assert git(base.root, "rev-parse", "main") == branch == outcome.merge_commit
    assert outcome.warning is not None and "did not land on main" in outcome.warning, outcome.warning
    assert [event.kind for event in events(base, task_id, "warning")] == ["warning"]
    tip = git(base.root, "rev-parse", f"factory/{task_id}")
    assert git(base.root, "rev-parse", f"{tip}^") == branch
    assert git(base.root, "show", f"{tip}:fix.txt") == "the operator's fix"
    assert (base.worktrees_dir / task_id / "fix.txt").read_text() == "the operator's fix\n"
    assert (base.root / "fix.txt").read_text() == "the user's own file\n"


# --- 10. one engine per base ------------------------------------------------------------


def test_one_engine_per_base(base: FactoryBase, tidy) -> None:
    configure(base)
    first = EngineThread(Engine(base, mode="embedded"))
    first.start()
    # The lock is taken a moment before its description is written (until
    # then a holder reads as "an engine", its pid from the kernel).
    holder = wait_for(lambda: (found := EngineLock.holder(base)) and found.get("mode") != "engine" and found,
                      "the first engine to take the lock and describe itself")
    assert holder["pid"] == os.getpid() and holder["mode"] == "embedded"

    import asyncio

    with pytest.raises(EngineBusy) as busy:
        asyncio.run(Engine(base, mode="headless").run())
    assert busy.value.holder["pid"] == os.getpid()
    assert f"embedded, pid {os.getpid()}" in str(busy.value)
    # Another process is refused too, in one line.
    refused = factory(base, "run", "--once")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.strip() == f"factory: another engine is running on this base ({busy.value.holder['mode']}, " \
        f"pid {os.getpid()} on {holder['host']})"
    # The refusals took nothing from the holder.
    assert EngineLock.holder(base) == holder and first.is_alive()

    first.stop(timeout=60)
    assert not first.is_alive() and first.error is None
    assert EngineLock.holder(base) is None
    after = factory(base, "run", "--once")
    assert after.returncode == 0, after.stdout + after.stderr


def test_a_console_attaches_to_a_headless_engine(base: FactoryBase, tmp_path: Path, tidy) -> None:
    configure(base)
    headless = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(headless)
    wait_for(lambda: (EngineLock.holder(base) or {}).get("pid") == headless.pid, "the engine to take the lock")

    host = EngineHost(base)
    assert host.start() == "attached"
    assert host.thread is None
    assert host.describe().startswith(f"engine: attached (headless, pid {headless.pid} on ")

    headless.send_signal(signal.SIGTERM)
    assert headless.wait(timeout=60) == 0
    assert host.refresh() == "none"
