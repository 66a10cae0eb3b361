"""Who is calling ``factory``, and what they may do.

An agent is identified by its run's secret, never by a name it gives
itself. The engine starts every agent with ``FACTORY_TOKEN`` (the secret the
claim made), ``FACTORY_TASK``, ``FACTORY_RUN`` (its run folder) and
``FACTORY_BASE`` in its environment; the log keeps the secret's hash on the
task while that run is live (``ExecutionLog.agent_for``). So:

* a valid ``FACTORY_TOKEN``: the agent of that run's task, whatever
  ``FACTORY_TASK`` says;
* any of the agent variables set without a valid token: refused (forged, or
  left over from a run that ended);
* none set: an agent that simply unset them is still found, by the
  environment of its ancestor processes (the agent's supervisor carries
  ``FACTORY_RUN``); otherwise the caller is the operator.

Agents may read, note and propose tasks (and send mail); everything else is
the operator's unless ``[agents] may`` in factory.toml grants it on purpose.
Each command declares its ``Need``; ``check_permitted`` says yes or gives the
one line of refusal.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from factory_tui.errors import AgentRefused, NotPermitted

AGENT_VARIABLES = ("FACTORY_TOKEN", "FACTORY_TASK", "FACTORY_RUN")
# Far more than any real process tree; only a guard against a loop in a
# /proc that changes while it is read.
MAX_ANCESTORS = 128


class Need(StrEnum):
    """What a command needs of its caller."""

    READ = "read"
    NOTE = "note"
    PROPOSE = "propose"
    MAIL = "mail"
    # An agent's new tasks start in the state it asks for, not proposed.
    QUEUE = "queue"
    APPROVE = "approve"
    REQUEUE = "requeue"
    CANCEL = "cancel"
    HOLD = "hold"
    RELEASE = "release"
    PRIORITY = "priority"
    LABEL = "label"  # factory task label: labels choose which QA scenarios run
    DEPEND = "depend"
    CLEAN = "clean"  # factory worktrees clean
    GC = "gc"  # factory artifacts gc: compressing and dropping old runs' raw output
    SCENARIOS = "scenarios"  # factory qa new: the checks an agent's work must pass
    RUN = "run"  # the engine, the console, the demo
    INIT = "init"
    # factory plan accept / decline: a planner's proposed changes to the
    # plan (and its drafted tasks) are the operator's to take or leave.
    ACCEPT = "accept"


AGENT_ALWAYS = frozenset({Need.READ, Need.NOTE, Need.PROPOSE, Need.MAIL})
# The names `[agents] may` accepts (those agents have anyway change nothing).
MAY_NAMES: tuple[str, ...] = tuple(need.value for need in Need)

# What an agent was refused, with the task it is about and without one.
_DOING: dict[Need, tuple[str, str]] = {
    Need.QUEUE: ("queueing {}", "queueing tasks"),
    Need.APPROVE: ("approving {}", "approving tasks"),
    Need.REQUEUE: ("re-queueing {}", "re-queueing tasks"),
    Need.CANCEL: ("cancelling {}", "cancelling tasks"),
    Need.HOLD: ("holding {}", "holding tasks"),
    Need.RELEASE: ("releasing {}", "releasing tasks"),
    Need.PRIORITY: ("changing the priority of {}", "changing priorities"),
    Need.LABEL: ("changing the labels of {}", "changing labels"),
    Need.DEPEND: ("changing the dependencies of {}", "changing dependencies"),
    Need.CLEAN: ("cleaning worktrees", "cleaning worktrees"),
    Need.GC: ("collecting old runs' output", "collecting old runs' output"),
    Need.SCENARIOS: ("writing QA scenarios", "writing QA scenarios"),
    Need.RUN: ("running the engine or the console", "running the engine or the console"),
    Need.INIT: ("initialising a base", "initialising a base"),
    Need.ACCEPT: ("deciding on {}", "deciding on the planner's proposals"),
}
_TASK_ID = re.compile(r"T-[1-9][0-9]{0,8}")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an action is recorded as: ``agent:T-3`` for an agent, else
    ``<channel>:<user>`` such as ``cli:alice``."""

    actor: str
    task_id: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.task_id is not None


class AgentCheck(Protocol):
    """What ``identify`` asks the log (``ExecutionLog`` answers it)."""

    def agent_for(self, secret: str) -> str | None: ...

    def run_is_live(self, task_id: str, attempt: int) -> bool: ...


