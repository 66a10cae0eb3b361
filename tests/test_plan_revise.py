"""``factory plan draft --revise`` and the operator's word on what it
proposes (issue 10 §4): the planner gets the log as it is after real runs
(done, failed twice, re-queued with feedback), proposes new tasks and
changes, and nothing but the new tasks' arrival happens until the operator
accepts (``factory plan accept``) or declines (``factory plan decline``);
an agent may do neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.draft_model import NewProposal, ProposalKind, ProposalState
from factory_tui.model import Action, NewTask, State
from tests.engine_helpers import apply, configure, environment, factory
from tests.helpers import assert_one_line_error, log_tables

TABLES = ("tasks", "deps", "events", "drafts", "plan_proposals")

SPEC = """\
# Notes app

## Storage
- Save notes

## Search
- Find notes

## Sharing
- Share a note by link
"""

# An agent that does some work and fails on the tasks FAIL_TASKS names.
AGENT = r'''
import os, sys
from pathlib import Path
task = sys.argv[1]
Path(f"work-{task}.txt").write_text(f"work on {task}\n")
print(f"{task} at work", flush=True)
sys.exit(1 if task in os.environ.get("FAIL_TASKS", "").split(",") else 0)
'''


def draft(base: FactoryBase, *args: str) -> subprocess.CompletedProcess:
    return factory(base, "plan", "draft", *args)


def tasks(base: FactoryBase) -> dict:
    with ExecutionLog.open(base.log_path) as log:
        return {task.title: task for task in log.list_tasks()}


def test_a_revision_after_real_runs_proposes_and_waits_for_the_operator(base: FactoryBase, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    configure(base, default_agent="worker", agents={"worker": {
        "argv": ["{python}", str(script), "{task_id}"], "output": "text", "timeout": 60,
        "env": {"FAIL_TASKS": "T-2"},
    }})
    spec = base.root / "SPEC.md"
    spec.write_text(SPEC)
    assert draft(base, str(spec)).returncode == 0
    for task_id in ("T-1", "T-2", "T-3"):
        apply(base, task_id, Action.APPROVE)
    assert factory(base, "run", "--once", "-q").returncode == 1  # T-2 failed
    apply(base, "T-2", Action.REQUEUE, note="use the index, not a scan")
    assert factory(base, "run", "--once", "-q").returncode == 1  # and failed again
    apply(base, "T-1", Action.APPROVE)  # merged: done
    made = tasks(base)
    assert [(t.id, t.state, t.attempts) for t in made.values()] == [
        ("T-1", State.DONE, 1), ("T-2", State.FAILED, 2), ("T-3", State.REVIEW, 1)]

    # The spec changes: sharing is dropped, export is new.
    spec.write_text(SPEC.replace("## Sharing\n- Share a note by link\n", "## Export\n- Export to markdown\n"))
    before = log_tables(base.log_path, ("tasks",))
    done = draft(base, "--revise", "--json")  # the spec: the last draft's
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["draft"]["revise"] is True
    assert [(t["id"], t["title"], t["state"]) for t in outcome["imported"]] == [("T-4", "Export to markdown", "proposed")]
    proposals = {(p["id"], p["task"], p["kind"], p["value"]) for p in outcome["proposals"]}
    assert proposals == {("P-1", "T-3", "cancel", None), ("P-2", "T-2", "priority", -1)}
    # Nothing of the old tasks changed: the changes wait.
    assert log_tables(base.log_path, ("tasks",))["tasks"][:3] == before["tasks"]

    # The planner was given the log as it is.
    run = Path(outcome["run_dir"])
    log_lines = [json.loads(line) for line in (run / "prompt.md").read_text().splitlines() if line.startswith('{"id"')]
    by_id = {line["id"]: line for line in log_lines}
    assert by_id["T-1"]["state"] == "done"
    assert (by_id["T-2"]["state"], by_id["T-2"]["attempts"]) == ("failed", 2)
    assert by_id["T-2"]["feedback"] == "use the index, not a scan"
    assert by_id["T-2"]["failure"].startswith("agent exited 1")
    assert by_id["T-3"]["state"] == "review"

    listed = factory(base, "plan", "proposals")
    assert listed.stdout.splitlines()[0].startswith("P-1   cancel T-3")
    assert "Its item is no longer in the spec." in listed.stdout

    accepted = factory(base, "plan", "accept", "P-2")
    assert accepted.stdout.strip() == "P-2 accepted: T-2 priority → -1"
    declined = factory(base, "plan", "decline", "P-1", "--note", "sharing comes back next month")
    assert declined.stdout.strip() == "P-1 declined: cancel T-3 is not done"
    made = tasks(base)
    assert made["Find notes"].priority == -1
    assert made["Share a note by link"].state is State.REVIEW
    with ExecutionLog.open(base.log_path) as log:
        assert [(p.id, p.state, p.decision_note) for p in log.proposals()] == [
            ("P-1", ProposalState.DECLINED, "sharing comes back next month"), ("P-2", ProposalState.ACCEPTED, None)]
        kinds = [(e.task_id, e.kind) for e in log.events(kinds=["proposal", "proposal_accepted", "proposal_declined",
                                                                 "priority", "drafted"])]
    assert kinds[-6:] == [("T-3", "proposal"), ("T-2", "proposal"), (None, "drafted"),
                          ("T-2", "priority"), ("T-2", "proposal_accepted"), ("T-3", "proposal_declined")]
    # A revision now proposes none of it again: the priority is in place,
    # the declined cancel is not pending (it may come back: it is the
    # planner's view, and the operator's to decline again).
    again = json.loads(draft(base, "--revise", "--json").stdout)
    assert [t["title"] for t in again["imported"]] == []
    assert [(p["task"], p["kind"]) for p in again["proposals"]] == [("T-3", "cancel")]


# --- accepting and declining, on a log set up directly -----------------------------


@pytest.fixture
def proposed(base: FactoryBase) -> FactoryBase:
    """T-1 drafted and proposed, T-2 queued and T-3 running (its run's
    claim); P-1 cancels T-2, P-2 sets T-3's priority to 7."""
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="drafted", state=State.PROPOSED, source="draft:SPEC.md"), actor="t")
        log.add_task(NewTask(title="queued one"), actor="t")
        log.add_task(NewTask(title="running one", priority=-1), actor="t")
        log.record_draft(spec="SPEC.md", source="draft:SPEC.md", revise=True, profile="demo-planner",
                         run_dir="x/", actor="t", task_ids=["T-1"], skipped=0, where="plan.md", proposals=[
                             NewProposal(1, "T-2", ProposalKind.CANCEL, None, "Drop it", "gone"),
                             NewProposal(2, "T-3", ProposalKind.PRIORITY, 7, "Sooner", "needed first"),
                         ])
    return base


