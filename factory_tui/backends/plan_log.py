"""The execution log's part of greenfield: the drafts a planner made from a
spec (``drafts``) and the changes to existing tasks its revisions proposed
(``plan_proposals``), each pending until the operator accepts or declines it.

A draft is written in one transaction with the tasks it brought (the
caller opens it with ``ExecutionLog.transaction()`` and imports the tasks
inside it): a draft killed half-way leaves nothing. A proposal is only a
record: accepting it is the operator's action (backends/plan_draft.py does
what it says, then ``decide_proposal`` records the decision).

A mixin of ``ExecutionLog`` (backends/log.py), which holds the connection,
the transactions and the event writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factory_tui.draft_model import (
    Draft,
    NewProposal,
    Proposal,
    ProposalKind,
    ProposalState,
    normalize_proposal_id,
    proposal_seq,
)
from factory_tui.errors import InvalidInput, PlanSyntaxError, UnknownTask
from factory_tui.model import (
    KIND_DRAFTED,
    KIND_PROPOSAL,
    KIND_PROPOSAL_ACCEPTED,
    KIND_PROPOSAL_DECLINED,
    State,
    Task,
)

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

_DRAFT_COLUMNS = "id, at, spec, source, revise, profile, run_dir, actor, tasks, skipped, proposals"
_PROPOSAL_COLUMNS = (
    "id, draft, task, kind, value, title, reason, state, created_at, decided_at, decided_by, decision_note"
)
DECIDED_KIND = {ProposalState.ACCEPTED: KIND_PROPOSAL_ACCEPTED, ProposalState.DECLINED: KIND_PROPOSAL_DECLINED}


def _draft(row: Sequence) -> Draft:
    id_, at, spec, source, revise, profile, run_dir, actor, tasks, skipped, proposals = row
    return Draft(id_, at, spec, source, bool(revise), profile, run_dir, actor, tasks, skipped, proposals)


def _proposal(row: Sequence) -> Proposal:
    id_, draft, task, kind, value, title, reason, state, created, decided_at, decided_by, note = row
    return Proposal(
        f"P-{id_}", draft, task, ProposalKind(kind), value, title, reason or "", ProposalState(state),
        created, decided_at, decided_by, note,
    )


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A proposed change not recorded, and why (it changes nothing, or the
    same change waits already)."""

    line: int
    task: str
    why: str

    def to_json(self) -> dict:
        return {"line": self.line, "task": self.task, "why": self.why}


@dataclass(frozen=True, slots=True)
class Recorded:
    draft: Draft
    proposals: list[Proposal]
    left_out: list[LeftOut]


