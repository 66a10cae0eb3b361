"""ExecutionLog on a real SQLite file: the plan, the operator's actions, the
queue's leases and the event history, plus LogFeed following it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from factory_tui.backends.feed import LogFeed
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import (
    DependencyCycle,
    IllegalTransition,
    InvalidInput,
    LeaseLost,
    LogError,
    UnknownTask,
)
from factory_tui.model import (
    OPERATOR_ACTIONS,
    TRANSITIONS,
    Action,
    NewTask,
    State,
)

T0 = 1_790_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(base, clock: Clock):
    with ExecutionLog.open(base.log_path, clock=clock) as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection of the test's own, to look behind the API."""
    return sqlite3.connect(path, isolation_level=None)


def table(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = raw(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def event_count(path: Path) -> int:
    return table(path, "SELECT count(*) FROM events")[0][0]


def states(log: ExecutionLog) -> dict[str, State]:
    return {task.id: task.state for task in log.list_tasks()}


def task_in(log: ExecutionLog, state: State, title: str = "a task") -> str:
    """A new task brought to ``state`` through the log's own operations.

    The queue must hold nothing else ready, so that the claim takes this task.
    """
    if state in (State.QUEUED, State.PROPOSED, State.HELD):
        return log.add_task(NewTask(title=title, state=state), actor="test").id
    task_id = log.add_task(NewTask(title=title, priority=99), actor="test").id
    if state is State.CANCELLED:
        log.apply(task_id, Action.CANCEL, actor="test")
        return task_id
    claim = log.claim_next("worker")
    assert claim is not None and claim.task.id == task_id
    if state is State.RUNNING:
        return task_id
    if state is State.CHECKING:
        log.finish(claim.token, State.CHECKING)
        return task_id
    log.finish(claim.token, State.FAILED if state is State.FAILED else State.REVIEW)
    if state is State.DONE:
        log.apply(task_id, Action.APPROVE, actor="test")
    assert log.get_task(task_id).state is state
    return task_id


# --- adding tasks --------------------------------------------------------------


def test_add_task_creates_it_with_an_event(log: ExecutionLog) -> None:
    task = log.add_task(
        NewTask(title="  Write the API  ", body="Some *markdown*", priority=3,
                profile="claude", source="cli"),
        actor="alice",
    )
    assert task.id == "T-1"
    assert (task.title, task.state, task.priority, task.attempts) == (
        "Write the API", State.QUEUED, 3, 0)
    assert (task.body, task.profile, task.source) == ("Some *markdown*", "claude", "cli")
    assert log.get_task("T-1") == task
    [event] = log.events()
    assert (event.task_id, event.kind, event.actor) == ("T-1", "created", "alice")
    assert (event.from_state, event.to_state) == (None, "queued")
    assert event.note == "Write the API"
    assert event.data == {"source": "cli"}
    second = log.add_task(NewTask(title="second", state=State.PROPOSED), actor="alice")
    assert (second.id, second.state) == ("T-2", State.PROPOSED)
    assert [t.id for t in log.list_tasks()] == ["T-1", "T-2"]


@pytest.mark.parametrize("state", [State.RUNNING, State.REVIEW, State.FAILED, State.DONE, State.CANCELLED])
def test_a_task_cannot_be_created_in_a_later_state(log: ExecutionLog, state: State) -> None:
    with pytest.raises(InvalidInput, match=state.value):
        log.add_task(NewTask(title="x", state=state), actor="test")
    assert log.list_tasks() == [] and log.events() == []


@pytest.mark.parametrize(
    "bad",
    [NewTask(title="   "), NewTask(title="x", priority=100), NewTask(title="x", after=("T-99",))],
    ids=["empty title", "bad priority", "unknown dependency"],
)
def test_add_tasks_is_all_or_nothing(log: ExecutionLog, bad: NewTask) -> None:
    log.add_task(NewTask(title="before"), actor="test")
    before = event_count(log.path)
    with pytest.raises((InvalidInput, UnknownTask)):
        log.add_tasks([NewTask(title="fine"), bad, NewTask(title="fine too")], actor="test")
    assert [t.title for t in log.list_tasks()] == ["before"]
    assert event_count(log.path) == before
    # The ids the failed batch would have used are still free.
    assert log.add_task(NewTask(title="after"), actor="test").id == "T-2"


def test_add_tasks_with_labels_forward_references_and_done(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="existing"), actor="test")  # T-1
    tasks = log.add_tasks(
        [
            NewTask(title="api", after=("schema",)),       # T-2, a forward reference
            NewTask(title="schema", after=("T-1",)),       # T-3
            NewTask(title="licence"),                      # T-4, done
        ],
        actor="import",
        handles=["api", "schema", None],
        done=[False, False, True],
    )
    assert [t.id for t in tasks] == ["T-2", "T-3", "T-4"]
    assert tasks[0].depends_on == ("T-3",)
    assert tasks[1].depends_on == ("T-1",)
    assert tasks[2].state is State.DONE
    assert log.get_task("T-2").blocked_by == ("T-3",)


def test_unknown_task(log: ExecutionLog) -> None:
    with pytest.raises(UnknownTask, match="no such task: T-5"):
        log.get_task("T-5")
    with pytest.raises(UnknownTask):
        log.apply("T-5", Action.CANCEL, actor="test")
    with pytest.raises(UnknownTask):
        log.set_priority("T-5", 2, actor="test")
    assert log.events() == []


# --- dependencies --------------------------------------------------------------


def test_add_dependency_records_it_once(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title="a"), NewTask(title="b")], actor="test")
    task = log.add_dependency("T-2", "T-1", actor="bob")
    assert task.depends_on == ("T-1",) and task.blocked_by == ("T-1",)
    [event] = log.events(kinds=["depends"])
    assert (event.task_id, event.actor, event.data) == ("T-2", "bob", {"on": "T-1"})
    assert "T-1" in event.note
    # Adding it again changes nothing and writes nothing.
    before = event_count(log.path)
    assert log.add_dependency("T-2", "T-1", actor="bob").depends_on == ("T-1",)
    assert event_count(log.path) == before
    assert [t.id for t in log.dependents("T-1")] == ["T-2"]


