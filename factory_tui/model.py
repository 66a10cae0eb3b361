"""The plan's vocabulary: task states, the actions that move a task between
them, and the records the execution log hands out.

Pure: no SQLite, no git, no Textual. ``ExecutionLog`` asks ``next_state``
before every transition, so the table below is the single place that says
which moves are legal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from factory_tui.errors import IllegalTransition, InvalidInput


class State(StrEnum):
    PROPOSED = "proposed"
    QUEUED = "queued"
    HELD = "held"
    RUNNING = "running"
    # The agent finished; the QA scenarios that apply run against its commit
    # (under the engine's lease, as a run is).
    CHECKING = "checking"
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
    # The QA gate: the agent finished and its work is checked; then it
    # passes (to review) or is sent back (to the queue, the report as
    # feedback). A failure past the rounds allowed is FAIL.
    CHECK = "check"
    PASS = "pass"
    REJECT = "reject"


OPERATOR_ACTIONS = frozenset(
    {Action.APPROVE, Action.REQUEUE, Action.CANCEL, Action.HOLD, Action.RELEASE}
)
ENGINE_ACTIONS = frozenset(Action) - OPERATOR_ACTIONS

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
    (State.RUNNING, Action.CHECK): State.CHECKING,
    (State.CHECKING, Action.PASS): State.REVIEW,
    (State.CHECKING, Action.REJECT): State.QUEUED,
    (State.CHECKING, Action.FAIL): State.FAILED,
    (State.CHECKING, Action.CANCEL): State.CANCELLED,
    # An engine that died or shut down while checking: the task stays in
    # checking, with no lease, and the next engine runs its QA again.
    (State.CHECKING, Action.EXPIRE): State.CHECKING,
    (State.CHECKING, Action.STOP): State.CHECKING,
    (State.CHECKING, Action.CLAIM): State.CHECKING,
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
    Action.CHECK: "checking",
    Action.PASS: "passed",
    Action.REJECT: "rejected",
}
# Events that are not state transitions.
KIND_CREATED = "created"
KIND_PRIORITY = "priority"
# A task's labels changed (its data: the labels added and removed).
KIND_LABELS = "labels"
KIND_DEPENDS = "depends"
# A dependency dropped (the operator's way out of "can never run as it is").
KIND_UNDEPENDS = "undepends"
KIND_NOTE = "note"
KIND_PROGRESS = "progress"
# Something went wrong after an action took effect (a worktree that could not
# be removed after its merge), or an action was refused on the way (an
# approval that could not merge): the event says what to do.
KIND_WARNING = "warning"
# An engine took over a run another engine left (killed, or a console that
# handed its agents over): from then on the run is the new engine's.
KIND_ADOPTED = "adopted"
# One QA scenario's result on a task (its data: the QaResult).
KIND_QA = "qa"
# Mail between factories (no task: task_id is NULL): a message taken into
# the log from the inbox or a source, one written to our outbox, a file
# refused as no message, messages marked read.
KIND_MAIL_RECEIVED = "mail_received"
KIND_MAIL_SENT = "mail_sent"
KIND_MAIL_QUARANTINED = "mail_quarantined"
KIND_MAIL_READ = "mail_read"
# Greenfield (no task for a draft): a planner's plan imported; a change to a
# task a revision proposed (on that task), and the operator's decision on it.
KIND_DRAFTED = "drafted"
KIND_PROPOSAL = "proposal"
KIND_PROPOSAL_ACCEPTED = "proposal_accepted"
KIND_PROPOSAL_DECLINED = "proposal_declined"
# A re-import of another tool's plan changed a task's title, body or state
# (its data: the tool, the tool's id, what changed).
KIND_IMPORTED = "imported"
# The events that end an agent's run, whose data holds what the agent
# reported (cost, tokens, turns) and names its run folder: a run that went
# on to QA ends in ``checking``.
RUN_END_KINDS = ("finished", "failed", "checking")
EVENT_KINDS = frozenset(EVENT_KIND.values()) | {
    KIND_CREATED,
    KIND_PRIORITY,
    KIND_LABELS,
    KIND_DEPENDS,
    KIND_UNDEPENDS,
    KIND_NOTE,
    KIND_PROGRESS,
    KIND_WARNING,
    KIND_ADOPTED,
    KIND_QA,
    KIND_MAIL_RECEIVED,
    KIND_MAIL_SENT,
    KIND_MAIL_QUARANTINED,
    KIND_MAIL_READ,
    KIND_DRAFTED,
    KIND_PROPOSAL,
    KIND_PROPOSAL_ACCEPTED,
    KIND_PROPOSAL_DECLINED,
    KIND_IMPORTED,
}

# The order the plan is grouped in: what needs the operator comes first.
STATE_ORDER: tuple[State, ...] = (
    State.REVIEW,
    State.FAILED,
    State.PROPOSED,
    State.RUNNING,
    State.CHECKING,
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
    if state in (State.RUNNING, State.CHECKING):
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
    if action in ENGINE_ACTIONS:
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


# The one rule for a task label: a short word that a scenario's
# `when: {labels: [...]}` names, and that needs no quoting on a command line,
# in a plan file's `{labels=a,b}` or in YAML. Labels are compared exactly
# (case and all).
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,39}")
LABEL_RULE = (
    "a label is 1 to 40 letters, digits, '-', '_', '.', '/' or ':', "
    "starting with a letter or digit"
)


def check_label(label: str) -> str:
    """``label`` if it is a label (see LABEL_RULE), else InvalidInput."""
    if not isinstance(label, str) or LABEL_PATTERN.fullmatch(label) is None:
        shown = label if isinstance(label, str) and len(label) <= 60 else f"{str(label)[:57]}..."
        raise InvalidInput(f"{shown!r} is not a label: {LABEL_RULE}")
    return label


def check_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Each label checked, each once, in the order given."""
    return tuple(dict.fromkeys(check_label(label) for label in labels))