class PlanRecords:
    """The greenfield methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    _clock: Callable[[], float]
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]
    _event: Callable[..., None]
    _task_row: Callable[[sqlite3.Connection, str], Task]

    def record_draft(
        self, *, spec: str, source: str, revise: bool, profile: str, run_dir: str, actor: str,
        task_ids: Sequence[str], skipped: int, proposals: Sequence[NewProposal], where: str,
    ) -> Recorded:
        """Record a draft, the changes it proposed and an event for each.
        A change to a task that does not exist or is done is refused as
        ``PlanSyntaxError`` on its line of ``where`` (nothing is written);
        one that changes nothing, or that waits already, is left out."""
        now = self._clock()
        with self._write() as conn:
            fresh: list[NewProposal] = []
            left_out: list[LeftOut] = []
            for new in proposals:
                why = self._check_proposal(conn, new, where)
                if why is None:
                    fresh.append(new)
                else:
                    left_out.append(LeftOut(new.line, new.task, why))
            draft_id = conn.execute(
                f"INSERT INTO drafts ({_DRAFT_COLUMNS.replace('id, ', '', 1)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (now, spec, source, int(revise), profile, run_dir, actor, len(task_ids), skipped, len(fresh)),
            ).fetchone()[0]
            made: list[Proposal] = []
            for new in fresh:
                seq = conn.execute(
                    "INSERT INTO plan_proposals (draft, task, kind, value, title, reason, state, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
                    (draft_id, new.task, str(new.kind), new.value, new.title, new.reason, now),
                ).fetchone()[0]
                proposal = Proposal(f"P-{seq}", draft_id, new.task, new.kind, new.value, new.title, new.reason,
                                    ProposalState.PENDING, now)
                made.append(proposal)
                self._event(
                    conn, now, new.task, KIND_PROPOSAL, actor,
                    note=f"{proposal.id} proposed: {proposal.what}" + (f": {new.reason}" if new.reason else ""),
                    data={"proposal": proposal.id, "kind": str(new.kind), "value": new.value, "draft": draft_id},
                )
            kind = "revision" if revise else "draft"
            self._event(
                conn, now, None, KIND_DRAFTED, actor,
                note=(f"{kind} {draft_id} of {spec}: {_count(len(task_ids), 'task')} proposed, "
                      f"{skipped} already there, {_count(len(made), 'change')} proposed"),
                data={"draft": draft_id, "spec": spec, "revise": revise, "profile": profile, "run_dir": run_dir,
                      "tasks": list(task_ids), "proposals": [p.id for p in made]},
            )
            draft = Draft(draft_id, now, spec, source, revise, profile, run_dir, actor, len(task_ids), skipped,
                          len(made))
        return Recorded(draft, made, left_out)

    def _check_proposal(self, conn: sqlite3.Connection, new: NewProposal, where: str) -> str | None:
        try:
            task = self._task_row(conn, new.task)
        except UnknownTask:
            raise PlanSyntaxError(where, new.line, f"id={new.task}: no such task in the log") from None
        if task.state is State.DONE:
            raise PlanSyntaxError(where, new.line, f"{new.task} is done; a done task never changes")
        if new.kind is ProposalKind.CANCEL and task.state is State.CANCELLED:
            return "it is cancelled already"
        if new.kind is ProposalKind.PRIORITY and task.priority == new.value:
            return f"its priority is {new.value} already"
        row = conn.execute(
            "SELECT id FROM plan_proposals WHERE state = 'pending' AND task = ? AND kind = ? AND value IS ?",
            (new.task, str(new.kind), new.value),
        ).fetchone()
        if row is not None:
            return f"P-{row[0]} proposes it already"
        return None

    # --- reading -----------------------------------------------------------------

    def drafts(self, *, last: int | None = None) -> list[Draft]:
        """The drafts, oldest first (``last``: only the newest N)."""
        with self._read() as conn:
            if last is None:
                rows = conn.execute(f"SELECT {_DRAFT_COLUMNS} FROM drafts ORDER BY id").fetchall()
            else:
                rows = conn.execute(f"SELECT {_DRAFT_COLUMNS} FROM drafts ORDER BY id DESC LIMIT ?", (last,)).fetchall()
                rows.reverse()
        return [_draft(row) for row in rows]

    def proposals(self, states: Iterable[ProposalState] | None = None) -> list[Proposal]:
        """The proposals (or those in ``states``), oldest first."""
        sql = f"SELECT {_PROPOSAL_COLUMNS} FROM plan_proposals"
        with self._read() as conn:
            if states is None:
                rows = conn.execute(f"{sql} ORDER BY id").fetchall()
            else:
                wanted = [str(ProposalState(state)) for state in states]
                rows = conn.execute(
                    f"{sql} WHERE state IN ({','.join('?' * len(wanted))}) ORDER BY id", wanted
                ).fetchall()
        return [_proposal(row) for row in rows]

    def get_proposal(self, proposal_id: str) -> Proposal:
        proposal_id = normalize_proposal_id(proposal_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_PROPOSAL_COLUMNS} FROM plan_proposals WHERE id = ?", (proposal_seq(proposal_id),)
            ).fetchone()
        if row is None:
            raise InvalidInput(f"no such proposal: {proposal_id}")
        return _proposal(row)

    # --- the operator's decision ------------------------------------------------------

    def decide_proposal(
        self, proposal_id: str, state: ProposalState, *, actor: str, note: str | None = None,
    ) -> Proposal:
        """Mark a pending proposal accepted or declined, with an event on
        its task. InvalidInput if there is no such proposal or it was
        decided before (nothing is written then)."""
        proposal_id = normalize_proposal_id(proposal_id)
        state = ProposalState(state)
        if state is ProposalState.PENDING:
            raise InvalidInput("a decision is accepted or declined")
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "UPDATE plan_proposals SET state = ?, decided_at = ?, decided_by = ?, decision_note = ? "
                f"WHERE id = ? AND state = 'pending' RETURNING {_PROPOSAL_COLUMNS}",
                (str(state), now, actor, note or None, proposal_seq(proposal_id)),
            ).fetchone()
            if row is None:
                before = conn.execute(
                    f"SELECT {_PROPOSAL_COLUMNS} FROM plan_proposals WHERE id = ?", (proposal_seq(proposal_id),)
                ).fetchone()
                if before is None:
                    raise InvalidInput(f"no such proposal: {proposal_id}")
                earlier = _proposal(before)
                raise InvalidInput(f"{proposal_id} was {earlier.state} already (by {earlier.decided_by})")
            proposal = _proposal(row)
            self._event(
                conn, now, proposal.task, DECIDED_KIND[state], actor,
                note=f"{proposal.id} {state}: {proposal.what}" + (f": {note}" if note else ""),
                data={"proposal": proposal.id, "kind": str(proposal.kind), "value": proposal.value,
                      "draft": proposal.draft},
            )
        return proposal


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