def test_a_dependency_cycle_is_refused_naming_the_cycle(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title=t) for t in "abcd"], actor="test")
    log.add_dependency("T-2", "T-1", actor="test")
    log.add_dependency("T-3", "T-2", actor="test")
    log.add_dependency("T-4", "T-1", actor="test")
    before = event_count(log.path)
    with pytest.raises(DependencyCycle) as caught:
        log.add_dependency("T-1", "T-3", actor="test")
    assert caught.value.cycle == ["T-1", "T-3", "T-2", "T-1"]
    assert str(caught.value) == "dependency cycle refused: T-1 → T-3 → T-2 → T-1"
    assert log.get_task("T-1").depends_on == ()
    assert event_count(log.path) == before
    # A diamond is not a cycle.
    log.add_dependency("T-3", "T-4", actor="test")
    assert set(log.get_task("T-3").depends_on) == {"T-2", "T-4"}
    with pytest.raises(DependencyCycle) as caught:
        log.add_dependency("T-1", "T-2", actor="test")
    assert caught.value.cycle == ["T-1", "T-2", "T-1"]


def test_cycle_check_on_a_dense_plan(log: ExecutionLog) -> None:
    """Each task depends on the two before it: the number of paths grows
    like Fibonacci, so a check that walks every path never finishes here
    (the first cut took seconds per task at 30 tasks, and doubled every two)."""
    count = 34
    for n in range(1, count + 1):
        after = tuple(f"T-{k}" for k in (n - 1, n - 2) if k >= 1)
        log.add_task(NewTask(title=f"step {n}", after=after), actor="test")
    assert log.get_task(f"T-{count}").depends_on == (f"T-{count - 1}", f"T-{count - 2}")
    # A dependency across the whole plan that closes no loop is accepted.
    log.add_dependency(f"T-{count}", "T-1", actor="test")
    before = event_count(log.path)
    with pytest.raises(DependencyCycle) as caught:
        log.add_dependency("T-1", f"T-{count}", actor="test")
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] == "T-1" and cycle[1] == f"T-{count}"
    # Every link named is a real dependency, so the message is true.
    edges = set(table(log.path, "SELECT 'T-' || task, 'T-' || depends_on FROM deps"))
    assert all((a, b) in edges for a, b in zip(cycle[1:-1], cycle[2:], strict=True))
    assert len(cycle) == len(set(cycle)) + 1
    assert event_count(log.path) == before


