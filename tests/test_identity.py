"""Agents cannot go round the operator (issue 6 §5).

A fake agent here is a real process started with the environment the
engine gives an agent (FACTORY_BASE, FACTORY_TASK, FACTORY_RUN and the
claim's secret as FACTORY_TOKEN), against a run really claimed in a real
log; it calls ``python -m factory_tui`` as an agent's script would. Process
trees are real too: a parent carrying the run's variables, a child that
unset them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_tui.actors import (
    Caller,
    Need,
    ancestor_environments,
    check_permitted,
    identify,
)
from factory_tui.backends.agents import load_profiles
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.cli import main
from factory_tui.config import config_from_dict
from factory_tui.errors import AgentRefused, ConfigError, NotPermitted
from factory_tui.model import Action, Claim, NewTask, State
from tests.helpers import assert_one_line_error, log_tables

from .test_log import Clock

AGENT_VARIABLES = ("FACTORY_BASE", "FACTORY_TASK", "FACTORY_RUN", "FACTORY_TOKEN")
REFUSED_AS_AGENT = "agents may note and propose tasks; "
NOT_AN_AGENT = "run token is missing, forged or stale; refused"


# --- helpers ----------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AGENT_VARIABLES}
    env.update(extra)
    return env


def agent_env(base: FactoryBase, claim: Claim, **extra: str) -> dict[str, str]:
    """What the engine gives an agent, for this claim's run."""
    return clean_env(**{
        "FACTORY_BASE": str(base.root),
        "FACTORY_TASK": claim.task.id,
        "FACTORY_RUN": str(run_folder(base, claim)),
        "FACTORY_TOKEN": claim.secret,
        **extra,
    })


