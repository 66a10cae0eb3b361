"""What an operator's action does beyond the log: approving a task in review
merges its branch into the base branch and removes its worktree; cancelling a
task that is not running tidies its worktree away (the branch is kept);
cleaning removes the worktree of a task that needs it no more.

The console and the CLI both act through ``Operator``, so the two can never
disagree about what "approve" means.

Every action holds the base's operator lock (``locks.OperatorLock``) from its
state check, through its git work, to its log write, so that actions from
different processes (the CLI, the console, scripts) never interleave: an
approval either lands and is recorded, or is refused before git is touched;
a second approval waits for the first and then lands on the moved base.

An approval whose merge must be checked again (the base branch moved since
the task's QA) runs those tests before it takes the lock, on a merge commit
made aside (``qa_checks.trial_merge``), so that other actions do not wait
for a test run; under the lock the merge that lands must be that very one
(``qa_checks.same_merge``), else it is checked again, a few times at most.

Once a merge is made the task is done: a worktree that cannot be removed
afterwards is a warning in the log and a cleanup to retry, not a failure.
A branch the plan did not make (an earlier plan's ``factory/T-1``) is never
merged.

A task that lands gets its entry in the session history, in the very
transaction that makes it done (``landings.py`` gathers it before the
merge); the history file and the living documents' refresh follow, still
under the lock (a failure there is a warning: the task has landed).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factory_tui.artifacts_model import Landing
from factory_tui.backends import qa_checks
from factory_tui.backends.aside import Aside
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import OperatorLock
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.qa_checks import MergeMoved, RecheckFailed
from factory_tui.backends.worktrees import BranchCollision, MergeConflict, UncommittedLook, Worktrees
from factory_tui.errors import FactoryError, InvalidInput, UnknownTask
from factory_tui.model import (
    BRANCH_START_UNRECORDED,
    Action,
    State,
    Task,
    WorktreeStatus,
    next_state,
    worktree_status,
)

if TYPE_CHECKING:
    from factory_tui.backends.landings import AfterLanding


def plan_owns_branch(worktrees: Worktrees, task: Task) -> bool:
    """Whether the task's branch is the one its plan made: the log recorded
    the commit the branch started at (``Task.branch_start``) and the branch
    still grows from it. A log that keeps no such record (older than the
    column) marked the tasks that had run as ``unrecorded``: trusted."""
    start = task.branch_start
    if start == BRANCH_START_UNRECORDED:
        return True
    return start is not None and worktrees.branch_descends_from(task.id, start)


# How often an approval checks its merge again because the base branch
# moved while the tests ran, before it gives up.
RECHECK_ROUNDS = 3


class MergeFailed(FactoryError):
    """Approving found a conflict: the task is failed now, its branch intact."""


@dataclass
class Outcome:
    task: Task
    message: str
    # Set when the action took effect but its tidy-up did not (the message
    # says it too): the console shows it as a warning.
    warning: str | None = None
    # An approval that merged: the base branch's commit after the merge.
    merge_commit: str | None = None


class Operator:
    """``owns(task)`` says whether the task's branch is its plan's own
    (default: ``plan_owns_branch``); approving a branch that is not is
    refused."""

    def __init__(
        self,
        base: FactoryBase,
        log: ExecutionLog,
        *,
        owns: Callable[[Task], bool] | None = None,
        worktrees: Worktrees | None = None,
    ) -> None:
        self.base = base
        self.log = log
        self.lock = OperatorLock(base.dir)
        self._owns = owns
        self._worktrees = worktrees

    @property
    def worktrees(self) -> Worktrees:
        if self._worktrees is None:
            self._worktrees = Worktrees.for_config(self.base.root, self.base.config())
        return self._worktrees

    def apply(
        self, task_id: str, action: Action, *, actor: str, note: str | None = None, force: bool = False,
    ) -> Outcome:
        """``force`` (approve of a task in review only, with a ``note``
        saying why): approve although its required QA has not passed on its
        head, and without checking the merge again; the override is a
        ``warning`` event."""
        action = Action(action)
        if force and action is not Action.APPROVE:
            raise InvalidInput(f"--force is for approve, not {action.value}")
        if force and not (note and note.strip()):
            raise InvalidInput("--force needs --note WHY: the override is kept in the log with its reason")
        if action is Action.APPROVE and not force:
            for _ in range(RECHECK_ROUNDS):
                # The tests of a merge run outside the lock; RecheckFailed
                # when they fail.
                checked = self._check_merge_aside(task_id, actor=actor)
                try:
                    return self._apply(task_id, action, actor=actor, note=note, force=force, checked=checked)
                except MergeMoved:
                    continue
            raise MergeMoved(
                f"cannot approve {task_id}: {self.worktrees.base_branch} kept moving while its merge was "
                f"checked; nothing merged, approve again"
            )
        return self._apply(task_id, action, actor=actor, note=note, force=force)

    def _apply(self, task_id: str, action: Action, *, actor: str, note: str | None, force: bool,
               checked: str | None = None) -> Outcome:
        with self.lock.held(f"{action.value} {task_id}"):
            # Read under the lock: nobody else's action can change the task
            # between this check and our log write.
            task = self.log.get_task(task_id)
            before = task.state
            # Refuse an illegal move before touching git.
            next_state(task_id, before, action)
            if action is Action.APPROVE and before is State.REVIEW:
                return self._approve_review(task, actor=actor, note=note, force=force, checked=checked)
            after = self.log.apply(task_id, action, actor=actor, note=note)
            message = f"{task_id}: {before} → {after.state}"
            warning = None
            if action is Action.CANCEL:
                if before is not State.RUNNING and self._has_worktree(task_id):
                    # A running task's worktree is the engine's to tidy once its agent stopped.
                    warning = self._remove_worktree(task_id, actor=actor, delete_branch=False)
                if warning is None:
                    message += self._cancelled_work(task_id, before)
            return Outcome(after, message + (f"; {warning}" if warning else ""), warning)

    def cancel_detail(self, task: Task) -> str:
        """What cancelling ``task`` does to its work, for the question the
        console asks first: a task that never ran has no branch to mention."""
        branch = self.worktrees.branch_for(task.id)
        if task.state is State.RUNNING:
            return f"Its agent is stopped and its work committed to {branch}; re-queueing it goes on from there."
        if self._has_branch(task.id):
            return f"Its work stays on {branch}; re-queueing it goes on from there."
        return "It never ran, so it has no work to keep; it can be re-queued later."

    def _cancelled_work(self, task_id: str, before: State) -> str:
        """The end of a cancel's message: where the work is, if there is any."""
        branch = self.worktrees.branch_for(task_id)
        if before is State.RUNNING:
            return f"; its agent is being stopped and its work committed to {branch}"
        if self._has_branch(task_id):
            return f"; its work stays on {branch}"
        return ""

    def clean(self, task_id: str) -> str:
        """Remove the worktree of a task that needs it no more (done,
        cancelled, or unknown to the log), its leftovers committed first; a
        done task's merged branch goes too. This is the retry for a worktree
        that could not be removed when its task was approved or cancelled.
        Refused for a task that still needs its worktree."""
        worktrees = self.worktrees
        with self.lock.held(f"clean the worktree of {task_id}"):
            try:
                task: Task | None = self.log.get_task(task_id)
            except UnknownTask:
                task = None
            if task is not None and worktree_status(task.state) is not WorktreeStatus.ORPHANED:
                raise FactoryError(
                    f"{task_id} is {task.state} now and needs its worktree; it was left as it is"
                )
            worktrees.remove(task_id, delete_branch=task is not None and task.state is State.DONE)
        return f"{task_id}: worktree removed"

    def _has_worktree(self, task_id: str) -> bool:
        return self.worktrees.path_for(task_id).exists()

    def _has_branch(self, task_id: str) -> bool:
        return self.worktrees.has_branch(task_id)

    def _owned(self, task: Task) -> bool:
        if self._owns is not None:
            return self._owns(task)
        return plan_owns_branch(self.worktrees, task)

    def _approve_review(self, task: Task, *, actor: str, note: str | None, force: bool = False,
                        checked: str | None = None) -> Outcome:
        task_id = task.id
        worktrees = self.worktrees
        branch = worktrees.branch_for(task_id)
        if not self._has_branch(task_id):
            done = self.log.apply(task_id, Action.APPROVE, actor=actor, note=note or f"nothing to merge: no branch {branch}",
                                  landing=self._landing(task, actor=actor))
            return self._landed(Outcome(done, f"{task_id}: review → done (no branch to merge)"), actor=actor)
        if not self._owned(task):
            raise self._refused(task_id, actor, BranchCollision(
                f"cannot approve {task_id}: {branch} is not the branch this plan made for it "
                f"(an earlier plan's?); nothing merged. Rename it (`git branch -m {branch} old/{task_id}`) "
                f"or delete it, then re-queue {task_id}"
            ))
        # Whether the agent left work uncommitted (it goes into the merge):
        # git looks in its own thread while QA's standing and the landing
        # are read from the log. Under the lock, as the merge itself.
        looked = worktrees.look_for_uncommitted(task_id)
        try:
            return self._merge_and_record(task, actor=actor, note=note, force=force, checked=checked, looked=looked)
        finally:
            if looked is not None:
                # Never left running behind a refusal, after the lock is gone.
                with contextlib.suppress(Exception):
                    looked.result()

    def _merge_and_record(self, task: Task, *, actor: str, note: str | None, force: bool, checked: str | None,
                          looked: UncommittedLook | None) -> Outcome:
        task_id = task.id
        worktrees = self.worktrees
        base_branch = worktrees.base_branch
        branch = worktrees.branch_for(task_id)
        check = self._qa_before_merge(task, actor=actor, note=note, force=force, checked=checked)
        # Gathered from the log while git merges (never raising: a log that
        # cannot say more gives the title alone), so that once the merge
        # has landed, nothing may keep the approval from being recorded.
        gathering = Aside(lambda: self._landing(task, actor=actor), name="landing")
        try:
            try:
                landed = worktrees.land(task_id, _merge_message(task), check=check, looked=looked)
            finally:
                landing = gathering.result()
        except (RecheckFailed, MergeMoved):
            raise  # its report is a warning event already / checked again outside the lock
        except MergeConflict as conflict:
            files = ", ".join(conflict.files) or "unknown files"
            self.log.reject_merge(
                task_id,
                actor=actor,
                note=f"merge conflict with {base_branch} in {files}; re-queue it to have them resolved",
                data={"failure": "conflict", "reason": f"merge conflict with {base_branch} in {files}",
                      "conflicts": conflict.files, "base_branch": base_branch},
            )
            raise MergeFailed(
                f"cannot merge {task_id}: conflict with {base_branch} in {files}; "
                f"it is failed now and {branch} is as it was"
            ) from None
        except FactoryError as error:
            # Refused without a change (your uncommitted or untracked files
            # in the way, a rebase in progress …): the task stays in review,
            # and the log says why, not only the one who pressed the key.
            raise self._refused(task_id, actor, error) from None
        sha = landed.sha

        def record() -> tuple[Task, AfterLanding]:
            done = self.log.apply(
                task_id, Action.APPROVE, actor=actor,
                note=note or f"merged {branch} into {base_branch} at {sha[:10]}",
                # The whole sha, for whoever needs the commit rather than a
                # line to read (the outcome reply to a request).
                data={"merge_commit": sha, "base_branch": base_branch},
                landing=dataclasses.replace(landing, commit=sha),
            )
            return done, self._after_landing(actor=actor)

        # The log records the landing and the history is written from it
        # (a thread of their own) while git removes the worktree here:
        # neither needs the other, and git's process is started first. The
        # branch goes once the landing is recorded: an approval the log
        # could not record finds the branch again. A failed removal's
        # warning is written once both are done.
        recording = Aside(record, name="landing")
        failed = self._try_remove(task_id, delete_branch=False) if landed.kept is None else None
        try:
            done, after = recording.result()
        except FactoryError as error:
            # The merge stands; approving again finds it made and records it.
            raise FactoryError(
                f"{task_id} was merged into {base_branch} at {sha[:10]} but the log could not "
                f"record it ({error}); approve {task_id} again to record it"
            ) from None
        message = f"{task_id}: review → done, merged into {base_branch} at {sha[:10]}"
        if landed.kept is not None:
            # What was found in the worktree did not land with the rest:
            # the worktree and the branch stay, and the log says why.
            failed = FactoryError(landed.kept)
        elif failed is None:
            try:
                worktrees.delete_merged_branch(task_id)
            except FactoryError as error:
                failed = error
        warning = self._removal_warning(task_id, failed, actor=actor) if failed is not None else None
        return self._told(Outcome(done, message + (f"; {warning}" if warning else ""), warning, merge_commit=sha),
                          after)

    # --- the session history ----------------------------------------------------

    def _landing(self, task: Task, *, actor: str) -> Landing:
        """The task's entry in the session history; a log that cannot say
        more than its title leaves the rest out rather than the landing."""
        from factory_tui.backends.landings import gather_landing

        try:
            return gather_landing(self.base, self.log, task, actor=actor, commit=None)
        except (FactoryError, OSError):
            return Landing(task_id=task.id, title=task.title, at=0.0, actor=actor, attempts=task.attempts)

    def _landed(self, outcome: Outcome, *, actor: str) -> Outcome:
        """After a landing: history.md written, the refresh task proposed
        when due; what that says goes with the outcome's message (what went
        wrong as its warning too)."""
        return self._told(outcome, self._after_landing(actor=actor))

    def _after_landing(self, *, actor: str) -> AfterLanding:
        from factory_tui.backends.landings import after_landing

        return after_landing(self.base, self.log, actor=actor)

    @staticmethod
    def _told(outcome: Outcome, after: AfterLanding) -> Outcome:
        told = after.lines()
        if not told:
            return outcome
        warning = "; ".join(filter(None, [outcome.warning, *after.warnings])) or None
        return dataclasses.replace(outcome, message=outcome.message + "; " + "; ".join(told), warning=warning)

    # --- QA's say -------------------------------------------------------------

    def _check_merge_aside(self, task_id: str, *, actor: str) -> str | None:
        """Before the lock: when approving ``task_id`` needs its merge
        checked again, make that merge aside and run the required tests on
        it (RecheckFailed if one blocks); the commit checked, or None when
        nothing was (no check needed, or what refuses it is found again
        under the lock: a conflict, QA not passed, a task not in review)."""
        scenarios = qa_checks.valid_scenarios(self.base)
        if not scenarios:
            return None  # no QA here: nothing to check before the lock (the usual case, a folder's look)
        try:
            task = self.log.get_task(task_id)
        except FactoryError:
            return None
        worktrees = self.worktrees
        if task.state is not State.REVIEW or not self._has_branch(task_id) or not self._owned(task):
            return None
        found = self._qa_standing(task_id, scenarios)
        if found is None:
            return None
        head, scenarios, standing = found
        if standing is None or not standing.passed:
            return None
        tests = qa_checks.required_tests(scenarios, standing.required)
        base_sha = worktrees.base_head()
        if not tests or base_sha == standing.base_commit or base_sha == head:
            return None
        if worktrees.merge_mode == "ff" and qa_checks.merge_base(self.base.root, base_sha, head) == base_sha:
            return None  # a fast-forward lands the head QA passed as it is
        merge_commit = qa_checks.trial_merge(self.base.root, base_sha, head, _merge_message(task))
        if merge_commit is None:
            return None
        self._recheck(task, tests, merge_commit=merge_commit, base_sha=base_sha, actor=actor)
        return merge_commit

    def _qa_standing(self, task_id: str, scenarios: list | None = None):
        """The task's branch head, the valid scenarios (read unless given),
        and where its QA stands on that head; None when it has no branch head."""
        head = self.worktrees.branch_head(task_id)
        if head is None:
            return None
        if scenarios is None:
            scenarios = qa_checks.valid_scenarios(self.base)
        return head, scenarios, qa_checks.standing(self.log, self.base, task_id, head=head,
                                                   base_branch=self.worktrees.base_branch, scenarios=scenarios)

    def _qa_before_merge(
        self, task: Task, *, actor: str, note: str | None, force: bool, checked: str | None = None,
    ) -> Callable[[str, str], str | None] | None:
        """Refuse (QaNotPassed) a task whose required QA has not passed on
        its branch head, unless forced; return the check a merge commit must
        pass before it lands (None: no check needed). ``checked``: the
        merge commit whose tests passed outside the lock; the merge must be
        the same (MergeMoved when it is not: checked again, lock let go)."""
        worktrees = self.worktrees
        task_id = task.id
        found = self._qa_standing(task_id)
        if found is None:
            return None
        head, scenarios, standing = found
        if standing is None or not standing.required:
            return None  # no QA for this change: approved as before
        branch = worktrees.branch_for(task_id)
        if force:
            if not standing.passed:
                checked = standing.checked[:7] if standing.checked else "never checked"
                self.log.add_warning(
                    task_id,
                    f"approved by force: QA had not passed on {branch}'s head {head[:7]} "
                    f"(checked: {checked}); why: {note}",
                    actor=actor,
                    data={"forced": Action.APPROVE.value, "reason": note, "head": head,
                          "checked_commit": standing.checked, "missing": list(standing.missing)},
                )
            return None
        if not standing.passed:
            checked = f"checked: {standing.checked[:7]}" if standing.checked else "never checked"
            raise self._refused(task_id, actor, qa_checks.QaNotPassed(
                f"{task_id}: QA has not passed on {branch}'s head {head[:7]} ({checked}); "
                f"run `factory qa run --task {task_id}`, or approve with --force --note WHY"
            ))
        tests = qa_checks.required_tests(scenarios, standing.required)
        if not tests:
            return None

        def recheck(merge_commit: str, base_sha: str) -> str | None:
            # The merge holds just what QA passed when the base has not
            # moved since: nothing new to check.
            if base_sha == standing.base_commit:
                return None
            if checked is not None and qa_checks.same_merge(self.base.root, checked, merge_commit):
                return checked  # lands instead: the commit the tests ran on
            raise MergeMoved(f"{task_id}: its merge changed after it was checked")

        return recheck

    def _recheck(self, task: Task, tests: list, *, merge_commit: str, base_sha: str, actor: str) -> None:
        """Run the required tests on the merge commit; RecheckFailed (and
        the full report as a warning event) if one blocks."""
        task_id = task.id
        results = qa_checks.run_scenarios(
            self.base, tests, commit=merge_commit, base_commit=base_sha, task_id=task_id,
            attempt=max(1, task.attempts), task_title=task.title, task_body=task.body,
            watch=qa_checks.guarded_refs(self.worktrees, task_id)[0],
        )
        try:
            self.log.record_qa_on_demand(results, actor=actor, task_id=task_id, attempt=max(1, task.attempts))
        except FactoryError:
            pass  # the verdicts still decide; the log's trouble shows elsewhere
        blocking = [result for result in results if result.blocks]
        if not blocking:
            return
        base_branch = self.worktrees.base_branch
        report = "\n".join(qa_checks.verdict_line(result) for result in results)
        names = ", ".join(result.scenario for result in blocking)
        try:
            self.log.add_warning(
                task_id,
                f"approval failed, {task_id} stays in review: the merge with {base_branch} "
                f"({base_sha[:7]}) fails {names}; {base_branch} is untouched\n{report}",
                actor=actor,
                data={"refused": Action.APPROVE.value, "recheck": merge_commit, "base_commit": base_sha,
                      "results": [result.to_json() for result in results]},
            )
        except FactoryError:
            pass
        raise qa_checks.RecheckFailed(
            f"{task_id}: merged with {base_branch} as it is now ({base_sha[:7]}), it fails {names}; "
            f"{base_branch} is untouched and {task_id} stays in review (`factory log --task {task_id}` has the report)"
        )

    def _refused(self, task_id: str, actor: str, error: FactoryError) -> FactoryError:
        """An approval refused before anything changed: a ``warning`` event
        says why (the console's Log shows it, ``factory log`` prints it);
        returns the error, to be raised."""
        try:
            self.log.add_warning(
                task_id, f"approval refused, {task_id} stays in review: {error}", actor=actor,
                data={"refused": Action.APPROVE.value, "reason": str(error)},
            )
        except FactoryError:
            pass  # the log is unwell: the error itself still says why
        return error

    def _remove_worktree(self, task_id: str, *, actor: str, delete_branch: bool) -> str | None:
        """Remove the task's worktree after its action took effect. A
        failure does not undo the action: it becomes a warning in the log
        (returned, to be shown) and ``clean`` tries again later."""
        failed = self._try_remove(task_id, delete_branch=delete_branch)
        return self._removal_warning(task_id, failed, actor=actor) if failed is not None else None

    def _try_remove(self, task_id: str, *, delete_branch: bool) -> FactoryError | None:
        """git's part of ``_remove_worktree``, without the log: the error, or None."""
        try:
            self.worktrees.remove(task_id, delete_branch=delete_branch)
        except FactoryError as error:
            return error
        return None

    def _removal_warning(self, task_id: str, error: FactoryError, *, actor: str) -> str:
        """The log's part: the warning a failed removal leaves (returned)."""
        path = self.worktrees.path_for(task_id)
        warning = (
            f"its worktree stays at {path} ({error}); "
            f"`factory worktrees clean` removes it once that is sorted out"
        )
        try:
            self.log.add_warning(task_id, warning, actor=actor,
                                 data={"worktree": str(path), "error": str(error)})
        except FactoryError:
            pass  # the log is unwell; the outcome still says it
        return warning


def _merge_message(task: Task) -> str:
    return f"Merge {task.id}: {task.title}"
