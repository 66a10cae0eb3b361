"""The plan's vocabulary: task states, the actions that move a task between
them, and the records the execution log hands out.

Pure: no SQLite, no git, no Textual. ``ExecutionLog`` asks ``next_state``
before every transition, so the table below is the single place that says
which moves are legal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from factory_tui.errors import IllegalTransition, InvalidInput


class State(StrEnum):
    PROPOSED = "proposed"
    QUEUED = "queued"
    HELD = "held"
    RUNNING = "running"
    REVIEW = "review"
    FAILED = "failed"
    DONE = "done"
    CANCELLED = "cancelled"


class Action(StrEnum):
    # Operator actions: the console's keys and `factory task …`.
    APPROVE = "approve"
    REQUEUE = "requeue"
    CANCEL = "cancel"
    HOLD = "hold"
    RELEASE = "release"
    # Engine actions: only the queue operations of ExecutionLog take these.
    CLAIM = "claim"
    FINISH = "finish"
    FAIL = "fail"
    EXPIRE = "expire"
    STOP = "stop"


OPERATOR_ACTIONS = frozenset(
    {Action.APPROVE, Action.REQUEUE, Action.CANCEL, Action.HOLD, Action.RELEASE}
)

TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.PROPOSED, Action.APPROVE): State.QUEUED,
    (State.PROPOSED, Action.CANCEL): State.CANCELLED,
    (State.QUEUED, Action.HOLD): State.HELD,
    (State.QUEUED, Action.CANCEL): State.CANCELLED,
    (State.QUEUED, Action.CLAIM): State.RUNNING,
    (State.HELD, Action.RELEASE): State.QUEUED,
    (State.HELD, Action.CANCEL): State.CANCELLED,
    (State.RUNNING, Action.CANCEL): State.CANCELLED,
    (State.RUNNING, Action.FINISH): State.REVIEW,
    (State.RUNNING, Action.FAIL): State.FAILED,
    (State.RUNNING, Action.EXPIRE): State.QUEUED,
    # The engine shut down and stopped the agent: the work is committed and
    # the task waits for the next engine.
    (State.RUNNING, Action.STOP): State.QUEUED,
    (State.REVIEW, Action.APPROVE): State.DONE,
    (State.REVIEW, Action.REQUEUE): State.QUEUED,
    (State.REVIEW, Action.CANCEL): State.CANCELLED,
    (State.REVIEW, Action.FAIL): State.FAILED,
    (State.FAILED, Action.REQUEUE): State.QUEUED,
    (State.FAILED, Action.CANCEL): State.CANCELLED,
    (State.CANCELLED, Action.REQUEUE): State.QUEUED,
}

# The event kind written for each action: past tense reads well in the log.
EVENT_KIND: dict[Action, str] = {
    Action.APPROVE: "approved",
    Action.REQUEUE: "requeued",
    Action.CANCEL: "cancelled",
    Action.HOLD: "held",
    Action.RELEASE: "released",
    Action.CLAIM: "claimed",
    Action.FINISH: "finished",
    Action.FAIL: "failed",
    Action.EXPIRE: "expired",
    Action.STOP: "stopped",
}
# Events that are not state transitions.
KIND_CREATED = "created"
KIND_PRIORITY = "priority"
KIND_DEPENDS = "depends"
KIND_NOTE = "note"
KIND_PROGRESS = "progress"
# Something went wrong after an action took effect (a worktree that could not
# be removed after its merge): the action stands; the event says what to do.
KIND_WARNING = "warning"
EVENT_KINDS = frozenset(EVENT_KIND.values()) | {
    KIND_CREATED,
    KIND_PRIORITY,
    KIND_DEPENDS,
    KIND_NOTE,
    KIND_PROGRESS,
    KIND_WARNING,
}

# The order the plan is grouped in: what needs the operator comes first.
STATE_ORDER: tuple[State, ...] = (
    State.REVIEW,
    State.FAILED,
    State.PROPOSED,
    State.RUNNING,
    State.QUEUED,
    State.HELD,
    State.DONE,
    State.CANCELLED,
)

# Task.branch_start of a task that ran before the log recorded where its
# branch started: the branch is the plan's own, its start unknown.
BRANCH_START_UNRECORDED = "unrecorded"

class WorktreeStatus(StrEnum):
    """What a task's worktree is for, from its task's state."""

    RUNNING = "running"
    REVIEW = "review"
    FAILED = "failed"
    WAITING = "waiting"  # queued, held or proposed again: its work is kept
    ORPHANED = "orphaned"  # no task needs it any more


def worktree_status(state: State | None) -> WorktreeStatus:
    if state is State.RUNNING:
        return WorktreeStatus.RUNNING
    if state is State.REVIEW:
        return WorktreeStatus.REVIEW
    if state is State.FAILED:
        return WorktreeStatus.FAILED
    if state in (State.QUEUED, State.HELD, State.PROPOSED):
        return WorktreeStatus.WAITING
    return WorktreeStatus.ORPHANED


# The states a task may be created in (by `plan add`, an import, a form).
CREATABLE_STATES = (State.QUEUED, State.PROPOSED, State.HELD)

PRIORITY_MIN, PRIORITY_MAX = -99, 99


def allowed_actions(state: State) -> list[Action]:
    """The operator actions that ``state`` allows, in a stable order."""
    return [
        action
        for action in (
            Action.APPROVE,
            Action.REQUEUE,
            Action.HOLD,
            Action.RELEASE,
            Action.CANCEL,
        )
        if (state, action) in TRANSITIONS
    ]


def next_state(task_id: str, state: State, action: Action) -> State:
    """The state ``action`` takes a task in ``state`` to, or IllegalTransition
    saying from what, to what and why not."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransition(
            task_id, state.value, action.value, why_not(state, action)
        ) from None