def test_a_task_cannot_depend_on_itself(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="test")
    with pytest.raises(DependencyCycle) as caught:
        log.add_dependency("T-1", "T-1", actor="test")
    assert caught.value.cycle == ["T-1", "T-1"]
    assert log.get_task("T-1").depends_on == ()
    assert event_count(log.path) == 1


def test_a_dependency_on_an_unknown_task_is_refused(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="test")
    with pytest.raises(UnknownTask):
        log.add_dependency("T-1", "T-9", actor="test")
    with pytest.raises(UnknownTask):
        log.add_dependency("T-9", "T-1", actor="test")
    assert event_count(log.path) == 1


# --- operator actions ----------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", sorted(OPERATOR_ACTIONS))
def test_apply_every_operator_action_from_every_state(
    log: ExecutionLog, state: State, action: Action
) -> None:
    task_id = task_in(log, state)
    other = log.add_task(NewTask(title="bystander"), actor="test").id
    before_states = states(log)
    before_events = log.events()
    target = TRANSITIONS.get((state, action))
    if target is None:
        with pytest.raises(IllegalTransition) as caught:
            log.apply(task_id, action, actor="olga", note="why not")
        assert caught.value.state == state.value
        assert caught.value.action == action.value
        assert task_id in str(caught.value)
        assert states(log) == before_states
        assert log.events() == before_events
        return
    task = log.apply(task_id, action, actor="olga", note="looks right")
    assert task.state is target
    assert log.get_task(task_id).state is target
    assert states(log) == {**before_states, task_id: target}
    assert log.get_task(other).state is State.QUEUED
    new_events = log.events(after_id=before_events[-1].id)
    assert len(new_events) == 1
    [event] = new_events
    assert event.task_id == task_id
    assert event.actor == "olga"
    assert (event.from_state, event.to_state) == (state.value, target.value)
    assert event.kind == {
        Action.APPROVE: "approved", Action.REQUEUE: "requeued", Action.CANCEL: "cancelled",
        Action.HOLD: "held", Action.RELEASE: "released",
    }[action]
    assert event.note == "looks right"


def test_requeue_stores_the_feedback(log: ExecutionLog) -> None:
    task_id = task_in(log, State.REVIEW)
    task = log.apply(task_id, Action.REQUEUE, actor="olga", note="Use the new API, not the old one")
    assert task.feedback == "Use the new API, not the old one"
    assert log.get_task(task_id).feedback == "Use the new API, not the old one"
    assert log.events()[-1].note == "Use the new API, not the old one"
    # The feedback reaches the next run's claim.
    claim = log.claim_next("worker")
    assert claim is not None and claim.task.feedback == "Use the new API, not the old one"
    assert claim.task.attempts == 2


def test_engine_actions_are_refused_to_the_operator(log: ExecutionLog) -> None:
    task_id = task_in(log, State.QUEUED)
    for action in (Action.CLAIM, Action.FINISH, Action.FAIL, Action.EXPIRE):
        with pytest.raises(InvalidInput, match="engine"):
            log.apply(task_id, action, actor="olga")
    assert log.get_task(task_id).state is State.QUEUED
    assert event_count(log.path) == 1


def test_a_transition_and_its_event_are_one_transaction(log: ExecutionLog) -> None:
    """If the event cannot be written, the state does not change either."""
    queued = task_in(log, State.QUEUED, "queued")
    log.add_task(NewTask(title="other", priority=-5), actor="test")
    conn = raw(log.path)
    conn.execute(
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events "
        "BEGIN SELECT RAISE(ABORT, 'no events today'); END"
    )
    conn.close()
    before_states = states(log)
    before = table(log.path, "SELECT * FROM tasks ORDER BY seq")
    with pytest.raises(LogError, match="no events today"):
        log.apply(queued, Action.HOLD, actor="test")
    with pytest.raises(LogError, match="no events today"):
        log.claim_next("worker")
    with pytest.raises(LogError, match="no events today"):
        log.set_priority(queued, 7, actor="test")
    with pytest.raises(LogError, match="no events today"):
        log.add_task(NewTask(title="new"), actor="test")
    assert states(log) == before_states
    assert table(log.path, "SELECT * FROM tasks ORDER BY seq") == before
    assert table(log.path, "SELECT count(*) FROM tasks WHERE lease_token IS NOT NULL") == [(0,)]
    assert event_count(log.path) == 2


