"""Random sequences of plan, operator and engine operations against a real
ExecutionLog, checked step by step against a pure model of what must hold."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import DependencyCycle, IllegalTransition, InvalidInput, LeaseLost
from factory_tui.model import (
    CREATABLE_STATES,
    OPERATOR_ACTIONS,
    TRANSITIONS,
    Action,
    NewTask,
    State,
)

T0 = 1_790_000_000.0
STATE_VALUES = {state.value for state in State}
NOTES = [None, "", "try again", "Use the ✨ new API"]

# How the seed brings a task to each state through the log's own operations.
ROUTES: dict[State, tuple[str, ...]] = {
    State.QUEUED: (),
    State.PROPOSED: (),
    State.HELD: (),
    State.RUNNING: ("claim",),
    State.CHECKING: ("claim", "checking"),
    State.REVIEW: ("claim", "review"),
    State.FAILED: ("claim", "failed"),
    State.DONE: ("claim", "review", "approve"),
    State.CANCELLED: ("cancel",),
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Lease:
    task_id: str
    expires_at: float
    live: bool = True


class ExecutionLogMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="factory-sm-"))
        self.path = self.dir / "log.db"
        self.clock = Clock()
        self.log = ExecutionLog.open(self.path, create=True, clock=self.clock)
        self.raw = sqlite3.connect(self.path, isolation_level=None)
        # The model.
        self.state: dict[str, State] = {}
        self.priority: dict[str, int] = {}
        self.deps: dict[str, set[str]] = {}
        self.feedback: dict[str, str | None] = {}
        self.leases: dict[str, Lease] = {}
        self.expected_events = 0

    def teardown(self) -> None:
        self.raw.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers -------------------------------------------------------------

    def snapshot(self) -> tuple:
        """Everything in the file, to prove a refused operation changed nothing."""
        return tuple(
            tuple(self.raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall())
            for table in ("tasks", "task_bodies", "deps", "events")
        )

    def refused(self, errors: type[Exception] | tuple, operation) -> Exception:
        before = self.snapshot()
        try:
            operation()
        except errors as error:
            assert self.snapshot() == before, "a refused operation changed the log"
            return error
        raise AssertionError(f"expected {errors} to be raised")

    def reaches(self, start: str, goal: str) -> bool:
        """Does ``start`` depend, directly or not, on ``goal``?"""
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(self.deps[here])
        return False

    def live_tokens(self) -> list[str]:
        # In claim order: tokens are random, so sorting them would make a
        # replayed run pick a different lease.
        return [token for token, lease in self.leases.items() if lease.live]

    # --- operations, each checked against the model --------------------------

    def do_add(self, state: State, priority: int) -> str:
        task = self.log.add_task(NewTask(title="a task", state=state, priority=priority), actor="sm")
        assert task.id == f"T-{len(self.state) + 1}"
        assert (task.state, task.priority) == (state, priority)
        self.state[task.id] = state
        self.priority[task.id] = priority
        self.deps[task.id] = set()
        self.feedback[task.id] = None
        self.expected_events += 1
        return task.id

    def do_apply(self, task: str, action: Action, note: str | None) -> None:
        current = self.state[task]
        target = TRANSITIONS.get((current, action))
        if target is None:
            error = self.refused(
                IllegalTransition, lambda: self.log.apply(task, action, actor="op", note=note))
            assert (error.task_id, error.state, error.action) == (task, current.value, action.value)
            return
        result = self.log.apply(task, action, actor="op", note=note)
        assert result.state is target
        if current in (State.RUNNING, State.CHECKING):
            for lease in self.leases.values():
                if lease.task_id == task:
                    lease.live = False
        if action is Action.REQUEUE:
            self.feedback[task] = note or None
        assert result.feedback == self.feedback[task]
        self.state[task] = target
        self.expected_events += 1

    def do_claim(self, lease_seconds: float) -> str | None:
        ready = sorted(self.ready(), key=lambda t: int(t[2:]))
        if not ready:
            before = self.snapshot()
            assert self.log.claim_next("engine", lease_seconds=lease_seconds) is None
            assert self.snapshot() == before
            return None
        expected = min(ready, key=lambda t: (-self.priority[t], int(t[2:])))
        claim = self.log.claim_next("engine", lease_seconds=lease_seconds)
        assert claim is not None
        assert claim.task.id == expected
        assert claim.task.state is State.RUNNING
        assert claim.expires_at == self.clock.now + lease_seconds
        assert claim.token not in self.leases
        self.state[expected] = State.RUNNING
        self.leases[claim.token] = Lease(expected, claim.expires_at)
        self.expected_events += 1
        return claim.token

    def do_finish(self, token: str, outcome: State) -> None:
        lease = self.leases[token]
        if not lease.live:
            self.refused(LeaseLost, lambda: self.log.finish(token, outcome))
            return
        if self.state[lease.task_id] is State.CHECKING:
            # A run finishes once; its check is ended by conclude_check.
            self.refused(LeaseLost, lambda: self.log.finish(token, outcome))
            return
        assert self.state[lease.task_id] is State.RUNNING
        task = self.log.finish(token, outcome)
        assert (task.id, task.state) == (lease.task_id, outcome)
        # To checking, the run's lease goes on: it is the check's.
        lease.live = outcome is State.CHECKING
        self.state[lease.task_id] = outcome
        self.expected_events += 1

    def do_conclude(self, token: str, action: Action, note: str | None) -> None:
        lease = self.leases[token]
        if not lease.live or self.state[lease.task_id] is not State.CHECKING:
            self.refused(LeaseLost, lambda: self.log.conclude_check(token, action, note=note, commit="c" * 40))
            return
        task = self.log.conclude_check(token, action, note=note, commit="c" * 40)
        target = TRANSITIONS[(State.CHECKING, action)]
        assert (task.id, task.state) == (lease.task_id, target)
        lease.live = False
        if action is Action.REJECT:
            self.feedback[task.id] = note or None
        self.state[task.id] = target
        self.expected_events += 1

    def do_claim_check(self, lease_seconds: float) -> None:
        leased = {lease.task_id for lease in self.leases.values() if lease.live}
        waiting = [t for t, state in self.state.items() if state is State.CHECKING and t not in leased]
        if not waiting:
            before = self.snapshot()
            assert self.log.claim_check("engine", lease_seconds=lease_seconds) is None
            assert self.snapshot() == before
            return
        expected = min(waiting, key=lambda t: (-self.priority[t], int(t[2:])))
        claim = self.log.claim_check("engine", lease_seconds=lease_seconds)
        assert claim is not None and claim.task.id == expected and claim.task.state is State.CHECKING
        self.leases[claim.token] = Lease(expected, claim.expires_at)
        self.expected_events += 1

    # --- the plan -----------------------------------------------------------

    @initialize(
        target=tasks,
        specs=st.lists(
            st.tuples(st.sampled_from(list(State)), st.integers(-2, 2)), min_size=1, max_size=6
        ),
    )
    def seed(self, specs: list[tuple[State, int]]):
        """Start every run with tasks in any of the eight states, reached
        through the log's own operations, so that steps are not spent
        getting somewhere."""
        # Tasks that pass through running first: each claim must take the one
        # just added, so no other task may be waiting in the queue yet.
        specs = sorted(specs, key=lambda spec: "claim" not in ROUTES[spec[0]])
        created = []
        for state, priority in specs:
            task = self.do_add(state if state in CREATABLE_STATES else State.QUEUED, priority)
            token = None
            for step in ROUTES[state]:
                if step == "claim":
                    token = self.do_claim(30.0)
                    assert token is not None and self.leases[token].task_id == task
                elif step in ("review", "failed", "checking"):
                    assert token is not None
                    self.do_finish(token, State(step))
                elif step == "approve":
                    self.do_apply(task, Action.APPROVE, None)
                elif step == "cancel":
                    self.do_apply(task, Action.CANCEL, "not now")
            assert self.state[task] is state
            created.append(task)
        return multiple(*created)

    @rule(
        target=tasks,
        state=st.sampled_from(CREATABLE_STATES),
        priority=st.integers(-2, 2),
    )
    def add(self, state: State, priority: int) -> str:
        return self.do_add(state, priority)

    @rule(task=tasks, priority=st.integers(-2, 2))
    def set_priority(self, task: str, priority: int) -> None:
        result = self.log.set_priority(task, priority, actor="sm")
        assert result.priority == priority
        if self.priority[task] != priority:
            self.expected_events += 1
        self.priority[task] = priority

    @rule(task=tasks, on=tasks)
    def add_dependency(self, task: str, on: str) -> None:
        if task == on or self.reaches(on, task):
            error = self.refused(
                DependencyCycle, lambda: self.log.add_dependency(task, on, actor="sm"))
            cycle = error.cycle
            assert cycle[0] == cycle[-1] == task and cycle[1] == on
            return
        result = self.log.add_dependency(task, on, actor="sm")
        assert on in result.depends_on
        if on not in self.deps[task]:
            self.expected_events += 1
        self.deps[task].add(on)

    @rule(task=tasks, on=tasks)
    def remove_dependency(self, task: str, on: str) -> None:
        if on not in self.deps[task]:
            self.refused(InvalidInput, lambda: self.log.remove_dependency(task, on, actor="sm"))
            return
        result = self.log.remove_dependency(task, on, actor="sm")
        assert on not in result.depends_on
        self.deps[task].discard(on)
        self.expected_events += 1

    # --- the operator -------------------------------------------------------

    def waiting_on_review(self) -> list[str]:
        return sorted(
            {d for deps in self.deps.values() for d in deps if self.state[d] is State.REVIEW},
            key=lambda t: int(t[2:]),
        )

    @precondition(lambda self: self.waiting_on_review())
    @rule(data=st.data())
    def a_dependency_lands(self, data: st.DataObject) -> None:
        """A task others wait for is approved: done, it unblocks them (the
        apply rule reaches this too, but seldom)."""
        self.do_apply(data.draw(st.sampled_from(self.waiting_on_review()), "dependency"), Action.APPROVE, None)

    @rule(task=tasks, data=st.data(), note=st.sampled_from(NOTES))
    def apply(self, task: str, data: st.DataObject, note: str | None) -> None:
        # Half the time an action the state allows, so that runs get far.
        legal = sorted(
            a for (s, a) in TRANSITIONS if s is self.state[task] and a in OPERATOR_ACTIONS)
        every = st.sampled_from(sorted(OPERATOR_ACTIONS))
        action = data.draw(st.one_of(st.sampled_from(legal), every) if legal else every, "action")
        self.do_apply(task, action, note)

    # --- the engine ---------------------------------------------------------

    @rule(lease_seconds=st.sampled_from([5.0, 10.0, 30.0]))
    def claim(self, lease_seconds: float) -> None:
        self.do_claim(lease_seconds)

    def pick_token(self, data: st.DataObject) -> str:
        """A live lease's token most of the time, any token ever handed out
        otherwise (a worker holding on to a dead one)."""
        live = self.live_tokens()
        every = st.sampled_from(list(self.leases))
        return data.draw(st.one_of(st.sampled_from(live), every) if live else every, "token")

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), lease_seconds=st.sampled_from([5.0, 30.0]))
    def heartbeat(self, data: st.DataObject, lease_seconds: float) -> None:
        token = self.pick_token(data)
        lease = self.leases[token]
        if not lease.live:
            error = self.refused(
                LeaseLost, lambda: self.log.heartbeat(token, lease_seconds=lease_seconds))
            assert lease.task_id in str(error)
            return
        expires = self.log.heartbeat(token, lease_seconds=lease_seconds)
        assert expires == self.clock.now + lease_seconds
        lease.expires_at = expires

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), outcome=st.sampled_from([State.REVIEW, State.FAILED, State.CHECKING]))
    def finish(self, data: st.DataObject, outcome: State) -> None:
        self.do_finish(self.pick_token(data), outcome)

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), action=st.sampled_from([Action.PASS, Action.REJECT, Action.FAIL]),
          note=st.sampled_from(NOTES))
    def conclude_check(self, data: st.DataObject, action: Action, note: str | None) -> None:
        self.do_conclude(self.pick_token(data), action, note)

    @rule(lease_seconds=st.sampled_from([5.0, 30.0]))
    def claim_check(self, lease_seconds: float) -> None:
        self.do_claim_check(lease_seconds)

    @rule(seconds=st.sampled_from([0.0, 4.0, 11.0, 31.0]))
    def time_passes_and_the_reaper_runs(self, seconds: float) -> None:
        self.clock.now += seconds
        expected = []
        for lease in self.leases.values():
            if lease.live and lease.expires_at < self.clock.now:
                lease.live = False
                if self.state[lease.task_id] is State.RUNNING:
                    self.state[lease.task_id] = State.QUEUED
                    expected.append(lease.task_id)
                elif self.state[lease.task_id] is State.CHECKING:
                    expected.append(lease.task_id)  # stays checking, for the next engine
        reaped = self.log.reap_expired()
        assert sorted(reaped) == sorted(expected)
        self.expected_events += len(expected)

    # --- what must always hold ----------------------------------------------

    @invariant()
    def states_match_the_model_and_the_history(self) -> None:
        rows = self.raw.execute("SELECT 'T-' || seq, state, priority, feedback FROM tasks").fetchall()
        assert {row[0]: row[1] for row in rows} == {t: s.value for t, s in self.state.items()}
        assert {row[1] for row in rows} <= STATE_VALUES
        assert {row[0]: row[2] for row in rows} == self.priority
        assert {row[0]: row[3] for row in rows} == self.feedback
        # A task's state is the to_state of its last transition event.
        last_to = dict(self.raw.execute(
            "SELECT task_id, to_state FROM events WHERE id IN ("
            " SELECT max(id) FROM events WHERE to_state IS NOT NULL GROUP BY task_id)"
        ).fetchall())
        assert last_to == {row[0]: row[1] for row in rows}

    @invariant()
    def nothing_is_lost(self) -> None:
        count = self.raw.execute("SELECT count(*) FROM events").fetchone()[0]
        assert count == self.expected_events

    @invariant()
    def running_means_exactly_one_live_lease(self) -> None:
        # A lease is live while its token is on the task's row.
        live = self.raw.execute(
            "SELECT 'T-' || seq, state FROM tasks WHERE lease_token IS NOT NULL"
        ).fetchall()
        running = {t for t, s in self.state.items() if s is State.RUNNING}
        checked = {lease.task_id for lease in self.leases.values() if lease.live
                   and self.state[lease.task_id] is State.CHECKING}
        assert {task for task, _ in live} == running | checked
        assert all(state in ("running", "checking") for _, state in live)
        tokens = {row[0] for row in self.raw.execute(
            "SELECT lease_token FROM tasks WHERE lease_token IS NOT NULL")}
        assert tokens == set(self.live_tokens())

    def ready(self) -> set[str]:
        return {
            task for task, state in self.state.items()
            if state is State.QUEUED and all(self.state[d] is State.DONE for d in self.deps[task])
        }

    @invariant()
    def readiness_kept_equals_readiness_computed_from_scratch(self) -> None:
        # Each task's count of blockers, as the log keeps it on every change,
        # is the number of its dependencies that are not done now.
        kept = dict(self.raw.execute("SELECT 'T-' || seq, blockers FROM tasks"))
        assert kept == {
            task: sum(self.state[d] is not State.DONE for d in deps)
            for task, deps in self.deps.items()
        }
        # The claim's index holds exactly the ready tasks.
        indexed = {row[0] for row in self.raw.execute(
            "SELECT 'T-' || seq FROM tasks INDEXED BY idx_tasks_ready "
            "WHERE state = 'queued' AND blockers = 0"
        )}
        assert indexed == self.ready()
        assert self.log.has_ready() == bool(indexed)

    @invariant()
    def dependencies_match_the_model(self) -> None:
        rows = self.raw.execute("SELECT 'T-' || task, 'T-' || depends_on FROM deps").fetchall()
        assert set(rows) == {(t, d) for t, ds in self.deps.items() for d in ds}


ExecutionLogMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestExecutionLog = ExecutionLogMachine.TestCase
