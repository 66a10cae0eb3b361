"""The operator's word on what a planner proposed (``factory plan accept``
and ``decline``): a drafted task (``T-N``, proposed) is approved (→ queued)
or cancelled; a proposal (``P-N``) is done (the task cancelled, or its
priority set) and marked accepted, or marked declined. Each decision is an
event on its task.

Accepting does what the proposal says through the same paths as the
operator's own keys (``Operator.apply`` for a cancel, the log's
``set_priority``), then records the decision. A priority change and its
decision are one transaction; a cancel goes through the operator's lock
and git (a running task's agent is stopped), so it is recorded after: if
the process dies between the two, accepting again finds the task
cancelled already and only records the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from factory_tui.actors import Need
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator
from factory_tui.backends.plan_draft import SOURCE_PREFIX
from factory_tui.draft_model import Proposal, ProposalKind, ProposalState, is_proposal_id, normalize_proposal_id
from factory_tui.errors import InvalidInput
from factory_tui.model import Action, State, Task, normalize_task_id

# What the caller must be allowed, per item (the command's own need is ACCEPT).
Require = Callable[[Need, str], None]


@dataclass
class Decision:
    """One item decided: the proposal (None for a task), the task as it is
    now, and the line that says what happened."""

    item: str
    task: Task
    message: str
    proposal: Proposal | None = None

    def to_json(self) -> dict:
        data: dict = {"id": self.item, "message": self.message, "task": self.task.to_json()}
        if self.proposal is not None:
            data["proposal"] = self.proposal.to_json()
        return data


def item_id(text: str) -> str:
    """``P-3`` or ``T-3`` (a bare number is neither: say which)."""
    if is_proposal_id(text):
        return normalize_proposal_id(text)
    stripped = text.strip()
    if stripped[:1] in ("T", "t"):
        return normalize_task_id(stripped)
    raise InvalidInput(f"not a proposal or task id: {text!r} (write P-3 for a proposal, T-3 for a proposed task)")


def everything_pending(log: ExecutionLog) -> list[str]:
    """What ``--all`` decides on: the drafted tasks still proposed, then the
    pending proposals, oldest first."""
    tasks = [task.id for task in log.list_tasks([State.PROPOSED], bodies=False)
             if (task.source or "").startswith(SOURCE_PREFIX)]
    return tasks + [proposal.id for proposal in log.proposals([ProposalState.PENDING])]


class Decisions:
    def __init__(self, base: FactoryBase, log: ExecutionLog, *, actor: str, require: Require) -> None:
        self.base = base
        self.log = log
        self.actor = actor
        self.require = require

    def accept(self, item: str, *, note: str | None = None) -> Decision:
        item = item_id(item)
        if item.startswith("T-"):
            return self._task(item, Action.APPROVE, note)
        proposal = self.log.get_proposal(item)
        self._pending(proposal)
        task = self.log.get_task(proposal.task)
        why = f"{proposal.id}: {proposal.title}" + (f" ({note})" if note else "")
        if proposal.kind is ProposalKind.PRIORITY:
            self.require(Need.PRIORITY, proposal.task)
            if task.state is State.DONE:
                raise InvalidInput(f"{proposal.task} is done; its priority no longer matters "
                                   f"(decline {proposal.id}: factory plan decline {proposal.id})")
            with self.log.transaction():
                task = self.log.set_priority(proposal.task, proposal.value or 0, actor=self.actor)
                decided = self.log.decide_proposal(proposal.id, ProposalState.ACCEPTED, actor=self.actor, note=note)
            return Decision(item, task, f"{proposal.id} accepted: {task.id} priority → {task.priority}", decided)
        self.require(Need.CANCEL, proposal.task)
        if task.state is not State.CANCELLED:
            task = Operator(self.base, self.log).apply(task.id, Action.CANCEL, actor=self.actor, note=why).task
        decided = self.log.decide_proposal(proposal.id, ProposalState.ACCEPTED, actor=self.actor, note=note)
        return Decision(item, task, f"{proposal.id} accepted: {task.id} cancelled", decided)

    def decline(self, item: str, *, note: str | None = None) -> Decision:
        item = item_id(item)
        if item.startswith("T-"):
            return self._task(item, Action.CANCEL, note)
        proposal = self.log.get_proposal(item)
        self._pending(proposal)
        decided = self.log.decide_proposal(proposal.id, ProposalState.DECLINED, actor=self.actor, note=note)
        task = self.log.get_task(proposal.task)
        return Decision(item, task, f"{proposal.id} declined: {proposal.what} is not done", decided)

    def _task(self, task_id: str, action: Action, note: str | None) -> Decision:
        """A drafted task: only a proposed one (approving a task in review
        would merge it: that is ``factory task approve``'s)."""
        task = self.log.get_task(task_id)
        if task.state is not State.PROPOSED:
            raise InvalidInput(
                f"{task_id} is {task.state}, not proposed: plan accept and decline take proposed tasks "
                f"(see factory task {action.value})"
            )
        self.require(Need(action.value), task_id)
        outcome = Operator(self.base, self.log).apply(task_id, action, actor=self.actor, note=note)
        verb = "approved" if action is Action.APPROVE else "cancelled"
        return Decision(task_id, outcome.task, f"{task_id} {verb}: {outcome.task.state}")

    @staticmethod
    def _pending(proposal: Proposal) -> None:
        if proposal.state is not ProposalState.PENDING:
            raise InvalidInput(f"{proposal.id} was {proposal.state} already (by {proposal.decided_by})")