def run_folder(base: FactoryBase, claim: Claim) -> Path:
    folder = base.runs_dir / claim.task.id / str(claim.task.attempts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def factory(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``factory ARGS`` as an agent's script runs it: the base comes from
    FACTORY_BASE when the environment has it."""
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", *args], capture_output=True, text=True,
        env=env, timeout=60, check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def refusal(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints (exit 1, nothing on stdout)."""
    return assert_one_line_error(done.returncode, done.stdout, done.stderr)


def snapshot(base: FactoryBase) -> dict:
    return log_tables(base.log_path)


def in_state(log: ExecutionLog, state: State, title: str) -> str:
    """A task brought to ``state`` the way the operator and engine would."""
    task = log.add_task(NewTask(title=title, state=State.HELD), actor="test")
    if state is State.HELD:
        return task.id
    log.apply(task.id, Action.RELEASE, actor="test")
    if state is State.QUEUED:
        return task.id
    claim = log.claim_next("test-engine", lease_seconds=600)
    assert claim is not None and claim.task.id == task.id
    log.finish(claim.token, state)
    return task.id


@pytest.fixture
def plan(base: FactoryBase, log: ExecutionLog):
    """T-1 is running (the fake agent's run); T-2 is in review, T-3
    queued, T-4 held: something for every operator action to act on."""
    log.add_task(NewTask(title="the agent's task"), actor="test")
    claim = log.claim_next("test-engine", lease_seconds=600)
    assert claim is not None and claim.task.id == "T-1"
    ids = [in_state(log, state, title) for state, title in (
        (State.REVIEW, "waits for review"), (State.QUEUED, "waits in the queue"), (State.HELD, "held"),
    )]
    assert ids == ["T-2", "T-3", "T-4"]
    return claim


# --- the log: a run's secret --------------------------------------------------------


def test_agent_for_knows_only_a_live_runs_secret(base: FactoryBase) -> None:
    clock = Clock()
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        log.add_task(NewTask(title="one"), actor="test")
        first = log.claim_next("w", lease_seconds=60)
        assert first is not None and first.secret.startswith("T-1:") and len(first.secret) >= 36
        assert log.agent_for(first.secret) == "T-1"
        for forged in ("0" * 64, "T-1:" + "0" * 64, "T-1:", "T-2:" + first.secret[4:], ""):
            assert log.agent_for(forged) is None, forged
        # The lease ran out (an engine that stopped renewing it): not live.
        clock.advance(61)
        assert log.agent_for(first.secret) is None
        log.reap_expired()
        second = log.claim_next("w", lease_seconds=60)
        assert second is not None and second.secret != first.secret
        # Claimed again: only the new run's secret is good.
        assert log.agent_for(first.secret) is None
        assert log.agent_for(second.secret) == "T-1"
        assert log.run_is_live("T-1", 2) and not log.run_is_live("T-1", 1)
        log.finish(second.token, State.REVIEW)
        assert log.agent_for(second.secret) is None  # the run ended
        assert not log.run_is_live("T-1", 2)
    # The log keeps only a hash: its file never holds a usable secret.
    for path in base.dir.glob("log.db*"):
        data = path.read_bytes()
        for claim in (first, second):
            assert claim.secret.partition(":")[2].encode() not in data


# --- a fake agent, through the real command -------------------------------------------


def test_an_agent_is_refused_the_operators_actions(base: FactoryBase, plan: Claim) -> None:
    env = agent_env(base, plan)
    before = snapshot(base)
    for args, doing in [
        (("task", "approve", "T-2"), "approving T-2"),
        (("task", "requeue", "T-2", "--note", "again"), "re-queueing T-2"),
        (("task", "cancel", "T-3"), "cancelling T-3"),
        (("task", "cancel", "T-1"), "cancelling T-1"),  # its own task too
        (("task", "hold", "T-3"), "holding T-3"),
        (("task", "release", "T-4"), "releasing T-4"),
        (("task", "priority", "T-3", "9"), "changing the priority of T-3"),
        (("task", "depend", "T-3", "T-2"), "changing the dependencies of T-3"),
        (("task", "undepend", "T-3", "T-2"), "changing the dependencies of T-3"),
        (("task", "hold", "T-3", "T-4"), "holding tasks"),
        (("worktrees", "clean", "--yes"), "cleaning worktrees"),
        (("run", "--once"), "running the engine or the console"),
        (("engine", "stop"), "running the engine or the console"),
        (("init", str(base.root)), "initialising a base"),
    ]:
        line = refusal(factory(env, *args))
        assert line == (
            f"factory: {REFUSED_AS_AGENT}{doing} is the operator's (see [agents] may in factory.toml)"
        ), args
    assert snapshot(base) == before
    # Reading is open to it.
    listed = factory(env, "plan", "list", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 4


def test_an_agents_tasks_are_proposed_whatever_it_asks(base: FactoryBase, plan: Claim, tmp_path: Path) -> None:
    # FACTORY_TASK says T-3; the token says T-1, and the token is what counts.
    env = agent_env(base, plan, FACTORY_TASK="T-3")
    added = factory(env, "plan", "add", "follow up", "--state", "queued", "--after", "T-1")
    assert added.returncode == 0, added.stderr
    new_id = added.stdout.strip()
    assert new_id == "T-5"
    assert added.stderr.strip() == (
        "T-5 is proposed, not queued: an agent's tasks wait for the operator's approval "
        "(see [agents] may in factory.toml)"
    )
    checklist = tmp_path / "plan.md"
    checklist.write_text("- [ ] first step {#a}\n- [x] already done\n- [ ] second step {after=a}\n")
    imported = factory(env, "plan", "import", str(checklist), "--state", "queued")
    assert imported.returncode == 0, imported.stderr
    assert "all proposed: an agent's tasks wait for the operator's approval" in imported.stdout
    noted = factory(env, "note", "halfway there")
    assert noted.returncode == 0 and noted.stdout.strip() == "noted on T-1"
    with ExecutionLog.open(base.log_path) as log:
        tasks = {task.id: task for task in log.list_tasks()}
        created = [tasks[f"T-{n}"] for n in range(5, 9)]
        assert [t.state for t in created] == [State.PROPOSED] * 4
        assert {t.source for t in created} == {"agent:T-1"}
        assert tasks["T-8"].depends_on == ("T-6",)
        made = [e for e in log.events(kinds=["created"]) if e.task_id in {t.id for t in created}]
        assert {e.actor for e in made} == {"agent:T-1"}
        [note] = log.events(kinds=["note"])
        assert (note.task_id, note.actor, note.note) == ("T-1", "agent:T-1", "halfway there")
        # None of it reached the queue: the engine has nothing new to run.
        assert [t.id for t in log.list_tasks([State.QUEUED])] == ["T-3"]


def test_a_forged_or_stale_token_is_refused(base: FactoryBase, log: ExecutionLog, plan: Claim) -> None:
    forged = agent_env(base, plan, FACTORY_TOKEN="T-1:" + "f" * 64)
    stale = agent_env(base, plan)
    before = snapshot(base)
    for args in (("note", "hi"), ("plan", "add", "x"), ("task", "approve", "T-2")):
        assert NOT_AN_AGENT in refusal(factory(forged, *args)), args
    assert snapshot(base) == before
    # The run ends: its token is stale from then on, also for what agents may do.
    log.finish(plan.token, State.REVIEW)
    for args in (("note", "hi"), ("plan", "add", "x"), ("task", "approve", "T-2")):
        line = refusal(factory(stale, *args))
        assert line == (
            "factory: this process claims to be an agent (FACTORY_TOKEN, FACTORY_TASK, "
            f"FACTORY_RUN set) but its {NOT_AN_AGENT}"
        )
    # The same token after the task was claimed again: still stale.
    log.apply("T-1", Action.REQUEUE, actor="test")
    again = log.claim_next("test-engine", lease_seconds=600)
    assert again is not None and again.task.id == "T-1"
    assert NOT_AN_AGENT in refusal(factory(stale, "note", "hi"))
    assert factory(agent_env(base, again), "note", "hi").returncode == 0


def test_a_task_name_or_a_run_folder_alone_is_refused(base: FactoryBase, plan: Claim) -> None:
    before = snapshot(base)
    for variables in ({"FACTORY_TASK": "T-1"}, {"FACTORY_RUN": str(run_folder(base, plan))}):
        env = clean_env(FACTORY_BASE=str(base.root), **variables)
        for args in (("note", "hi"), ("plan", "add", "x"), ("task", "cancel", "T-3")):
            line = refusal(factory(env, *args))
            assert f"claims to be an agent ({next(iter(variables))} set)" in line
            assert NOT_AN_AGENT in line
    assert snapshot(base) == before


def under_an_agent(parent_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``factory ARGS`` run by ``env -u …`` (every factory variable unset)
    from a child of a process that carries ``parent_env``, as an agent's
    script would after unsetting them; the parent waits, like the run's
    supervisor, so the child has it as an ancestor."""
    unset = [arg for name in AGENT_VARIABLES for arg in ("-u", name)]
    child = ["env", *unset, sys.executable, "-m", "factory_tui", *args]
    parent = [sys.executable, "-c",
              "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)", *child]
    done = subprocess.run(parent, capture_output=True, text=True, env=parent_env, timeout=60, check=False)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def test_an_agent_that_unset_its_variables_is_still_an_agent(
    base: FactoryBase, log: ExecutionLog, plan: Claim,
) -> None:
    root = str(base.root)
    before = snapshot(base)
    # The supervisor carries every variable; an ancestor with only the run
    # folder (no token to check) is found by its run as well.
    for parent_env in (agent_env(base, plan), clean_env(FACTORY_RUN=str(run_folder(base, plan)))):
        line = refusal(under_an_agent(parent_env, "--base", root, "task", "approve", "T-2"))
        assert line.startswith(f"factory: {REFUSED_AS_AGENT}approving T-2 is the operator's")
    assert snapshot(base) == before
    added = under_an_agent(clean_env(FACTORY_RUN=str(run_folder(base, plan))),
                           "--base", root, "plan", "add", "sneaky", "--state", "queued")
    assert added.returncode == 0, added.stderr
    task = log.get_task(added.stdout.strip())
    assert (task.state, task.source) == (State.PROPOSED, "agent:T-1")
    # Once the run has ended, a process still under it is refused outright.
    log.finish(plan.token, State.REVIEW)
    line = refusal(under_an_agent(agent_env(base, plan), "--base", root, "note", "still here"))
    assert f"runs under the agent run {run_folder(base, plan)}, which is not live" in line
    # A run of another base is no claim on this one (an agent testing its own base).
    other = clean_env(FACTORY_RUN=str(base.root.parent / "elsewhere" / ".factory" / "runs" / "T-1" / "1"))
    assert under_an_agent(other, "--base", root, "task", "hold", "T-3").returncode == 0


def test_agents_may_widens_what_agents_do(base: FactoryBase, log: ExecutionLog, plan: Claim) -> None:
    with base.config_path.open("a", encoding="utf-8") as handle:
        handle.write('\n[agents]\nmay = ["cancel", "queue"]\n')
    env = agent_env(base, plan)
    cancelled = factory(env, "task", "cancel", "T-3", "--note", "superseded")
    assert cancelled.returncode == 0, cancelled.stderr
    [event] = log.events(task_id="T-3", kinds=["cancelled"])
    assert event.actor == "agent:T-1"
    queued = factory(env, "plan", "add", "urgent", "--state", "queued")
    assert queued.returncode == 0 and queued.stderr == ""
    assert log.get_task(queued.stdout.strip()).state is State.QUEUED
    # What it does not name stays the operator's.
    assert REFUSED_AS_AGENT + "approving T-2" in refusal(factory(env, "task", "approve", "T-2"))
    # The profiles are still the profiles: `may` is none of them.
    listed = factory(env, "agents", "--json")
    assert "may" not in {row["name"] for row in json.loads(listed.stdout)}


def test_agents_may_is_checked_when_factory_toml_is_read() -> None:
    config = config_from_dict({"agents": {"may": ["hold", "release"], "demo": {"argv": ["x"]}}})
    assert config.agent_may == ("hold", "release")
    assert set(load_profiles(config)) == {"demo"}
    assert config_from_dict({}).agent_may == ()
    with pytest.raises(ConfigError, match=r"\[agents\] may: unknown action 'merge'"):
        config_from_dict({"agents": {"may": ["hold", "merge"]}})
    with pytest.raises(ConfigError, match=r"\[agents\] may must be a list of actions"):
        config_from_dict({"agents": {"may": "cancel"}})


def test_an_unknown_action_in_agents_may_is_one_line(base: FactoryBase) -> None:
    with base.config_path.open("a", encoding="utf-8") as handle:
        handle.write('\n[agents]\nmay = ["launch"]\n')
    # An operator's action reads factory.toml only when it needs it; status does.
    line = refusal(factory(clean_env(FACTORY_BASE=str(base.root)), "status"))
    assert "[agents] may: unknown action 'launch'" in line


# --- the pieces -------------------------------------------------------------------


class FakeLog:
    """The two questions identify asks, answered from sets."""

    def __init__(self, secrets: dict[str, str], live: set[tuple[str, int]]) -> None:
        self.secrets, self.live = secrets, live

    def agent_for(self, secret: str) -> str | None:
        return self.secrets.get(secret)

    def run_is_live(self, task_id: str, attempt: int) -> bool:
        return (task_id, attempt) in self.live


def test_identify_in_every_case(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = str(runs / "T-2" / "1")
    log = FakeLog({"good": "T-2"}, {("T-2", 1)})
    assert identify(log, runs, environ={"FACTORY_TOKEN": "good", "FACTORY_TASK": "T-9"}, ancestors=[]) == Caller("agent:T-2", "T-2")
    with pytest.raises(AgentRefused):
        identify(log, runs, environ={"FACTORY_TOKEN": "bad"}, ancestors=[])
    with pytest.raises(AgentRefused):
        identify(None, None, environ={"FACTORY_TOKEN": "good"}, ancestors=[])  # no log to check it against
    operator = identify(log, runs, channel="cli", environ={}, ancestors=[{}, {"FACTORY_BASE": "/x"}])
    assert not operator.is_agent and operator.actor.startswith("cli:")
    assert identify(log, runs, environ={}, ancestors=[{"FACTORY_RUN": run}]).task_id == "T-2"
    assert identify(log, runs, environ={}, ancestors=[{"FACTORY_TOKEN": "good"}]).task_id == "T-2"
    with pytest.raises(AgentRefused):
        identify(log, runs, environ={}, ancestors=[{"FACTORY_RUN": str(runs / "T-2" / "7")}])
    with pytest.raises(AgentRefused):  # in the runs folder, but no run folder at all
        identify(log, runs, environ={}, ancestors=[{"FACTORY_RUN": str(runs)}])
    assert not identify(log, runs, environ={}, ancestors=[{"FACTORY_RUN": "/elsewhere/runs/T-2/1"}]).is_agent


def test_ancestor_environments_reads_the_process_tree(tmp_path: Path) -> None:
    if not Path("/proc/self/environ").exists():
        pytest.skip("no /proc: ancestors cannot be read here")
    script = ("import json; from factory_tui.actors import ancestor_environments; "
              "print(json.dumps(list(ancestor_environments())))")
    inner = ["env", "-u", "FACTORY_RUN", sys.executable, "-c", script]
    outer = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)", *inner]
    done = subprocess.run(outer, capture_output=True, text=True, check=True, timeout=60,
                          env=clean_env(FACTORY_RUN="/somewhere/runs/T-1/1"))
    # Nearest first: the parent carries it, this process (where it was unset) does not count.
    assert json.loads(done.stdout)[0] == {"FACTORY_RUN": "/somewhere/runs/T-1/1"}
    assert list(ancestor_environments(pid=1)) == []


def test_check_permitted() -> None:
    agent = Caller("agent:T-1", "T-1")
    for need in (Need.READ, Need.NOTE, Need.PROPOSE, Need.MAIL):
        check_permitted(agent, need)
    for need in Need:
        check_permitted(Caller("cli:alice"), need)  # the operator may do anything
    with pytest.raises(NotPermitted, match="approving T-4 is the operator's"):
        check_permitted(agent, Need.APPROVE, subject="T-4")
    check_permitted(agent, Need.APPROVE, may=["approve"], subject="T-4")


def test_every_command_declares_what_it_needs() -> None:
    def leaves(group, path=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from leaves(command, (*path, name))
                if command.invoke_without_command:
                    yield (*path, name), command
            else:
                yield (*path, name), command

    undeclared = [" ".join(path) for path, command in leaves(main) if not isinstance(getattr(command.callback, "needs", None), Need)]
    assert undeclared == []
    reads = {" ".join(path) for path, command in leaves(main) if command.callback.needs is Need.READ}
    assert reads == {"plan list", "plan show", "plan proposals", "plan export", "worktrees", "agents", "log", "status",
                     "engine status", "qa list", "qa show", "qa history", "mail list", "mail show", "mail peers",
                     "run-info", "artifacts list", "artifacts show", "artifacts history"}


def test_an_agent_cannot_open_the_console(base: FactoryBase, plan: Claim) -> None:
    # In-process, so that no console could ever start: the refusal comes first.
    result = CliRunner().invoke(main, ["console"], env=agent_env(base, plan))
    assert result.exit_code == 1
    assert "running the engine or the console is the operator's" in result.output
