"""A task's QA at a glance: the one symbol the Plan and Worktrees show in
their QA column (✓ passed, ✗ failed, … checking, ! error), from the latest
verdict of each scenario on the task.

The latest verdicts come first from the log's ``qa_runs`` (the session's
``qa_latest``) and then from the ``qa`` events of the log feed, whose data
carry ``scenario``, ``verdict`` and ``gate``; ``TaskQaBook`` keeps them per
task. Pure: no I/O, no Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from factory_tui.model import KIND_QA, Event, State
from factory_tui.qa_model import PASSING, Gate, Verdict


class QaMark(StrEnum):
    NONE = ""
    PASSED = "✓"
    FAILED = "✗"
    CHECKING = "…"
    ERROR = "!"


# One task's latest verdict per scenario, with the scenario's gate.
Latest = Mapping[str, tuple[Verdict, Gate]]


def qa_mark(latest: Latest | None, state: State | None = None) -> QaMark:
    """The symbol for a task: checking while its QA runs; else ! when a
    required scenario could not tell (ERROR), ✗ when one failed, ✓ when
    every required one passed (advisory results never make it red)."""
    if state is State.CHECKING:
        return QaMark.CHECKING
    if not latest:
        return QaMark.NONE
    required = [verdict for verdict, gate in latest.values() if gate is Gate.REQUIRED]
    if Verdict.ERROR in required:
        return QaMark.ERROR
    if any(verdict not in PASSING for verdict in required):
        return QaMark.FAILED
    return QaMark.PASSED


class TaskQaBook:
    """Per task, the latest verdict of each scenario."""

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, tuple[Verdict, Gate]]] = {}

    def load(self, latest: Mapping[str, Latest]) -> None:
        self._latest = {task_id: dict(found) for task_id, found in latest.items()}

    def apply(self, events: Iterable[Event]) -> set[str]:
        """Take the ``qa`` events in; the tasks whose verdicts changed."""
        changed: set[str] = set()
        for event in events:
            if event.kind != KIND_QA or event.task_id is None:
                continue
            data = event.data or {}
            try:
                verdict, gate = Verdict(data["verdict"]), Gate(data.get("gate", Gate.REQUIRED))
                scenario = str(data["scenario"])
            except (KeyError, ValueError):
                continue  # an event from another version of the base: nothing to show
            self._latest.setdefault(event.task_id, {})[scenario] = (verdict, gate)
            changed.add(event.task_id)
        return changed

    def latest(self, task_id: str) -> Latest:
        return self._latest.get(task_id, {})

    def mark(self, task_id: str | None, state: State | None = None) -> QaMark:
        return qa_mark(self._latest.get(task_id) if task_id else None, state)
