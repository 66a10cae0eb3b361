"""The errors a user can cause, each carrying the one line they are shown.

Every layer raises these; the CLI prints ``factory: <message>`` and exits 1,
the console turns them into a notification. Anything that is *not* a
``FactoryError`` is a bug and may show a traceback.
"""

from __future__ import annotations


class FactoryError(Exception):
    """An error the user can act on; ``str(error)`` is the whole message."""


class BaseNotFound(FactoryError):
    """No ``.factory/`` was found where the user pointed."""


class NotAGitRepository(FactoryError):
    """``factory init`` was run outside a git repository."""


class NoCommits(FactoryError):
    """``factory init`` in a repository whose base branch has no commit yet:
    task branches start from a commit, so the first task would fail."""


class ConfigError(FactoryError):
    """``factory.toml`` is missing, unreadable or holds a bad value."""


class UnknownTask(FactoryError):
    """A task id that the log does not hold."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no such task: {task_id}")
        self.task_id = task_id


class IllegalTransition(FactoryError):
    """An action the task's current state does not allow."""

    def __init__(self, task_id: str, state: str, action: str, reason: str) -> None:
        super().__init__(f"cannot {action} {task_id}: {reason}")
        self.task_id = task_id
        self.state = state
        self.action = action
        self.reason = reason


def os_error_text(error: OSError) -> str:
    """An OSError as one line a user can act on: a full or read-only disk
    said as such, with the file it was about."""
    import errno

    where = f" ({error.filename})" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full{where}"
    if error.errno == errno.EROFS:
        return f"the disk is read-only{where}"
    return f"{error.strerror or error}{where}"


def path_text(names: list[str], *, keep: int = 12) -> str:
    """``a → b → c``; a long path keeps its ends and says how much is left
    out, so that a loop through a 100,000-task chain is still one short line."""
    if len(names) <= keep:
        return " → ".join(names)
    head, tail = names[: keep // 2], names[-(keep // 2 - 1):]
    hidden = len(names) - len(head) - len(tail)
    return " → ".join([*head, f"… ({hidden:,} more) …", *tail])


class DependencyCycle(FactoryError):
    """A dependency that would close a loop in the plan; ``cycle`` holds the
    whole loop, the message its ends."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("dependency cycle refused: " + path_text(cycle))
        self.cycle = cycle


class InvalidInput(FactoryError):
    """A value the user typed that cannot be used (empty title, bad priority)."""


class PlanSyntaxError(FactoryError):
    """A line of a plan file that cannot be read as a task."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class LeaseLost(FactoryError):
    """A worker's lease is no longer live (expired and reaped, or the task was
    cancelled); the worker must stop working on the task."""


class LogError(FactoryError):
    """The execution log cannot be used as it is."""


class LogBusy(LogError):
    """Another writer held the log's write lock for longer than the busy timeout."""


class LogCorrupt(LogError):
    """``log.db`` is not a readable SQLite database."""


class LogTooNew(LogError):
    """``log.db`` was written by a newer factory-tui; it is never altered."""


class LogReadOnly(LogError):
    """``log.db`` (or its folder) cannot be written: a read-only mount or
    file; reading it may still work."""


class LogDiskFull(LogError):
    """The disk holding ``log.db`` is full; the write was rolled back."""


class AgentRefused(FactoryError):
    """A process presents itself as an agent (or runs under one) but cannot
    prove a live run of this log: its run token is missing, forged or stale."""


class NotPermitted(FactoryError):
    """An agent asked for something that is the operator's to do."""


class UnknownMessage(InvalidInput):
    """A message key (or prefix of one) that the log does not hold, or
    that more than one message's key starts with."""