def test_every_transition_writes_exactly_one_event(clocked: ExecutionLog, clock: Clock) -> None:
    log = clocked
    log.add_tasks([NewTask(title=f"t{i}", priority=i) for i in range(3)], actor="test")
    steps = [
        lambda: log.apply("T-3", Action.HOLD, actor="o"),
        lambda: log.apply("T-3", Action.RELEASE, actor="o"),
        lambda: log.claim_next("w"),
    ]
    for step in steps:
        before = event_count(log.path)
        step()
        assert event_count(log.path) == before + 1
    claim = log.claim_next("w")  # T-2
    assert claim is not None
    before = event_count(log.path)
    log.heartbeat(claim.token)
    assert event_count(log.path) == before  # a heartbeat is not a transition
    log.finish(claim.token, State.REVIEW)
    assert event_count(log.path) == before + 1
    clock.advance(1000)
    before = event_count(log.path)
    assert log.reap_expired() == ["T-3"]
    assert event_count(log.path) == before + 1
    # Every task's state is the to_state of its last transition event.
    for task in log.list_tasks():
        last = [e for e in log.events(task_id=task.id) if e.to_state is not None][-1]
        assert last.to_state == task.state.value


def test_set_priority_records_a_change_only(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a", priority=1), actor="test")
    assert log.set_priority("T-1", 5, actor="bob").priority == 5
    event = log.events()[-1]
    assert (event.kind, event.actor, event.data) == ("priority", "bob", {"from": 1, "to": 5})
    before = event_count(log.path)
    log.set_priority("T-1", 5, actor="bob")
    assert event_count(log.path) == before
    with pytest.raises(InvalidInput):
        log.set_priority("T-1", 100, actor="bob")
    assert log.get_task("T-1").priority == 5


def test_add_note(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="test")
    event = log.add_note("T-1", "remember the \x1b[31mmilk\x1b[0m", actor="agent")
    assert (event.task_id, event.kind, event.actor) == ("T-1", "note", "agent")
    assert event.note == "remember the \x1b[31mmilk\x1b[0m"
    assert log.events()[-1] == event
    base_note = log.add_note(None, "whole base", actor="agent")
    assert base_note.task_id is None
    with pytest.raises(InvalidInput):
        log.add_note("T-1", "   ", actor="agent")
    with pytest.raises(UnknownTask):
        log.add_note("T-9", "x", actor="agent")
    assert event_count(log.path) == 3


# --- the event history is append-only -----------------------------------------


def test_events_cannot_be_updated_or_deleted(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="test")
    log.apply("T-1", Action.HOLD, actor="test")
    before = table(log.path, "SELECT * FROM events ORDER BY id")
    conn = raw(log.path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET note = 'rewritten' WHERE id = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events WHERE id = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events")
    finally:
        conn.close()
    assert table(log.path, "SELECT * FROM events ORDER BY id") == before


# --- the queue ---------------------------------------------------------------


def test_claim_next_takes_priority_then_id(clocked: ExecutionLog, clock: Clock) -> None:
    log = clocked
    log.add_tasks(
        [
            NewTask(title="low", priority=-1),       # T-1
            NewTask(title="mid a", priority=2),      # T-2
            NewTask(title="high", priority=5),       # T-3
            NewTask(title="mid b", priority=2),      # T-4
            NewTask(title="held", priority=9, state=State.HELD),          # T-5
            NewTask(title="proposed", priority=9, state=State.PROPOSED),  # T-6
            NewTask(title="zero"),                   # T-7
        ],
        actor="test",
    )
    order = []
    while (claim := log.claim_next("w", lease_seconds=60)) is not None:
        order.append(claim.task.id)
        assert claim.worker == "w"
        assert claim.expires_at == clock.now + 60
        assert claim.task.state is State.RUNNING
        assert claim.task.attempts == 1
    assert order == ["T-3", "T-2", "T-4", "T-7", "T-1"]
    assert log.get_task("T-5").state is State.HELD
    assert log.get_task("T-6").state is State.PROPOSED
    claimed = log.events(kinds=["claimed"])
    assert [e.task_id for e in claimed] == order
    assert all((e.from_state, e.to_state, e.actor) == ("queued", "running", "w") for e in claimed)
    leases = log.live_leases()
    assert sorted(lease[1] for lease in leases) == sorted(order)
    assert {e.data["lease"] for e in claimed} == {lease[0] for lease in leases}


def test_claim_next_skips_tasks_with_undone_dependencies(log: ExecutionLog) -> None:
    log.add_tasks(
        [
            NewTask(title="base"),                            # T-1
            NewTask(title="needs base", priority=9, after=("base",)),   # T-2
            NewTask(title="needs both", priority=8, after=("base", "next")),  # T-3
        ],
        actor="test",
        handles=["base", "next", None],
    )
    first = log.claim_next("w")
    assert first is not None and first.task.id == "T-1"
    assert log.claim_next("w") is None  # T-2 waits for T-1 to be done
    log.finish(first.token, State.REVIEW)
    assert log.claim_next("w") is None  # review is not done
    log.apply("T-1", Action.APPROVE, actor="o")
    second = log.claim_next("w")
    assert second is not None and second.task.id == "T-2"
    assert log.claim_next("w") is None
    log.finish(second.token, State.REVIEW)
    log.apply("T-2", Action.APPROVE, actor="o")
    third = log.claim_next("w")
    assert third is not None and third.task.id == "T-3"


def test_claim_next_on_an_empty_queue(log: ExecutionLog) -> None:
    assert log.claim_next("w") is None
    log.add_task(NewTask(title="held", state=State.HELD), actor="test")
    assert log.claim_next("w") is None
    assert event_count(log.path) == 1
    assert log.live_leases() == []


def test_heartbeat_renews_the_lease(clocked: ExecutionLog, clock: Clock) -> None:
    log = clocked
    log.add_task(NewTask(title="a"), actor="test")
    claim = log.claim_next("w", lease_seconds=10)
    assert claim is not None and claim.expires_at == T0 + 10
    for _ in range(6):
        clock.advance(8)
        assert log.heartbeat(claim.token, lease_seconds=10) == clock.now + 10
        assert log.live_leases() == [(claim.token, "T-1", "w", clock.now + 10)]
        assert log.reap_expired() == []
    # Far beyond the first expiry, the task is still running under its lease.
    assert clock.now > claim.expires_at + 30
    assert log.get_task("T-1").state is State.RUNNING
    clock.advance(11)
    assert log.reap_expired() == ["T-1"]
    with pytest.raises(LeaseLost, match="expired"):
        log.heartbeat(claim.token)


@pytest.mark.parametrize("outcome", [State.REVIEW, State.FAILED])
def test_finish(clocked: ExecutionLog, clock: Clock, outcome: State) -> None:
    log = clocked
    log.add_task(NewTask(title="a"), actor="test")
    claim = log.claim_next("w")
    assert claim is not None
    clock.advance(5)
    task = log.finish(claim.token, outcome, note="all tests pass", data={"cost": 0.5})
    assert task.state is outcome
    assert log.get_task("T-1").state is outcome
    event = log.events()[-1]
    assert event.kind == ("finished" if outcome is State.REVIEW else "failed")
    assert (event.from_state, event.to_state, event.actor) == ("running", outcome.value, "w")
    assert event.note == "all tests pass"
    assert event.data == {"lease": claim.token, "cost": 0.5}
    assert log.live_leases() == []
    # The lease on the task's row is spent: no token, the worker remembered.
    assert table(log.path, "SELECT lease_token, lease_worker FROM tasks") == [(None, "w")]
    # The lease is spent: a second finish or a heartbeat changes nothing.
    before = event_count(log.path)
    with pytest.raises(LeaseLost):
        log.finish(claim.token, State.REVIEW)
    with pytest.raises(LeaseLost):
        log.heartbeat(claim.token)
    assert event_count(log.path) == before
    assert log.get_task("T-1").state is outcome


def commits_in_wal(path: Path) -> int:
    """Commits in the log's WAL file: frames whose header gives the size of
    the database after a commit (bytes 4-8 of a frame's 24-byte header)."""
    wal = Path(f"{path}-wal").read_bytes()
    page_size = int.from_bytes(wal[8:12], "big")
    frames = range(32, len(wal) - 24 - page_size + 1, 24 + page_size)
    return sum(1 for at in frames if int.from_bytes(wal[at + 4:at + 8], "big"))


def test_finish_and_claim_next_is_one_commit_with_both_events(clocked: ExecutionLog, clock: Clock) -> None:
    log = clocked
    log.add_tasks([NewTask(title="a", priority=1), NewTask(title="b")], actor="test")
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == "T-1"
    log._conn.execute("PRAGMA wal_autocheckpoint=0")  # every commit stays in the WAL
    commits = commits_in_wal(log.path)
    clock.advance(5)
    task, nxt = log.finish_and_claim_next(claim.token, State.REVIEW, "w", note="done", data={"cost": 0.5})
    assert commits_in_wal(log.path) == commits + 1
    assert task.id == "T-1" and task.state is State.REVIEW
    assert nxt is not None and nxt.task.id == "T-2" and nxt.task.state is State.RUNNING
    assert nxt.worker == "w" and nxt.expires_at == clock.now + 30 and nxt.token.startswith("T-2:")
    finished, claimed = log.events()[-2:]
    assert (finished.task_id, finished.kind, finished.actor, finished.to_state) == ("T-1", "finished", "w", "review")
    assert finished.note == "done" and finished.data == {"lease": claim.token, "cost": 0.5}
    assert (claimed.task_id, claimed.kind, claimed.actor, claimed.to_state) == ("T-2", "claimed", "w", "running")
    assert claimed.note == "attempt 1" and claimed.data == {"lease": nxt.token}
    assert [lease[0] for lease in log.live_leases()] == [nxt.token]
    # Nothing more to claim: the finish stands alone.
    task, none = log.finish_and_claim_next(nxt.token, State.FAILED, "w")
    assert task.state is State.FAILED and none is None
    assert log.live_leases() == []


def test_finish_and_claim_next_with_a_lost_lease_claims_nothing(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title="a"), NewTask(title="b")], actor="test")
    claim = log.claim_next("w")
    assert claim is not None
    log.apply("T-1", Action.CANCEL, actor="olga")
    before = event_count(log.path)
    with pytest.raises(LeaseLost, match="cancelled"):
        log.finish_and_claim_next(claim.token, State.REVIEW, "w")
    assert event_count(log.path) == before
    assert log.get_task("T-2").state is State.QUEUED
    with pytest.raises(InvalidInput):
        log.finish_and_claim_next(claim.token, State.DONE, "w")
    assert log.get_task("T-2").state is State.QUEUED


