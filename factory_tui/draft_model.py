"""Greenfield's records: a draft (a plan a planner wrote from a spec and
that was imported) and a proposal (a change to a task already in the log
that a revision asked for: cancel it, or give it another priority), which
waits for the operator to accept or decline it.

Pure: no SQLite, no git, no Textual; the log (backends/plan_log.py) makes
them, the CLI and anything else show them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from factory_tui.errors import InvalidInput


class ProposalKind(StrEnum):
    CANCEL = "cancel"
    PRIORITY = "priority"


class ProposalState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


_PROPOSAL_ID = re.compile(r"^\s*[Pp]-?(\d{1,9})\s*$")


def is_proposal_id(text: str) -> bool:
    return _PROPOSAL_ID.match(text) is not None


def normalize_proposal_id(text: str) -> str:
    """``P-3``, ``p-3`` and ``P3`` all name proposal ``P-3``."""
    match = _PROPOSAL_ID.match(text)
    if not match:
        raise InvalidInput(f"not a proposal id: {text!r} (proposal ids look like P-3)")
    return f"P-{int(match.group(1))}"


def proposal_seq(proposal_id: str) -> int:
    return int(proposal_id[2:])


@dataclass(frozen=True, slots=True)
class Draft:
    """One imported draft: the spec it came from, the tasks' source (what a
    later draft of the same spec matches its items against), whether it was
    a revision, the planner's profile and files, and what it brought."""

    id: int
    at: float
    spec: str
    source: str
    revise: bool
    profile: str
    run_dir: str
    actor: str
    tasks: int
    skipped: int
    proposals: int

    def to_json(self) -> dict:
        return {
            "id": self.id, "at": self.at, "spec": self.spec, "source": self.source,
            "revise": self.revise, "profile": self.profile, "run_dir": self.run_dir,
            "actor": self.actor, "tasks": self.tasks, "skipped": self.skipped,
            "proposals": self.proposals,
        }


@dataclass(frozen=True, slots=True)
class NewProposal:
    """A change a planner proposed: its line in the planner's file (for an
    error), the task, the kind, the new priority (None for a cancel), the
    item's title and body (the reason)."""

    line: int
    task: str
    kind: ProposalKind
    value: int | None
    title: str
    reason: str


@dataclass(frozen=True, slots=True)
class Proposal:
    id: str  # P-3
    draft: int
    task: str
    kind: ProposalKind
    value: int | None
    title: str
    reason: str
    state: ProposalState
    created_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    decision_note: str | None = None

    @property
    def what(self) -> str:
        """``cancel T-4`` or ``priority of T-4 → 5``."""
        if self.kind is ProposalKind.CANCEL:
            return f"cancel {self.task}"
        return f"priority of {self.task} → {self.value}"

    def to_json(self) -> dict:
        return {
            "id": self.id, "draft": self.draft, "task": self.task, "kind": str(self.kind),
            "value": self.value, "title": self.title, "reason": self.reason,
            "state": str(self.state), "created_at": self.created_at,
            "decided_at": self.decided_at, "decided_by": self.decided_by,
            "decision_note": self.decision_note,
        }