def actor_name(channel: str) -> str:
    """The operator's name on ``channel``: ``cli:alice``, ``console:alice``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "operator"
    return f"{channel}:{user}"


def agent(task_id: str) -> Caller:
    return Caller(f"agent:{task_id}", task_id)


def identify(
    log: AgentCheck | None,
    runs_dir: Path | None,
    *,
    channel: str = "cli",
    environ: Mapping[str, str] | None = None,
    ancestors: Iterable[Mapping[str, str]] | None = None,
) -> Caller:
    """Who is calling, checked against ``log`` (None: there is no log to
    check against, so a caller presenting itself as an agent is refused).

    ``ancestors`` are the environments of the caller's ancestor processes,
    nearest first (default: read from /proc, and only when needed)."""
    environ = os.environ if environ is None else environ
    secret = environ.get("FACTORY_TOKEN")
    if secret and log is not None:
        task_id = log.agent_for(secret)
        if task_id is not None:
            return agent(task_id)
    claimed = [name for name in AGENT_VARIABLES if environ.get(name)]
    if claimed:
        raise AgentRefused(
            f"this process claims to be an agent ({', '.join(claimed)} set) but its run "
            "token is missing, forged or stale; refused"
        )
    if log is None or runs_dir is None:
        return Caller(actor_name(channel))
    for env in ancestor_environments() if ancestors is None else ancestors:
        # The supervisor that started the agent carries both; an agent that
        # unset its own variables still runs under it.
        secret = env.get("FACTORY_TOKEN")
        if secret and (task_id := log.agent_for(secret)) is not None:
            return agent(task_id)
        run = run_of(env.get("FACTORY_RUN"), runs_dir)
        if run is None:
            continue  # not a run of this base (another base's agent, say)
        task_id, attempt = run
        if task_id and log.run_is_live(task_id, attempt):
            return agent(task_id)
        raise AgentRefused(
            f"this process runs under the agent run {env['FACTORY_RUN']}, which is not "
            "live: it claims to be an agent but its run token is missing, forged or stale; refused"
        )
    return Caller(actor_name(channel))


def run_of(value: str | None, runs_dir: Path) -> tuple[str | None, int] | None:
    """The (task, attempt) a ``FACTORY_RUN`` value names, if it lies in
    ``runs_dir`` (``runs/T-3/2``); ``(None, 0)`` for a path in it that is no
    run folder; None for a path elsewhere."""
    if not value or not os.path.isabs(value):
        return None
    path = Path(os.path.realpath(value))
    try:
        parts = path.relative_to(os.path.realpath(runs_dir)).parts
    except ValueError:
        return None
    if len(parts) == 2 and _TASK_ID.fullmatch(parts[0]) and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, 0


def ancestor_environments(pid: int | None = None) -> Iterator[dict[str, str]]:
    """The factory variables of each ancestor of ``pid`` (default: this
    process), nearest first, from /proc: the PPid field of
    ``/proc/<pid>/stat`` and the environment each process was started with
    (``/proc/<pid>/environ``). An ancestor whose environment cannot be read
    (another user's) is passed over; without /proc there are none."""
    pid = os.getpid() if pid is None else pid
    seen = {pid}
    for _ in range(MAX_ANCESTORS):
        pid = _parent_of(pid)
        if pid is None or pid <= 0 or pid in seen:
            return
        seen.add(pid)
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            raw = b""
        env = {}
        for item in raw.split(b"\0"):
            if item.startswith(b"FACTORY_"):
                name, _, value = item.decode("utf-8", "surrogateescape").partition("=")
                env[name] = value
        if env:
            yield env
        if pid == 1:
            return


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        # The name (field 2) is in parentheses and may hold spaces or ")":
        # the fields after the last ")" are state, then the parent's pid.
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def check_permitted(
    caller: Caller, need: Need, *, may: Iterable[str] = (), subject: str | None = None
) -> None:
    """Nothing if ``caller`` may do what ``need`` names, else NotPermitted
    with the one line that says so (``subject``: the task it is about)."""
    if not caller.is_agent or need in AGENT_ALWAYS or need.value in set(may):
        return
    about, general = _DOING[need]
    doing = about.format(subject) if subject else general
    raise NotPermitted(
        f"agents may note and propose tasks; {doing} is the operator's "
        "(see [agents] may in factory.toml)"
    )


def agent_may_queue(caller: Caller, may: Iterable[str]) -> bool:
    """Whether ``caller``'s new tasks start as it asks (the operator's
    always do; an agent's are proposed unless ``[agents] may`` has queue)."""
    return not caller.is_agent or Need.QUEUE.value in set(may)