def test_finish_and_claim_next_is_both_or_neither(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title="a"), NewTask(title="b")], actor="test")
    claim = log.claim_next("w")
    assert claim is not None
    # Another tool's trigger makes the claim's half fail: the finish goes too.
    conn = raw(log.path)
    conn.execute("CREATE TRIGGER no_second_claim BEFORE INSERT ON events WHEN NEW.kind = 'claimed' "
                 "BEGIN SELECT RAISE(ABORT, 'no claims today'); END")
    conn.close()
    before = event_count(log.path)
    with pytest.raises(LogError, match="no claims today"):
        log.finish_and_claim_next(claim.token, State.REVIEW, "w")
    assert event_count(log.path) == before
    assert log.get_task("T-1").state is State.RUNNING
    assert log.get_task("T-2").state is State.QUEUED
    assert [lease[0] for lease in log.live_leases()] == [claim.token]
    log.finish(claim.token, State.REVIEW)  # the lease is still live


@pytest.mark.parametrize("outcome", [State.DONE, State.QUEUED, State.RUNNING, State.CANCELLED])
def test_finish_only_to_review_checking_or_failed(log: ExecutionLog, outcome: State) -> None:
    log.add_task(NewTask(title="a"), actor="test")
    claim = log.claim_next("w")
    assert claim is not None
    with pytest.raises(InvalidInput, match="review, checking or failed"):
        log.finish(claim.token, outcome)
    assert log.get_task("T-1").state is State.RUNNING
    assert len(log.live_leases()) == 1