def split_labels(text: str) -> tuple[str, ...]:
    """Labels written as one piece of text, separated by commas and/or
    white space (a plan file's ``labels=a,b``, the console's form)."""
    return check_labels(part for part in re.split(r"[\s,]+", text) if part)


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
    # Words that say what kind of work this is; QA scenarios with
    # `when: {labels: [...]}` run for tasks carrying one of theirs.
    labels: tuple[str, ...] = ()

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
            "labels": list(self.labels),
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
    labels: tuple[str, ...] = ()


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


# --- why a task failed ------------------------------------------------------------

# ``data["failure"]`` of a ``failed`` event: what kind of failure it was.
FAILURE_CAUSES = (
    "exit",       # the agent exited non-zero or was killed by a signal
    "timeout",    # the run took longer than its profile's timeout
    "agent",      # the agent reported a failure of its own (is_error, turn.failed)
    "worktree",   # the agent broke or removed its worktree
    "no-work",    # the run left nothing to review
    "start",      # the run could not start (no program, no worktree, a foreign branch)
    "engine",     # the engine met a bug; the task is not to blame
    "conflict",   # approving found a merge conflict with the base branch
    "markers",    # a run left conflict markers in the files it was to resolve
    "qa",         # a required QA scenario failed and no QA round was left
)
# How long a reason may be on a row.
FAILURE_TEXT_LIMIT = 160


@dataclass(slots=True, frozen=True)
class Failure:
    """Why a task failed, from its last ``failed`` event: ``cause`` (one of
    FAILURE_CAUSES, or ``None`` for an event older than them), ``reason``
    (one line, short enough for a row), the files a conflict is in, and the
    agent's exit status when it had one."""

    task_id: str
    cause: str | None
    reason: str
    conflicts: tuple[str, ...] = ()
    exit_code: int | None = None
    at: float = 0.0

    def to_json(self) -> dict:
        return {
            "task": self.task_id, "cause": self.cause, "reason": self.reason,
            "conflicts": list(self.conflicts), "exit_code": self.exit_code,
            "at": iso_time(self.at) if self.at else None,
        }


