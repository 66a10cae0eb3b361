"""What the operator's task commands do in the console.

Every place a task is shown (the Plan, the Worktrees pane, the Log, the task
and run screens, the palette) posts a ``TaskCommand``; the app hands it to
``TaskActions``, which asks first where it must (cancel, re-queue with a
note), acts through the session in a worker, and says what happened. Opening
a task, its run, or a shell or editor in its worktree is here too: it is the
same "this task, do that" from wherever the operator is.

A task approved on its run screen keeps the review going: once the merge has
landed, the screen shows the next task in review (its diff), in the Plan's
order (priority, then id), or goes back to the dashboard when none is left.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from factory_tui.backends.base import task_branch
from factory_tui.errors import FactoryError
from factory_tui.messages import Command, TaskCommand, TaskDetailLoaded, WorktreesChanged
from factory_tui.model import Action, State, Task, next_state
from factory_tui.screens.dialogs import ConfirmDialog, NoteDialog
from factory_tui.text import literal, one_line
from factory_tui.worktree_shell import editor_argv, operator_environment, runnable, shell_argv

if TYPE_CHECKING:
    from factory_tui.app import FactoryApp
    from factory_tui.backends.operator import Outcome
    from factory_tui.screens.run import RunScreen
    from factory_tui.screens.task import TaskScreen


class TaskActions:
    def __init__(self, app: FactoryApp) -> None:
        self.app = app

    # --- dispatch ---------------------------------------------------------------

    def handle(self, message: TaskCommand) -> None:
        app = self.app
        task = app.task_by_id(message.task_id)
        if task is None:
            app.notify(f"no such task: {message.task_id}", severity="error", markup=False)
            return
        command = message.command
        if command is Command.OPEN:
            self.open_task(task.id)
        elif command is Command.OPEN_RUN:
            self.open_run(task.id)
        elif command is Command.OPEN_DIFF:
            self.open_run(task.id, tab="diff")
        elif command in (Command.SHELL, Command.EDITOR):
            self.open_in_worktree(task.id, command)
        elif command in (Command.PRIORITY_UP, Command.PRIORITY_DOWN):
            step = 1 if command is Command.PRIORITY_UP else -1
            self._run(self._set_priority, task.id, task.priority + step)
        else:
            self.act(task, command)

    def act(self, task: Task, command: Command) -> None:
        """An operator action: refused at once if the state does not allow
        it, confirmed first where it must be, then carried out."""
        app = self.app
        action = command.action
        if action is Action.HOLD and task.state is State.HELD:
            action = Action.RELEASE
        assert action is not None
        try:
            next_state(task.id, task.state, action)
        except FactoryError as error:
            app.notify(str(error), severity="warning", markup=False)
            return
        title = one_line(task.title, 70)

        def requeue(note: str | None) -> None:
            if note is not None:  # None: the dialog was dismissed
                self.apply(task.id, action, note.strip() or None)

        def cancel(yes: bool | None) -> None:
            if yes:
                self.apply(task.id, action, None)

        if action is Action.REQUEUE:
            app.push_screen(
                NoteDialog(
                    f"Re-queue {task.id}: {title}",
                    "Feedback for the agent's next attempt (optional; it goes into the prompt).",
                    placeholder="What to do differently…",
                    submit="Re-queue",
                ),
                requeue,
            )
        elif action is Action.CANCEL:
            if task.state is State.RUNNING:
                detail = f"Its agent is stopped and its work committed to {task_branch(task.id)}; r re-queues it."
            elif task.attempts:
                detail = f"Its work stays on {task_branch(task.id)}; r re-queues it."
            else:
                detail = "It never ran; r re-queues it."
            app.push_screen(
                ConfirmDialog(f"Cancel {task.id}: {title}?", detail, yes="Cancel task"),
                cancel,
            )
        else:
            then = self._review_goes_on(task) if action is Action.APPROVE else None
            self.apply(task.id, action, None, then=then)

    def apply(self, task_id: str, action: Action, note: str | None, *,
              then: Callable[[Outcome], object] | None = None) -> None:
        """Carry out ``action`` in a worker; ``then`` runs on the app's loop
        with its outcome once it took effect (not when it was refused)."""
        self._run(self._apply, task_id, action, note, then)

    def act_on_many(self, task_ids: Sequence[str], command: Command, *, done: Callable[[], None] | None = None) -> None:
        """One operator action on several tasks (the rows marked with
        space): the tasks whose state does not allow it are skipped, with
        one line naming them; cancel asks once and re-queue takes one note
        for all, each naming how many; then one worker acts on each in
        turn (approvals merge one after the other) and reports each task's
        own outcome. ``done`` is called once the operator went ahead (not
        when a question was answered no)."""
        app = self.app
        wanted: list[tuple[Task, Action]] = []
        skipped: list[str] = []
        for task_id in dict.fromkeys(task_ids):
            task = app.task_by_id(task_id)
            if task is None:
                skipped.append(f"{task_id} (unknown)")
                continue
            action = command.action
            assert action is not None, command
            if action is Action.HOLD and task.state is State.HELD:
                action = Action.RELEASE
            try:
                next_state(task.id, task.state, action)
            except FactoryError:
                skipped.append(f"{task.id} ({task.state.value})")
                continue
            wanted.append((task, action))

        def names(found: list[str], most: int = 8) -> str:
            return ", ".join(found[:most]) + (f" and {len(found) - most} more" if len(found) > most else "")

        verb = {Command.HOLD: "hold or release"}.get(command, command.value.replace("requeue", "re-queue"))
        if skipped:
            what = "1 task" if len(skipped) == 1 else f"{len(skipped)} tasks"
            app.notify(
                f"Skipped {what} whose state does not allow {verb}: {names(skipped)}",
                severity="warning", timeout=6, markup=False,
            )
        if not wanted:
            return
        count = "1 task" if len(wanted) == 1 else f"{len(wanted)} tasks"
        ids = names([task.id for task, _ in wanted])

        def apply_each(actions: list[tuple[str, Action]], note: str | None) -> None:
            """In a worker: each task in turn (approvals merge one after the
            other); one notification with a line per task."""
            lines: list[str] = []
            troubled = 0
            for task_id, action in actions:
                try:
                    outcome = app.session.apply(task_id, action, actor=app.actor, note=note)
                except FactoryError as error:
                    troubled += 1
                    text = str(error)
                    lines.append(text if text.startswith(task_id) else f"{task_id}: {text}")
                    continue
                troubled += bool(outcome.warning)
                lines.append(outcome.message)
            past = {Command.APPROVE: "Approved", Command.REQUEUE: "Re-queued", Command.CANCEL: "Cancelled"}
            title = f"{past.get(command, 'Held or released')} {len(actions) - troubled} of {len(actions)}"
            app.notify(
                literal("\n".join(lines)), title=title, severity="warning" if troubled else "information",
                timeout=8 if troubled else 5, markup=False,
            )
            app.post_message(WorktreesChanged(tuple(task_id for task_id, _ in actions)))

        def go(note: str | None) -> None:
            if done is not None:
                done()
            self._run(apply_each, [(task.id, action) for task, action in wanted], note)

        def noted(note: str | None) -> None:
            if note is not None:
                go(note.strip() or None)

        def answered(yes: bool | None) -> None:
            if yes:
                go(None)

        if command is Command.REQUEUE:
            app.push_screen(
                NoteDialog(
                    f"Re-queue {count}: {ids}",
                    "Feedback for every one of them (optional; it goes into each prompt).",
                    placeholder="What to do differently…",
                    submit=f"Re-queue {count}",
                ),
                noted,
            )
        elif command is Command.CANCEL:
            running = [task.id for task, _ in wanted if task.state is State.RUNNING]
            ran = [task.id for task, _ in wanted if task.attempts and task.state is not State.RUNNING]
            parts = []
            if running:
                parts.append(f"The agents of {names(running)} are stopped, their work committed to their branches.")
            if ran:
                parts.append(f"The work of {names(ran)} stays on their branches.")
            detail = " ".join([*parts, "r re-queues a task."])
            app.push_screen(
                ConfirmDialog(f"Cancel {count}: {ids}?", detail, yes=f"Cancel {count}"),
                answered,
            )
        else:
            go(None)

    # --- in workers -----------------------------------------------------------------

    def _run(self, function, *args) -> None:
        self.app.run_worker(lambda: function(*args), thread=True, group="actions", exit_on_error=False)

    def _apply(self, task_id: str, action: Action, note: str | None,
               then: Callable[[Outcome], object] | None = None, force: bool = False) -> None:
        from factory_tui.backends.qa_checks import QaNotPassed

        app = self.app
        # Through the session's operator: approving a task in review merges it.
        try:
            outcome = app.session.apply(task_id, action, actor=app.actor, note=note, force=force)
        except QaNotPassed as refused:
            # The operator may still approve: with a note saying why, kept
            # in the log as an override.
            app.call_from_thread(self._offer_forced_approve, task_id, str(refused), then)
            return
        if outcome.warning:
            app.notify(literal(outcome.message), severity="warning", timeout=8, markup=False)
        else:
            app.notify(literal(outcome.message), timeout=4, markup=False)
        app.post_message(WorktreesChanged((task_id,)))
        if then is not None:
            app.call_from_thread(then, outcome)

    def _offer_forced_approve(self, task_id: str, why: str, then: Callable[[Outcome], object] | None) -> None:
        def answered(note: str | None) -> None:
            if note is None:
                return  # dismissed: nothing is approved
            if not note.strip():
                self.app.notify("Approving without QA needs a note saying why; nothing was approved.",
                                severity="warning", markup=False)
                return
            self._run(self._apply, task_id, Action.APPROVE, note.strip(), then, True)

        self.app.push_screen(
            NoteDialog(
                f"Approve {task_id} without its QA?",
                f"{why}. Approve anyway only with a note saying why; the override is kept in the log.",
                placeholder="Why it may be merged as it is…",
                submit="Approve anyway",
            ),
            answered,
        )

    # --- the review goes on ----------------------------------------------------------

    def _review_goes_on(self, task: Task) -> Callable[[Outcome], object] | None:
        """For a task in review approved on its own run screen: what to do
        once it is merged (show the next task in review, or the dashboard)."""
        from factory_tui.screens.run import RunScreen

        screen = self.app.top_screen
        if task.state is not State.REVIEW or not isinstance(screen, RunScreen) or screen.task_id != task.id:
            return None

        async def after(outcome: Outcome) -> None:
            await self.review_next(screen, task)

        return after

    def next_in_review(self, after: Task) -> Task | None:
        """The task in review that follows ``after`` in the Plan's order
        (priority, then id), else the first one; None when none is left."""
        waiting = sorted(
            (t for t in self.app.all_tasks() if t.state is State.REVIEW and t.id != after.id),
            key=_plan_order,
        )
        later = [t for t in waiting if _plan_order(t) > _plan_order(after)]
        chosen = later or waiting
        return chosen[0] if chosen else None

    async def review_next(self, screen: RunScreen, approved: Task) -> None:
        app = self.app
        if app.top_screen is not screen:
            return  # the operator went elsewhere meanwhile: leave them there
        following = self.next_in_review(approved)
        while len(app.screen_stack) > 1:
            await app.pop_screen()
        if following is None:
            app.notify("No other task waits for review: back to the dashboard.", timeout=5, markup=False)
            return
        app.notify(f"Next in review: {following.id} {one_line(following.title, 60)}", timeout=5, markup=False)
        self.open_run(following.id, tab="diff")

    def _set_priority(self, task_id: str, priority: int) -> None:
        self.app.session.set_priority(task_id, priority, actor=self.app.actor)

    # --- opening things ---------------------------------------------------------------
    #
    # The task and run screens (markdown, syntax highlighting) are a tenth
    # of a second of imports: imported when first opened, or by ``warm_up``
    # once the dashboard is drawn, so that they cost the first frame nothing.

    @staticmethod
    def warm_up() -> None:
        """Import the screens ahead of their first use (a worker)."""
        import factory_tui.screens.run  # noqa: F401
        import factory_tui.screens.task  # noqa: F401

    def open_task(self, task_id: str) -> None:
        from factory_tui.screens.task import TaskScreen

        screen = TaskScreen(task_id)
        self.app.push_screen(screen)
        self.load_detail(screen)

    def load_detail(self, screen: TaskScreen) -> None:
        app = self.app
        app.run_worker(
            lambda: screen.post_message(TaskDetailLoaded(app.session.task_detail(screen.task_id))),
            thread=True, group="detail", exit_on_error=False,
        )

    def open_run(self, task_id: str, *, tab: str = "transcript") -> None:
        """The run screen of the task's latest attempt, on ``tab``
        (``transcript`` or ``diff``)."""
        from factory_tui.screens.run import RunScreen

        app = self.app
        task = app.task_by_id(task_id)
        attempt = task.attempts if task else 0
        base = app.base
        app.push_screen(
            RunScreen(
                task_id,
                title=task.title if task else "",
                transcript=base.transcript_path(task_id, attempt) if attempt else None,
                worktree=base.worktree_path(task_id),
                branch=task_branch(task_id),
                attempt=attempt or None,
                tab=tab,
            )
        )

    def open_in_worktree(self, task_id: str, command: Command) -> None:
        """A shell or $EDITOR in the worktree; the console suspends until it
        exits, then comes back. ``factory`` run there works on this base."""
        app = self.app
        worktree: Path = app.base.worktree_path(task_id)
        if not worktree.is_dir():
            app.notify(f"{task_id} has no worktree folder.", severity="warning", markup=False)
            return
        env = operator_environment(app.base.root)
        try:
            argv = runnable(shell_argv(env) if command is Command.SHELL else editor_argv(env), env)
        except FactoryError as error:
            app.notify(literal(str(error)), severity="error", markup=False)
            return
        try:
            with app.suspend():
                subprocess.run(argv, cwd=worktree, env=env, check=False)
        except Exception as error:  # no terminal to hand over (tests, headless)
            app.notify(literal(f"cannot open {argv[0]} here: {error}"), severity="error", markup=False)


def _plan_order(task: Task) -> tuple[int, int]:
    # As the Plan lists a state's tasks: higher priority first, then by id.
    return (-task.priority, task.seq)