def test_an_unknown_token_is_lease_lost(log: ExecutionLog) -> None:
    with pytest.raises(LeaseLost, match="no lease"):
        log.heartbeat("0123456789abcdef")
    with pytest.raises(LeaseLost):
        log.finish("0123456789abcdef", State.REVIEW)


def test_cancel_of_a_running_task_takes_the_lease_from_the_worker(base) -> None:
    with ExecutionLog.open(base.log_path) as operator, ExecutionLog.open(base.log_path) as worker:
        operator.add_task(NewTask(title="a"), actor="test")
        claim = worker.claim_next("engine-1")
        assert claim is not None
        task = operator.apply("T-1", Action.CANCEL, actor="olga", note="wrong idea")
        assert task.state is State.CANCELLED
        cancelled = operator.events()[-1]
        assert cancelled.data == {"lease": claim.token, "worker": "engine-1"}
        assert operator.live_leases() == []
        before = event_count(base.log_path)
        with pytest.raises(LeaseLost, match="cancelled"):
            worker.heartbeat(claim.token)
        with pytest.raises(LeaseLost, match="cancelled"):
            worker.finish(claim.token, State.REVIEW)
        assert operator.get_task("T-1").state is State.CANCELLED
        assert event_count(base.log_path) == before
        # Re-queued, it is claimed afresh under a new lease; the old token stays dead.
        operator.apply("T-1", Action.REQUEUE, actor="olga")
        again = worker.claim_next("engine-2")
        assert again is not None and again.token != claim.token
        with pytest.raises(LeaseLost):
            worker.heartbeat(claim.token)
        worker.heartbeat(again.token)