def failure_of(event: Event, *, limit: int = FAILURE_TEXT_LIMIT) -> Failure:
    """The ``Failure`` a ``failed`` event records. The engine's events say
    it in their data (``failure``, ``reason``, ``exit_code``, ``conflicts``);
    an older event's note is cut before the agent's last output."""
    data = event.data if isinstance(event.data, dict) else {}
    cause = data.get("failure") if data.get("failure") in FAILURE_CAUSES else None
    conflicts = tuple(str(name) for name in data.get("conflicts") or () if isinstance(name, str))
    if conflicts and cause is None:
        cause = "conflict"  # written before causes were recorded
    reason = data.get("reason") if isinstance(data.get("reason"), str) else None
    if not reason:
        reason = (event.note or "failed, without a reason recorded").split("; last output: ", 1)[0]
    exit_code = data.get("exit_code")
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        exit_code = None
    return Failure(
        task_id=event.task_id or "",
        cause=cause,
        reason=_shorten(" ".join(reason.split()), limit),
        conflicts=conflicts,
        exit_code=exit_code,
        at=event.at,
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- tasks that can never run as they are -----------------------------------------

# A task in these states waits to run; one that depends on a cancelled or
# failed task (directly, or through another waiting task) never will.
WAITING_STATES = frozenset({State.QUEUED, State.HELD, State.PROPOSED})
DEAD_STATES = frozenset({State.CANCELLED, State.FAILED})
# The states an operator's action may leave a task in after which the
# request it came from is due a reply (backends/mail_requests.py): an end,
# or at work again after one.
ANSWERED_STATES = frozenset({State.DONE, State.FAILED, State.CANCELLED, State.QUEUED})
# Enough to say why; a task behind a thousand dead ones needs no list of all.
MAX_DEAD_NAMED = 8


@dataclass(slots=True, frozen=True)
class NeverRuns:
    """A waiting task that can never run as it is: the cancelled or failed
    tasks it waits for (``dead``, with their states), and which of its own
    dependencies lead there (``through``: the ones to drop, or to see to)."""

    task_id: str
    dead: tuple[tuple[str, State], ...]
    through: tuple[str, ...]

    @property
    def text(self) -> str:
        """``waits for T-2 (cancelled)``, or ``… through T-4`` when the dead
        task is further down the chain."""
        dead = ", ".join(f"{task_id} ({state.value})" for task_id, state in self.dead)
        direct = {task_id for task_id, _ in self.dead}
        indirect = [task_id for task_id in self.through if task_id not in direct]
        return f"waits for {dead}" + (f" through {', '.join(indirect)}" if indirect else "")

    def to_json(self) -> dict:
        return {
            "task": self.task_id,
            "waits_for": [{"task": task_id, "state": state.value} for task_id, state in self.dead],
            "through": list(self.through),
        }


def never_runs(tasks: Iterable[Task]) -> dict[str, NeverRuns]:
    """Every queued, held or proposed task among ``tasks`` that depends,
    directly or through other waiting tasks, on a cancelled or failed one:
    as the plan is, it can never run. ``tasks`` is the whole plan (its
    ``depends_on`` and states); pure, linear in tasks and dependencies, and
    without recursion (a 100,000-task chain is fine)."""
    state_of: dict[str, State] = {}
    deps_of: dict[str, tuple[str, ...]] = {}
    for task in tasks:
        state_of[task.id] = task.state
        deps_of[task.id] = task.depends_on
    waiting = {task_id for task_id, state in state_of.items() if state in WAITING_STATES}
    dead_ids = {task_id for task_id, state in state_of.items() if state in DEAD_STATES}
    # For each waiting task: the dead tasks below it, in the order found
    # (a dict for its order), at most MAX_DEAD_NAMED of them.
    dead_below: dict[str, dict[str, None]] = {}
    for start in waiting:
        if start in dead_below:
            continue
        # Depth first, dependencies before the tasks that wait for them.
        stack: list[tuple[str, int]] = [(start, 0)]
        on_stack = {start}
        while stack:
            current, index = stack[-1]
            deps = deps_of[current]
            if index < len(deps):
                stack[-1] = (current, index + 1)
                dep = deps[index]
                if dep in waiting and dep not in dead_below and dep not in on_stack:
                    stack.append((dep, 0))
                    on_stack.add(dep)
                continue
            stack.pop()
            on_stack.discard(current)
            found: dict[str, None] = {}
            for dep in deps:
                if dep in dead_ids:
                    found[dep] = None
                elif dep in waiting:
                    below = dead_below.get(dep)
                    if below:
                        found.update(below)
                if len(found) >= MAX_DEAD_NAMED:
                    found = dict.fromkeys(list(found)[:MAX_DEAD_NAMED])
                    break
            dead_below[current] = found
    result: dict[str, NeverRuns] = {}
    for task_id, dead in dead_below.items():
        if not dead:
            continue
        through = tuple(
            dep for dep in deps_of[task_id]
            if dep in dead_ids or (dep in waiting and dead_below.get(dep))
        )
        result[task_id] = NeverRuns(task_id, tuple((dead_id, state_of[dead_id]) for dead_id in dead), through)
    return result


# --- what runs cost ----------------------------------------------------------------


@dataclass(slots=True)
class Totals:
    """Cost and tokens of some runs, as their agents reported them (a run
    whose agent reports nothing adds to ``runs`` only)."""

    runs: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    turns: int = 0

    def add(self, other: Totals) -> None:
        self.runs += other.runs
        self.cost_usd += other.cost_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.turns += other.turns

    def to_json(self) -> dict:
        return {
            "runs": self.runs, "cost_usd": round(self.cost_usd, 6),
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "turns": self.turns,
        }

    @property
    def text(self) -> str:
        """``$1.2345 · 1.2M in / 45k out · 3 runs``: what was reported."""
        parts = [f"${self.cost_usd:.4f}"] if self.cost_usd else []
        if self.input_tokens or self.output_tokens:
            parts.append(f"{_count_text(self.input_tokens)} in / {_count_text(self.output_tokens)} out")
        parts.append(f"{self.runs} run{'s' if self.runs != 1 else ''}")
        return " · ".join(parts)


@dataclass(slots=True)
class Usage:
    """Cost and tokens per task, for the runs ended since ``since`` (the
    start of today, local time), and for the whole base."""

    tasks: dict[str, Totals]
    today: Totals
    total: Totals
    since: float

    def to_json(self) -> dict:
        return {
            "today": self.today.to_json(),
            "total": self.total.to_json(),
            "since": iso_time(self.since),
            "tasks": {task_id: totals.to_json() for task_id, totals in self.tasks.items()},
        }


def _count_text(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)