def why_not(state: State, action: Action) -> str:
    if state is State.DONE:
        return "it is done, and a done task never changes"
    sources = [s.value for (s, a) in TRANSITIONS if a is action]
    if action in (Action.CLAIM, Action.FINISH, Action.FAIL, Action.EXPIRE, Action.STOP):
        return f"it is {state.value}; only the engine may {action.value}, and only from {_or(sources)}"
    return f"it is {state.value}; {action.value} applies to {_or(sources)} tasks"


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


_ID = re.compile(r"^\s*(?:[Tt]-?)?(\d{1,9})\s*$")


def normalize_task_id(text: str) -> str:
    """``T-12``, ``t-12``, ``T12`` and ``12`` all name task ``T-12``."""
    match = _ID.match(text)
    if not match:
        raise InvalidInput(f"not a task id: {text!r} (task ids look like T-12)")
    return f"T-{int(match.group(1))}"


def task_seq(task_id: str) -> int:
    return int(task_id[2:])


def check_title(title: str) -> str:
    """Titles are one line of text; surrounding white space is dropped."""
    cleaned = title.strip()
    if not cleaned:
        raise InvalidInput("a task needs a title; the one given is empty")
    return cleaned


def check_priority(priority: int) -> int:
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidInput(
            f"priority {priority} is out of range ({PRIORITY_MIN} to {PRIORITY_MAX})"
        )
    return priority


def parse_priority(text: str) -> int:
    try:
        return check_priority(int(text.strip()))
    except ValueError:
        raise InvalidInput(f"priority must be a whole number, not {text!r}") from None


@dataclass(slots=True)
class Task:
    id: str
    title: str
    state: State
    priority: int = 0
    attempts: int = 0
    body: str = ""
    profile: str | None = None
    source: str | None = None
    feedback: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    progress: str | None = None
    # The commit the task's branch was made at, recorded by the engine when
    # it made the branch: a branch whose history does not hold it is not
    # this task's (another plan, an earlier log, left it).
    branch_start: str | None = None
    depends_on: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()

    @property
    def seq(self) -> int:
        return task_seq(self.id)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state.value,
            "priority": self.priority,
            "attempts": self.attempts,
            "body": self.body,
            "profile": self.profile,
            "source": self.source,
            "feedback": self.feedback,
            "created": iso_time(self.created_at),
            "updated": iso_time(self.updated_at),
            "started": iso_time(self.started_at) if self.started_at else None,
            "progress": self.progress,
            "branch_start": self.branch_start,
            "depends_on": list(self.depends_on),
            "blocked_by": list(self.blocked_by),
        }


@dataclass(slots=True)
class Event:
    id: int
    at: float
    task_id: str | None
    kind: str
    actor: str
    from_state: str | None = None
    to_state: str | None = None
    note: str | None = None
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "at": iso_time(self.at),
            "task": self.task_id,
            "kind": self.kind,
            "actor": self.actor,
            "from": self.from_state,
            "to": self.to_state,
            "note": self.note,
            "data": self.data,
        }


@dataclass(slots=True, frozen=True)
class NewTask:
    """A task to be created; ``after`` names tasks it depends on, by id."""

    title: str
    body: str = ""
    priority: int = 0
    state: State = State.QUEUED
    after: tuple[str, ...] = ()
    profile: str | None = None
    source: str | None = None


@dataclass(slots=True, frozen=True)
class Claim:
    """What a worker holds after ``ExecutionLog.claim_next``.

    ``token`` is the lease (the engine's, for heartbeats and the finish);
    ``secret`` is the run's agent secret, given to the agent alone (as
    ``FACTORY_TOKEN``) so that it can prove to ``factory`` which run it is.
    The log keeps only its sha256."""

    task: Task
    token: str
    worker: str
    expires_at: float
    secret: str = field(repr=False)


def iso_time(at: float) -> str:
    """ISO 8601 in local time with its offset, to the second."""
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


@dataclass(slots=True)
class DiffStat:
    files: int
    added: int
    removed: int


@dataclass(slots=True)
class FileDiff:
    """One file of a task's diff against the base branch."""

    path: str
    status: str  # added | modified | deleted | renamed
    patch: str
    added: int
    removed: int


@dataclass
class TaskDetail:
    """A task with what the task screen shows of it."""

    task: Task
    dependencies: list[Task]
    dependents: list[Task]
    events: list[Event]


@dataclass(slots=True)
class WorktreeReport:
    """One task worktree: whose it is, what it is for, and what changed."""

    task_id: str | None
    status: WorktreeStatus
    branch: str | None
    path: str
    exists: bool = True
    started_at: float | None = None
    progress: str | None = None
    added: int | None = None
    removed: int | None = None

    @property
    def key(self) -> str:
        return self.task_id or self.path

    def to_json(self) -> dict:
        return {
            "task": self.task_id, "status": self.status.value, "branch": self.branch,
            "path": self.path, "exists": self.exists, "added": self.added, "removed": self.removed,
        }