def test_reap_expired_returns_the_task_to_the_queue(clocked: ExecutionLog, clock: Clock) -> None:
    log = clocked
    log.add_tasks([NewTask(title="a", priority=1), NewTask(title="b")], actor="test")
    first = log.claim_next("w1", lease_seconds=30)
    clock.advance(20)
    second = log.claim_next("w2", lease_seconds=30)
    assert first is not None and second is not None
    clock.advance(10)  # first expires exactly now: not yet past it
    assert log.reap_expired() == []
    clock.advance(1)
    before = event_count(log.path)
    assert log.reap_expired(actor="engine") == ["T-1"]
    assert event_count(log.path) == before + 1
    event = log.events()[-1]
    assert (event.task_id, event.kind, event.actor) == ("T-1", "expired", "engine")
    assert (event.from_state, event.to_state) == ("running", "queued")
    assert event.data == {"lease": first.token, "worker": "w1"}
    assert "w1" in event.note
    assert log.get_task("T-1").state is State.QUEUED
    assert log.get_task("T-2").state is State.RUNNING
    assert [lease[0] for lease in log.live_leases()] == [second.token]
    assert log.reap_expired() == []
    # The expired worker learns it lost the task; the task runs again.
    with pytest.raises(LeaseLost, match="expired"):
        log.heartbeat(first.token)
    with pytest.raises(LeaseLost):
        log.finish(first.token, State.REVIEW)
    again = log.claim_next("w3")
    assert again is not None and again.task.id == "T-1" and again.task.attempts == 2


# --- the feed ----------------------------------------------------------------


def test_feed_follows_another_connection(base) -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}") for n in range(5)], actor="seed")
        feed = LogFeed(base.log_path)
        try:
            snapshot = feed.snapshot()
            assert [t.id for t in snapshot.tasks] == [f"T-{n}" for n in range(1, 6)]
            assert list(snapshot.event_ids) == [e.id for e in log.events()]
            assert [e.id for e in snapshot.recent_events] == list(snapshot.event_ids)
            assert feed.cursor == snapshot.event_ids[-1]
            assert not feed.poll()

            log.apply("T-2", Action.HOLD, actor="olga")
            log.set_priority("T-4", 3, actor="olga")
            changes = feed.poll()
            assert [(e.task_id, e.kind) for e in changes.events] == [
                ("T-2", "held"), ("T-4", "priority")]
            assert sorted(t.id for t in changes.tasks) == ["T-2", "T-4"]
            by_id = {t.id: t for t in changes.tasks}
            assert by_id["T-2"].state is State.HELD
            assert by_id["T-4"].priority == 3
            assert not feed.poll()

            # Another process's view: a fresh connection writing.
            with ExecutionLog.open(base.log_path) as other:
                other.add_note(None, "base-wide", actor="agent")
                other.add_dependency("T-5", "T-1", actor="agent")
            changes = feed.poll()
            assert [e.kind for e in changes.events] == ["note", "depends"]
            assert [t.id for t in changes.tasks] == ["T-5"]
            assert changes.tasks[0].blocked_by == ("T-1",)
            assert not feed.poll()
        finally:
            feed.close()