def agent_env(base: FactoryBase) -> dict[str, str]:
    """The environment the engine gives an agent, for a real claim of T-3."""
    with ExecutionLog.open(base.log_path) as log:
        log.apply("T-2", Action.HOLD, actor="t")  # so that T-3 is the one claimed
        claim = log.claim_next("test-engine", lease_seconds=600)
        log.apply("T-2", Action.RELEASE, actor="t")
    assert claim is not None and claim.task.id == "T-3"
    run = base.runs_dir / "T-3" / "1"
    run.mkdir(parents=True)
    env = {k: v for k, v in environment().items() if not k.startswith("FACTORY_")}
    env.update(FACTORY_BASE=str(base.root), FACTORY_TASK="T-3", FACTORY_RUN=str(run), FACTORY_TOKEN=claim.secret)
    return env


def test_an_agent_may_neither_accept_nor_decline(proposed: FactoryBase) -> None:
    env = agent_env(proposed)
    before = log_tables(proposed.log_path, TABLES)
    for args in (["accept", "P-1"], ["decline", "P-2"], ["accept", "--all", "--yes"], ["accept", "T-1"]):
        done = subprocess.run([sys.executable, "-m", "factory_tui", "plan", *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
        assert line == ("factory: agents may note and propose tasks; deciding on the planner's proposals is the "
                        "operator's (see [agents] may in factory.toml)")
    assert log_tables(proposed.log_path, TABLES) == before
    # It may read them.
    listed = subprocess.run([sys.executable, "-m", "factory_tui", "plan", "proposals", "--json"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert [p["id"] for p in json.loads(listed.stdout)] == ["P-1", "P-2"]


def test_an_agent_allowed_to_accept_still_needs_the_change_itself(proposed: FactoryBase) -> None:
    configure(proposed, extra='\n[agents]\nmay = ["accept", "priority"]\n')
    env = agent_env(proposed)

    def plan(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "factory_tui", "plan", *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)

    assert plan("accept", "P-2").returncode == 0
    refused = plan("accept", "P-1")
    line = assert_one_line_error(refused.returncode, refused.stdout, refused.stderr)
    assert "cancelling T-2 is the operator's" in line
    assert tasks(proposed)["queued one"].state is State.QUEUED


def test_accepting_a_cancel_cancels_the_task(proposed: FactoryBase) -> None:
    done = factory(proposed, "plan", "accept", "P-1", "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert (result["task"]["state"], result["proposal"]["state"]) == ("cancelled", "accepted")
    assert tasks(proposed)["queued one"].state is State.CANCELLED
    cancelled = factory(proposed, "log", "--task", "T-2", "--kind", "cancelled", "--json")
    assert json.loads(cancelled.stdout.splitlines()[0])["note"] == "P-1: Drop it"
    again = factory(proposed, "plan", "accept", "P-1")
    assert assert_one_line_error(again.returncode, again.stdout, again.stderr) == (
        "factory: P-1 was accepted already (by " + json.loads(done.stdout)[0]["proposal"]["decided_by"] + ")")


def test_accept_all_takes_the_drafted_tasks_and_the_proposals_after_asking(proposed: FactoryBase) -> None:
    asked = subprocess.run([sys.executable, "-m", "factory_tui", "--base", str(proposed.root), "plan", "accept", "--all"],
                           input="n\n", capture_output=True, text=True, env=environment(), timeout=60, check=False)
    assert asked.returncode == 1
    assert "Accept 3 items (T-1, P-1, P-2), 1 cancellation among them" in asked.stdout
    assert tasks(proposed)["drafted"].state is State.PROPOSED  # nothing done on "no"
    scripted = factory(proposed, "plan", "accept", "--all", "--json")  # no question mixed into JSON
    assert scripted.returncode == 1 and scripted.stdout == ""
    assert json.loads(scripted.stderr) == {"error": "--all would cancel 1 task: add --yes"}
    done = factory(proposed, "plan", "accept", "--all", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["T-1 approved: queued", "P-1 accepted: T-2 cancelled",
                                        "P-2 accepted: T-3 priority → 7"]
    assert factory(proposed, "plan", "accept", "--all").stdout.strip() == (
        "Nothing waits for you: no drafted task is proposed, no proposal pending.")


def test_decline_all_and_a_task_id(proposed: FactoryBase) -> None:
    done = factory(proposed, "plan", "decline", "--all", "--note", "not now")
    assert done.stdout.splitlines() == ["T-1 cancelled: cancelled", "P-1 declined: cancel T-2 is not done",
                                        "P-2 declined: priority of T-3 → 7 is not done"]
    made = tasks(proposed)
    assert (made["drafted"].state, made["queued one"].state, made["running one"].priority) == (
        State.CANCELLED, State.QUEUED, -1)


@pytest.mark.parametrize(("args", "problem"), [
    (["accept", "7"], "not a proposal or task id: '7' (write P-3 for a proposal, T-3 for a proposed task)"),
    (["accept", "P-9"], "no such proposal: P-9"),
    (["accept"], "name what to decide on (P-3 for a proposal, T-3 for a proposed task) or use --all"),
    (["accept", "P-1", "--all"], "give IDs or --all, not both"),
    (["accept", "T-2"], "T-2 is queued, not proposed: plan accept and decline take proposed tasks "
                        "(see factory task approve)"),
    (["decline", "[bold]x[/]\x1b[31m"], "not a proposal or task id: '[bold]x[/]\\x1b[31m' (write P-3 for a proposal, "
                                        "T-3 for a proposed task)"),
])
def test_bad_ids_are_one_line(proposed: FactoryBase, args: list[str], problem: str) -> None:
    before = log_tables(proposed.log_path, TABLES)
    done = factory(proposed, "plan", *args)
    assert assert_one_line_error(done.returncode, done.stdout, done.stderr) == f"factory: {problem}"
    assert log_tables(proposed.log_path, TABLES) == before


def test_several_ids_are_each_tried(proposed: FactoryBase) -> None:
    done = factory(proposed, "plan", "accept", "P-2", "P-9", "T-1")
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["P-2 accepted: T-3 priority → 7", "T-1 approved: queued"]
    assert done.stderr.strip() == "factory: no such proposal: P-9"


def test_a_cancel_accepted_after_the_task_was_cancelled_only_records_the_decision(proposed: FactoryBase) -> None:
    """What a re-run finds when the first accept died between cancelling
    the task and recording the decision."""
    assert factory(proposed, "task", "cancel", "T-2").returncode == 0
    done = factory(proposed, "plan", "accept", "P-1")
    assert done.stdout.strip() == "P-1 accepted: T-2 cancelled"
    lines = factory(proposed, "log", "--task", "T-2", "--json").stdout.splitlines()
    assert len([e for e in map(json.loads, lines) if e["kind"] == "cancelled"]) == 1
