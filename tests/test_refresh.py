"""Keeping the living documents current (issue 10 §1): after
``[artifacts] refresh_every`` landings, and whenever asked, the factory
proposes one task to bring them up to date, holding the history since the
last refresh and the documents; never two open at once; landing it starts
the count anew."""

from __future__ import annotations

import json
import subprocess

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.documents_log import REFRESH_SOURCE
from factory_tui.backends.prompt import BODY_BUDGET
from factory_tui.backends.refresh import REFRESH_BODY_BUDGET, REFRESH_TITLE
from factory_tui.backends.session import FactorySession
from factory_tui.model import Action, NewTask, State
from tests.engine_helpers import configure, factory, factory_argv
from tests.helpers import assert_one_line_error
from tests.test_identity import agent_env, clean_env
from tests.test_landings import review_without_runs


def land(session: FactorySession, title: str):
    """A task taken to review and approved: one landing."""
    task_id = review_without_runs(session.log, title)
    return session.apply(task_id, Action.APPROVE, actor="cli:op")


def refresh_tasks(session: FactorySession):
    return [task for task in session.log.list_tasks() if task.source == REFRESH_SOURCE]


def test_after_refresh_every_landings_one_refresh_task_is_proposed_and_landing_it_starts_anew(base: FactoryBase) -> None:
    configure(base, extra="[artifacts]\nrefresh_every = 3\n")
    (base.artifacts_dir / "conventions.md").write_text("# Conventions\n\nUse tabs. CONVENTIONS-TEXT\n")
    with FactorySession(base) as session:
        for n in (1, 2):
            outcome = land(session, f"Task {n}")
            assert "proposed" not in outcome.message
        assert refresh_tasks(session) == []
        third = land(session, "Task 3")
        [refresh] = refresh_tasks(session)
        assert f"{refresh.id} proposed: {REFRESH_TITLE}" in third.message and third.warning is None
        assert (refresh.title, refresh.state, refresh.labels) == (REFRESH_TITLE, State.PROPOSED, ("artifacts",))
        body = session.log.get_task(refresh.id).body
        assert body.index("## T-3: Task 3") < body.index("## T-2: Task 2") < body.index("## T-1: Task 1")
        assert "CONVENTIONS-TEXT" in body and "### conventions.md" in body
        # Three more landings: still the one.
        for n in (4, 5, 6):
            land(session, f"Task {n}")
        assert [task.id for task in refresh_tasks(session)] == [refresh.id]
        # The operator approves it; it runs and lands like any task.
        session.apply(refresh.id, Action.APPROVE, actor="cli:op")
        claim = session.log.claim_next("test-engine", lease_seconds=600)
        assert claim is not None and claim.task.id == refresh.id
        session.log.finish(claim.token, State.REVIEW)
        landed = session.apply(refresh.id, Action.APPROVE, actor="cli:op")
        assert landed.task.state is State.DONE and "proposed" not in landed.message
        assert session.log.landings(limit=1)[0].refresh
        # The count starts anew from its landing.
        land(session, "Task 8")
        land(session, "Task 9")
        assert len(refresh_tasks(session)) == 1
        land(session, "Task 10")
        latest = refresh_tasks(session)[-1]
        assert len(refresh_tasks(session)) == 2 and latest.state is State.PROPOSED
        body = session.log.get_task(latest.id).body
        assert "## T-10: Task 10" in body and "## T-8: Task 8" in body and "Task 6" not in body


def test_refresh_every_0_never_proposes_by_itself(base: FactoryBase) -> None:
    configure(base, extra="[artifacts]\nrefresh_every = 0\n")
    with FactorySession(base) as session:
        for n in range(4):
            land(session, f"Task {n}")
        assert refresh_tasks(session) == []


def test_a_cancelled_refresh_comes_again_only_after_as_many_landings(base: FactoryBase) -> None:
    configure(base, extra="[artifacts]\nrefresh_every = 2\n")
    with FactorySession(base) as session:
        land(session, "one")
        land(session, "two")
        [first] = refresh_tasks(session)
        session.apply(first.id, Action.CANCEL, actor="cli:op")
        land(session, "three")
        assert len(refresh_tasks(session)) == 1  # not at once again
        land(session, "four")
        assert len(refresh_tasks(session)) == 2


def test_on_demand_one_is_proposed_and_asking_again_names_it(base: FactoryBase) -> None:
    configure(base)
    made = factory(base, "artifacts", "refresh")
    assert made.returncode == 0, made.stderr
    assert made.stdout == f"T-1 proposed: {REFRESH_TITLE} (approve it to have an agent do it)\n"
    again = factory(base, "artifacts", "refresh", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"task": "T-1", "title": REFRESH_TITLE, "state": "proposed", "created": False}
    line = factory(base, "artifacts", "refresh")
    assert line.stdout.splitlines() == [f"T-1 is open already (proposed): {REFRESH_TITLE}; only one is open at a time"]
    with FactorySession(base) as session:
        assert session.propose_refresh().task.id == "T-1"
        assert [task.id for task in refresh_tasks(session)] == ["T-1"]
        body = session.log.get_task("T-1").body
    assert "since the factory began keeping its history (0 tasks" in body and "Nothing has landed since." in body


def test_many_asking_at_once_make_one(base: FactoryBase) -> None:
    configure(base)
    processes = [subprocess.Popen(factory_argv(base, "artifacts", "refresh", "--json"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=clean_env()) for _ in range(6)]
    results = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), results
    made = [json.loads(out)["created"] for out, _ in results]
    assert made.count(True) == 1
    with FactorySession(base) as session:
        assert len(refresh_tasks(session)) == 1


def test_an_agent_may_ask_for_it_and_it_waits_for_the_operator(base: FactoryBase) -> None:
    configure(base)
    with FactorySession(base) as session:
        session.log.add_task(NewTask(title="the agent's task"), actor="test")
        claim = session.log.claim_next("test-engine", lease_seconds=600)
        assert claim is not None
    env = agent_env(base, claim)
    asked = subprocess.run([*factory_argv(base, "artifacts", "refresh", "--json")], capture_output=True, text=True,
                           env=env, timeout=60)
    assert asked.returncode == 0, asked.stderr
    refresh_id = json.loads(asked.stdout)["task"]
    approve = subprocess.run(factory_argv(base, "task", "approve", refresh_id), capture_output=True, text=True,
                             env=env, timeout=60)
    assert "approving" in assert_one_line_error(approve.returncode, approve.stdout, approve.stderr)
    with FactorySession(base) as session:
        made = session.log.get_task(refresh_id)
        assert made.state is State.PROPOSED
        assert session.log.events(task_id=refresh_id, kinds=["created"])[0].actor == f"agent:{claim.task.id}"


def test_the_body_stays_within_its_bound_with_many_large_documents(base: FactoryBase) -> None:
    configure(base, extra="[artifacts]\nrefresh_every = 0\n")
    for n in range(30):
        (base.artifacts_dir / f"doc-{n:02}.md").write_text(f"# Doc {n}\n" + ("x" * 80 + "\n") * 300)
    (base.artifacts_dir / "broken.md").write_text("---\ninclude: maybe\n---\n")
    with FactorySession(base) as session:
        for n in range(40):
            land(session, f"A task with a long title {'word ' * 30} {n}")
        body = session.propose_refresh(actor="cli:op").task.body
    assert len(body.encode()) <= REFRESH_BODY_BUDGET < BODY_BUDGET
    assert "### doc-00.md" in body and "### doc-29.md" in body  # every document, each cut to its share
    assert "`broken.md` cannot be used (line 2)" in body
    assert "earlier landing" in body  # the history beyond its share is counted
