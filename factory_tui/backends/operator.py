"""What an operator's action does beyond the log: approving a task in review
merges its branch into the base branch and removes its worktree; cancelling a
task that is not running tidies its worktree away (the branch is kept).

The console and the CLI both act through ``Operator``, so the two can never
disagree about what "approve" means.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktrees import MergeConflict, Worktrees
from factory_tui.errors import FactoryError
from factory_tui.model import Action, State, Task, next_state


def worktree_status(state: State | None) -> str:
    """What a worktree is for, from its task's state: ``running``,
    ``review``, ``failed``, ``waiting`` (queued again, work kept) or
    ``orphaned`` (no task owns it any more)."""
    if state is State.RUNNING:
        return "running"
    if state is State.REVIEW:
        return "review"
    if state is State.FAILED:
        return "failed"
    if state in (State.QUEUED, State.HELD, State.PROPOSED):
        return "waiting"
    return "orphaned"


class MergeFailed(FactoryError):
    """Approving found a conflict: the task is failed now, its branch intact."""


@dataclass
class Outcome:
    task: Task
    message: str


class Operator:
    def __init__(self, base: FactoryBase, log: ExecutionLog) -> None:
        self.base = base
        self.log = log
        self._worktrees: Worktrees | None = None

    @property
    def worktrees(self) -> Worktrees:
        if self._worktrees is None:
            config = self.base.config()
            self._worktrees = Worktrees(
                self.base.root,
                base_branch=config.base_branch,
                merge=config.merge,
                copy=config.worktree_copy,
                setup=config.worktree_setup,
            )
        return self._worktrees

    def apply(self, task_id: str, action: Action, *, actor: str, note: str | None = None) -> Outcome:
        task = self.log.get_task(task_id)
        before = task.state
        # Refuse an illegal move before touching git.
        next_state(task_id, before, Action(action))
        if action is Action.APPROVE and before is State.REVIEW:
            return self._approve_review(task, actor=actor, note=note)
        after = self.log.apply(task_id, action, actor=actor, note=note)
        message = f"{task_id}: {before} → {after.state}"
        if action is Action.CANCEL and before is not State.RUNNING and self._has_worktree(task_id):
            # A running task's worktree is the engine's to tidy once its agent stopped.
            self.worktrees.remove(task_id)
            message += f"; its work stays on {self.worktrees.branch_for(task_id)}"
        return Outcome(after, message)

    def _has_worktree(self, task_id: str) -> bool:
        return self.worktrees.path_for(task_id).exists()

    def _has_branch(self, task_id: str) -> bool:
        return self.worktrees.has_branch(task_id)

    def _approve_review(self, task: Task, *, actor: str, note: str | None) -> Outcome:
        task_id = task.id
        branch = self.worktrees.branch_for(task_id)
        if not self._has_branch(task_id):
            done = self.log.apply(task_id, Action.APPROVE, actor=actor, note=note or f"nothing to merge: no branch {branch}")
            return Outcome(done, f"{task_id}: review → done (no branch to merge)")
        try:
            sha = self.worktrees.merge(task_id, f"Merge {task_id}: {task.title}")
        except MergeConflict as conflict:
            files = ", ".join(conflict.files) or "unknown files"
            self.log.reject_merge(
                task_id,
                actor=actor,
                note=f"merge conflict with {self.worktrees.base_branch} in {files}; re-queue it to have them resolved",
                data={"conflicts": conflict.files},
            )
            raise MergeFailed(
                f"cannot merge {task_id}: conflict with {self.worktrees.base_branch} in {files}; "
                f"it is failed now and {branch} is as it was"
            ) from None
        done = self.log.apply(
            task_id, Action.APPROVE, actor=actor,
            note=note or f"merged {branch} into {self.worktrees.base_branch} at {sha[:10]}",
        )
        self.worktrees.remove(task_id, delete_branch=True)
        return Outcome(done, f"{task_id}: review → done, merged into {self.worktrees.base_branch} at {sha[:10]}")