def test_feed_snapshot_keeps_the_newest_events(base) -> None:
    from factory_tui.backends.feed import SNAPSHOT_RECENT_EVENTS

    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"t{n}") for n in range(SNAPSHOT_RECENT_EVENTS + 50)], actor="seed")
        feed = LogFeed(base.log_path)
        try:
            snapshot = feed.snapshot()
            assert len(snapshot.event_ids) == SNAPSHOT_RECENT_EVENTS + 50
            assert len(snapshot.recent_events) == SNAPSHOT_RECENT_EVENTS
            assert snapshot.recent_events[-1].id == snapshot.event_ids[-1]
            log.apply("T-1", Action.HOLD, actor="o")
            changes = feed.poll()
            assert [e.task_id for e in changes.events] == ["T-1"]
            assert [t.id for t in changes.tasks] == ["T-1"]
        finally:
            feed.close()


def test_events_queries(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title="a"), NewTask(title="b")], actor="seed")
    log.apply("T-1", Action.HOLD, actor="o")
    log.apply("T-2", Action.HOLD, actor="o")
    log.apply("T-1", Action.RELEASE, actor="o")
    every = log.events()
    assert [e.id for e in every] == sorted(e.id for e in every)
    assert [e.kind for e in log.events(task_id="T-1")] == ["created", "held", "released"]
    assert [(e.task_id, e.kind) for e in log.events(kinds=["held", "released"])] == [
        ("T-1", "held"), ("T-2", "held"), ("T-1", "released")]
    assert log.events(after_id=every[2].id) == every[3:]
    assert log.events(last=2) == every[-2:]
    assert log.events(task_id="T-2", last=1) == [every[3]]
    assert log.last_event_id() == every[-1].id
    assert log.counts() == {**{s: 0 for s in State}, State.QUEUED: 1, State.HELD: 1}


def test_feed_catches_up_on_a_burst_in_pages(base) -> None:
    from factory_tui.backends.feed import MAX_EVENTS_PER_POLL

    with ExecutionLog.open(base.log_path) as log:
        feed = LogFeed(base.log_path)
        try:
            feed.snapshot()
            log.add_tasks([NewTask(title=f"t{n}") for n in range(MAX_EVENTS_PER_POLL + 10)], actor="x")
            first = feed.poll()
            assert len(first.events) == MAX_EVENTS_PER_POLL
            # No new commit, but the rest is still owed.
            second = feed.poll()
            assert len(second.events) == 10
            assert second.events[-1].id == log.last_event_id()
            assert {t.id for t in second.tasks} == {e.task_id for e in second.events}
            assert not feed.poll()
        finally:
            feed.close()


def test_a_branch_start_is_recorded_and_read_with_the_task(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="branch"), actor="t")
    assert log.get_task("T-1").branch_start is None
    claim = log.claim_next("w")
    assert claim is not None and claim.task.branch_start is None
    sha = "0123456789abcdef0123456789ABCDEF01234567"
    log.record_branch_start("T-1", sha)
    # Every way a task is read carries it, and it is not an event.
    assert log.get_task("T-1").branch_start == sha.lower()
    assert log.list_tasks()[0].branch_start == sha.lower()
    assert log.get_tasks(["T-1"])[0].branch_start == sha.lower()
    assert log.get_task("T-1").to_json()["branch_start"] == sha.lower()
    assert [e.kind for e in log.events(task_id="T-1")] == ["created", "claimed"]
    log.finish(claim.token, State.REVIEW)
    log.apply("T-1", Action.REQUEUE, actor="t")
    again = log.claim_next("w")
    assert again is not None and again.task.branch_start == sha.lower()
    with pytest.raises(UnknownTask):
        log.record_branch_start("T-9", sha)
    for bad in ("", "abc", "g" * 40, sha + "0"):
        with pytest.raises(InvalidInput, match="not a commit id"):
            log.record_branch_start("T-1", bad)
