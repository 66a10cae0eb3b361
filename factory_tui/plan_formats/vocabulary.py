"""The three tools' vocabularies side by side: which of their statuses is
what here, and what ours is there (the README's table is this one).

Pure."""

from __future__ import annotations

from factory_tui.model import State
from factory_tui.plan_formats import backlog, beads, taskmaster
from factory_tui.plan_formats.records import Kind, Vocabulary

VOCABULARIES: dict[Kind, Vocabulary] = {
    Kind.BEADS: beads.VOCABULARY,
    Kind.BACKLOG: backlog.VOCABULARY,
    Kind.TASKMASTER: taskmaster.VOCABULARY,
}


def their_terms(kind: str, state: str, priority: int) -> dict:
    """A task's state and priority in the words of the tool ``kind`` (for
    the export's ``sources``): ``{"status": …, "priority": …}``."""
    try:
        vocabulary = VOCABULARIES[Kind(kind)]
    except ValueError:
        return {}
    return {"status": vocabulary.statuses_out[State(state)], "priority": vocabulary.priority_out(priority)}
