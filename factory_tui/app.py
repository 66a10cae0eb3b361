"""The operator console: the dashboard of six panes over one factory base.

The app owns the backends, the embedded engine and every worker. Data
travels one way: a worker reads or writes the log (or runs git), posts a
message, and the app hands the result to a widget. Widgets post intents
(``TaskCommand``, ``WorktreeTable.Wanted``) and never touch SQLite or git.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState, get_current_worker

from factory_tui.actors import actor_name
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.feed import LogFeed
from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.backends.operator import Operator, worktree_status
from factory_tui.commands import FactoryCommands
from factory_tui.engine import EngineStatus
from factory_tui.engine_host import EngineHost
from factory_tui.errors import FactoryError
from factory_tui.filters import LogFilter
from factory_tui.messages import (
    LogChanged,
    NewTaskWanted,
    PlanLoaded,
    TaskCommand,
    TaskDetail,
    TaskDetailLoaded,
)
from factory_tui.model import Action, Event, NewTask, State, Task, next_state
from factory_tui.text import literal, one_line
from factory_tui.widgets.dialogs import ChoiceDialog, ConfirmDialog, NewTaskDialog, NoteDialog
from factory_tui.widgets.event_log import EventLog
from factory_tui.widgets.header import FactoryHeader
from factory_tui.widgets.help_screen import HelpScreen
from factory_tui.widgets.pane import ComingPane, Pane
from factory_tui.widgets.plan_table import PlanTable
from factory_tui.widgets.run_screen import RunScreen
from factory_tui.widgets.task_screen import TaskScreen
from factory_tui.widgets.worktree_table import WorktreeRow, WorktreeTable
from factory_tui.worktree_shell import editor_argv, operator_environment, shell_argv

POLL_SECONDS = 0.1
# Worktrees and their diff stats are read from git this often.
SCAN_SECONDS = 3.0


class EngineChanged(Message):
    def __init__(self, status: EngineStatus | None = None) -> None:
        super().__init__()
        self.status = status


class WorktreesScanned(Message):
    def __init__(self, rows: list[WorktreeRow]) -> None:
        super().__init__()
        self.rows = rows


class DiffLoaded(Message):
    def __init__(self, screen: RunScreen, files: list) -> None:
        super().__init__()
        self.screen = screen
        self.files = files


class EventsFetched(Message):
    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events


class FilterResult(Message):
    def __init__(self, log_filter: LogFilter, ids: array) -> None:
        super().__init__()
        self.log_filter = log_filter
        self.ids = ids


class TaskCreated(Message):
    def __init__(self, dialog: NewTaskDialog, task: Task) -> None:
        super().__init__()
        self.dialog = dialog
        self.task = task


class FactoryApp(App[None]):
    """The console over one base."""

    CSS_PATH = "app.tcss"
    TITLE = "factory"
    COMMANDS = App.COMMANDS | {FactoryCommands}

    PANE_NAMES = {1: "Plan", 2: "Worktrees", 3: "Artifacts", 4: "QA", 5: "Mail", 6: "Log"}
    # Below 120 columns the Plan takes more of the width (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Keys for the focused pane"),
        Binding("q", "quit", "Quit", show=False, id="app.quit"),
        Binding("z", "zoom", "Zoom pane", show=False, id="app.zoom", tooltip="Fill the screen with the focused pane, or back"),
        *(
            Binding(str(n), f"focus_pane({n})", f"Go to {name}", show=False, id=f"app.pane-{n}")
            for n, name in PANE_NAMES.items()
        ),
    ]

    def __init__(
        self,
        base: FactoryBase,
        *,
        bench_first_frame: bool = False,
        poll_seconds: float = POLL_SECONDS,
        engine: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.base = base
        self.with_engine = engine
        # What "now" is for elapsed times (pictures and tests fix it).
        self.clock = clock
        self.engine = EngineHost(base, on_status=lambda status: self.post_message(EngineChanged(status)))
        self._quitting = False
        # What the CLI prints once the console has gone.
        self.farewell: str | None = None
        self.bench_first_frame = bench_first_frame
        self.poll_seconds = poll_seconds
        self.actor = actor_name("console")
        self._execution_log: ExecutionLog | None = None
        self._operator: Operator | None = None
        self._reader: LogReader | None = None
        self._config = None
        self.plan_ready = False
        # Kept by reference: query_one looks only at the screen on top, and
        # the dashboard's widgets are needed under dialogs and task screens.
        self.plan = PlanTable(id="plan")
        self.event_log = EventLog(id="log")
        self.worktree_table = WorktreeTable(id="worktrees")
        self.header = FactoryHeader(id="header")

    # --- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        coming = {
            3: "Living documents from .factory/artifacts/ appear here.",
            4: "QA scenarios from .factory/qa/ appear here.",
            5: "Messages from other factories appear here.",
        }
        self.panes = {
            1: Pane(1, "Plan", self.plan, filterable=True, id="pane-1"),
            2: Pane(2, "Worktrees", self.worktree_table, id="pane-2"),
            **{
                n: Pane(n, self.PANE_NAMES[n], ComingPane(text, id=self.PANE_NAMES[n].lower()), id=f"pane-{n}")
                for n, text in coming.items()
            },
            6: Pane(6, "Log", self.event_log, filterable=True, id="pane-6"),
        }
        yield self.header
        with Horizontal(id="dashboard"):
            yield self.panes[1]
            with Vertical(id="right"):
                yield self.panes[2]
                with Horizontal(id="right-middle"):
                    yield self.panes[3]
                    yield self.panes[4]
                yield self.panes[5]
        yield self.panes[6]
        yield Footer()

    def on_mount(self) -> None:
        self.worktree_table.now = self.clock()
        self.plan.focus()
        self.follow_log()
        if self.with_engine:
            self.start_engine()
        else:
            self.header.engine = "engine: off"
        self.find_agent()
        self.scan_worktrees()
        self.set_interval(SCAN_SECONDS, self.scan_worktrees)
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        for backend in (self._execution_log, self._reader):
            if backend is not None:
                backend.close()

    # --- following the log -------------------------------------------------

    @work(thread=True, exclusive=True, group="feed", exit_on_error=False)
    def follow_log(self) -> None:
        """Open the log, send the first snapshot, then every change (from
        any process) within ``poll_seconds``."""
        worker = get_current_worker()
        self._config = self.base.config()
        feed = LogFeed(self.base.log_path)
        try:
            self._execution_log = ExecutionLog.open(self.base.log_path)
            # One for the console's life: a new one re-reads factory.toml and
            # reopens the repository, and the worktrees are scanned every 3 s.
            self._operator = Operator(self.base, self._execution_log)
            self._reader = LogReader(self.base.log_path)
            self.post_message(PlanLoaded(feed.snapshot()))
            failing = False
            while not worker.is_cancelled:
                time.sleep(self.poll_seconds)
                try:
                    changes = feed.poll()
                except FactoryError as error:
                    # Say so once, keep trying: the file may come back.
                    if not failing:
                        self.notify(str(error), severity="error", markup=False)
                    failing = True
                    time.sleep(1)
                    continue
                failing = False
                if changes:
                    self.post_message(LogChanged(changes))
        finally:
            feed.close()

    @on(PlanLoaded)
    def _plan_loaded(self, message: PlanLoaded) -> None:
        snapshot = message.snapshot
        header = self.header
        if self._config is not None:
            header.factory_name = self._config.name
            header.base_branch = self._config.base_branch
        self.plan.load(snapshot.tasks)
        self.event_log.load(snapshot.event_ids, snapshot.recent_events)
        self._update_counts()
        self.plan_ready = True
        self.scan_worktrees()
        # A big plan is tens of thousands of long-lived objects; a full
        # garbage collection that walks them all stalls a frame by 30 ms.
        # Frozen objects are left out of the walk.
        gc.freeze()
        if self.bench_first_frame:
            self.call_after_refresh(self._report_first_frame)

    def _report_first_frame(self) -> None:
        import resource

        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"first-frame {time.time():.6f} maxrss-kb {rss_kb}", file=sys.__stderr__, flush=True)
        self.exit()

    @on(LogChanged)
    def _log_changed(self, message: LogChanged) -> None:
        changes = message.changes
        if changes.tasks:
            self.plan.update_tasks(changes.tasks)
            self._update_counts()
            self._refresh_worktree_rows(changes.tasks)
        if changes.events:
            self.event_log.append_events(changes.events)
        screen = self.top_screen
        if isinstance(screen, TaskScreen) and any(e.task_id == screen.task_id for e in changes.events):
            self.load_task_detail(screen)

    def _update_counts(self) -> None:
        counts = {state: 0 for state in State}
        for task in self.plan.tasks.values():
            counts[task.state] += 1
        self.header.counts = counts

    # --- the Log pane's data ---------------------------------------------------

    @on(EventLog.PagesWanted)
    def _pages_wanted(self, message: EventLog.PagesWanted) -> None:
        self.fetch_events(message.ids)

    @work(thread=True, group="pages", exit_on_error=False)
    def fetch_events(self, ids: list[int]) -> None:
        if self._reader is not None:
            self.post_message(EventsFetched(self._reader.events_by_id(ids)))

    @on(EventsFetched)
    def _events_fetched(self, message: EventsFetched) -> None:
        self.event_log.add_events(message.events)

    @on(EventLog.FilterWanted)
    def _filter_wanted(self, message: EventLog.FilterWanted) -> None:
        self.filter_events(message.log_filter)

    @work(thread=True, exclusive=True, group="log-filter", exit_on_error=False)
    def filter_events(self, log_filter: LogFilter) -> None:
        if self._reader is not None:
            ids = self._reader.event_ids(**log_filter.query_args())
            self.post_message(FilterResult(log_filter, ids))

    @on(FilterResult)
    def _filter_result(self, message: FilterResult) -> None:
        self.event_log.set_filter_result(message.log_filter, message.ids)

    # --- operator commands -------------------------------------------------------

    def current_task(self) -> Task | None:
        """The task the operator is looking at: the open task screen's, the
        Log's selected event's, or the Plan's cursor row."""
        screen = self.top_screen
        if isinstance(screen, TaskScreen):
            return self.plan.task_by_id(screen.task_id)
        if self.focused is self.event_log:
            event = self.event_log.selected_event
            if event is not None and event.task_id:
                return self.plan.task_by_id(event.task_id)
        return self.plan.selected_task

    def all_tasks(self) -> list[Task]:
        return list(self.plan.tasks.values())

    @on(TaskCommand)
    def _task_command(self, message: TaskCommand) -> None:
        task = self.plan.task_by_id(message.task_id)
        if task is None:
            self.notify(f"no such task: {message.task_id}", severity="error", markup=False)
            return
        command = message.command
        if command == "open":
            self.open_task(task.id)
            return
        if command in ("priority_up", "priority_down"):
            step = 1 if command == "priority_up" else -1
            self.run_priority(task.id, task.priority + step)
            return
        if command == "hold":
            action = Action.RELEASE if task.state is State.HELD else Action.HOLD
        else:
            action = Action(command)
        try:
            next_state(task.id, task.state, action)
        except FactoryError as error:
            self.notify(str(error), severity="warning", markup=False)
            return
        title = one_line(task.title, 70)
        if action is Action.REQUEUE:
            self.push_screen(
                NoteDialog(
                    f"Re-queue {task.id}: {title}",
                    "Feedback for the agent's next attempt (optional; it goes into the prompt).",
                    placeholder="What to do differently…",
                    submit="Re-queue",
                ),
                lambda note: note is not None and self.apply_action(task.id, action, note.strip() or None),
            )
        elif action is Action.CANCEL:
            detail = "Its branch is kept; `r` re-queues it later."
            if task.state is State.RUNNING:
                detail = "Its agent will be stopped. " + detail
            self.push_screen(
                ConfirmDialog(f"Cancel {task.id}: {title}?", detail, yes="Cancel task"),
                lambda yes: yes and self.apply_action(task.id, action, None),
            )
        else:
            self.apply_action(task.id, action, None)

    @work(thread=True, group="actions", exit_on_error=False)
    def apply_action(self, task_id: str, action: Action, note: str | None) -> None:
        # Through the Operator: approving a task in review merges its branch.
        outcome = self._require_operator().apply(task_id, action, actor=self.actor, note=note)
        if outcome.warning:
            self.notify(literal(outcome.message), severity="warning", timeout=8, markup=False)
        else:
            self.notify(literal(outcome.message), timeout=4, markup=False)
        self.scan_worktrees()

    @work(thread=True, group="actions", exit_on_error=False)
    def run_priority(self, task_id: str, priority: int) -> None:
        self._require_log().set_priority(task_id, priority, actor=self.actor)

    def _require_operator(self) -> Operator:
        self._require_log()
        assert self._operator is not None  # made with the log
        return self._operator

    def _require_log(self) -> ExecutionLog:
        if self._execution_log is None:
            raise FactoryError("the log is still opening; try again in a moment")
        return self._execution_log

    # --- the task screen ------------------------------------------------------------

    def open_task(self, task_id: str) -> None:
        screen = TaskScreen(task_id)
        self.push_screen(screen)
        self.load_task_detail(screen)

    @work(thread=True, group="detail", exit_on_error=False)
    def load_task_detail(self, screen: TaskScreen) -> None:
        log = self._require_log()
        task = log.get_task(screen.task_id)
        by_id = {t.id: t for t in log.get_tasks(task.depends_on)}
        detail = TaskDetail(
            task=task,
            dependencies=[by_id[d] for d in task.depends_on if d in by_id],
            dependents=log.dependents(task.id),
            # The history scans the events: on the reader's own connection, so
            # that operator actions do not wait for it.
            events=self._reader.task_history(task.id) if self._reader else log.events(task_id=task.id),
        )
        screen.post_message(TaskDetailLoaded(detail))

    # --- new task --------------------------------------------------------------------

    @on(NewTaskWanted)
    def action_new_task(self) -> None:
        self.push_screen(NewTaskDialog(known_ids=set(self.plan.tasks)))

    @on(NewTaskDialog.Submitted)
    def _new_task_submitted(self, message: NewTaskDialog.Submitted) -> None:
        self.create_task(message.dialog, message.new_task)

    @work(thread=True, group="actions", exit_on_error=False)
    def create_task(self, dialog: NewTaskDialog, new_task: NewTask) -> None:
        try:
            task = self._require_log().add_task(new_task, actor=self.actor)
        except FactoryError as error:
            # The form stays open with everything typed in it.
            self.call_from_thread(dialog.show_error, str(error))
            raise
        self.post_message(TaskCreated(dialog, task))

    @on(TaskCreated)
    def _task_created(self, message: TaskCreated) -> None:
        if message.dialog.is_attached:
            message.dialog.dismiss(None)
        self.notify(f"{message.task.id} created: {one_line(message.task.title, 60)}", timeout=3, markup=False)
        self.plan.update_tasks([message.task])
        self._update_counts()
        self.plan.select_task(message.task.id)

    # --- the engine -----------------------------------------------------------

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def start_engine(self) -> None:
        self.engine.start()
        self.post_message(EngineChanged())

    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def find_agent(self) -> None:
        """Which profile tasks run with (found on PATH: a worker)."""
        from factory_tui.backends.agents import default_profile_name, load_profiles

        config = self.base.config()
        name = default_profile_name(config, load_profiles(config))
        self.call_from_thread(setattr, self.header, "agent", name)

    @on(EngineChanged)
    def _engine_changed(self, message: EngineChanged) -> None:
        self.header.engine = self.engine.describe()
        self.scan_worktrees()

    def _tick(self) -> None:
        self.worktree_table.now = self.clock()
        if self.with_engine and self.engine.mode != "embedded" and not self._quitting:
            self.check_engine()

    @work(thread=True, exclusive=True, group="engine-check", exit_on_error=False)
    def check_engine(self) -> None:
        before = self.engine.describe()
        self.engine.refresh()
        if self.engine.describe() != before:
            self.post_message(EngineChanged())

    def action_start_engine(self) -> None:
        if self.engine.mode == "none":
            self.start_engine()
        else:
            self.notify(self.engine.describe(), timeout=3, markup=False)

    # --- worktrees ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="worktrees", exit_on_error=False)
    def scan_worktrees(self) -> None:
        """Worktrees and their changes, from git (a worker: git is slow)."""
        log, operator = self._execution_log, self._operator
        if log is None or operator is None:
            return
        worktrees = operator.worktrees
        infos = worktrees.list()
        tasks = {t.id: t for t in log.get_tasks([i.task_id for i in infos if i.task_id])}
        rows = []
        for info in infos:
            task = tasks.get(info.task_id) if info.task_id else None
            row = WorktreeRow(
                task_id=info.task_id,
                status=worktree_status(task.state if task else None),
                branch=info.branch,
                path=str(info.path),
                exists=info.exists,
                started_at=task.started_at if task else None,
                progress=task.progress if task else None,
            )
            if info.exists and info.task_id:
                try:
                    stat = worktrees.diff_stat(info.task_id)
                    row.added, row.removed = stat.added, stat.removed
                except FactoryError:
                    pass
            rows.append(row)
        self.post_message(WorktreesScanned(rows))

    @on(WorktreesScanned)
    def _worktrees_scanned(self, message: WorktreesScanned) -> None:
        self._merge_progress(message.rows)
        self.worktree_table.set_rows(message.rows)

    def _merge_progress(self, rows: list[WorktreeRow]) -> None:
        """The plan holds the newest state and progress: prefer them."""
        for row in rows:
            task = self.plan.task_by_id(row.task_id) if row.task_id else None
            if task is not None:
                row.status = worktree_status(task.state)
                row.progress = task.progress or row.progress
                row.started_at = task.started_at or row.started_at

    def _refresh_worktree_rows(self, changed: list[Task]) -> None:
        rows = self.worktree_table.rows
        known = {row.task_id for row in rows}
        if any(task.id not in known and task.state is State.RUNNING for task in changed):
            self.scan_worktrees()
        if any(task.id in known for task in changed):
            self._merge_progress(rows)
            self.worktree_table.set_rows(list(rows))

    @on(WorktreeTable.Wanted)
    def _worktree_wanted(self, message: WorktreeTable.Wanted) -> None:
        row = message.row
        if message.command == "clean":
            self._clean_orphans()
            return
        if row is None or row.task_id is None:
            self.notify("This worktree belongs to no task.", severity="warning", markup=False)
            return
        self._worktree_command(row.task_id, message.command)

    @on(RunScreen.CommandWanted)
    def _run_command(self, message: RunScreen.CommandWanted) -> None:
        self._worktree_command(message.task_id, message.command)

    def _worktree_command(self, task_id: str, command: str) -> None:
        task = self.plan.task_by_id(task_id)
        worktree = self.base.worktrees_dir / task_id
        if command == "open":
            self.open_run(task_id)
        elif command == "stop":
            if task is None or task.state is not State.RUNNING:
                self.notify(f"{task_id} has no agent running.", severity="warning", markup=False)
                return
            self.push_screen(
                ConfirmDialog(
                    f"Stop the agent on {task_id}: {one_line(task.title, 60)}?",
                    "The task is cancelled and the agent's work is committed to its branch; r re-queues it.",
                    yes="Stop agent",
                ),
                lambda yes: yes and self.apply_action(task_id, Action.CANCEL, "stopped from the console"),
            )
        elif command in ("shell", "editor"):
            if not worktree.is_dir():
                self.notify(f"{task_id} has no worktree folder.", severity="warning", markup=False)
                return
            self._open_in(worktree, command)

    def _open_in(self, worktree: Path, command: str) -> None:
        """A shell or $EDITOR in the worktree; the console suspends until it
        exits, then comes back. ``factory`` run there works on this base."""
        env = operator_environment(self.base.root)
        try:
            argv = shell_argv(env) if command == "shell" else editor_argv(env)
        except FactoryError as error:
            self.notify(literal(str(error)), severity="error", markup=False)
            return
        if shutil.which(argv[0], path=env.get("PATH")) is None:
            self.notify(f"cannot open {literal(argv[0])}: not found", severity="error", markup=False)
            return
        try:
            with self.suspend():
                subprocess.run(argv, cwd=worktree, env=env)
        except Exception as error:  # no terminal to hand over (tests, headless)
            self.notify(literal(f"cannot open {argv[0]} here: {error}"), severity="error", markup=False)

    def _clean_orphans(self) -> None:
        orphans = [row for row in self.worktree_table.rows if row.status == "orphaned" and row.task_id]
        if not orphans:
            self.notify("No orphaned worktrees.", timeout=3)
            return
        names = ", ".join(row.task_id for row in orphans)
        self.push_screen(
            ConfirmDialog(
                f"Remove {len(orphans)} orphaned worktree(s)?",
                f"{names}. Whatever is uncommitted in them is committed to their branches first.",
                yes="Remove",
            ),
            lambda yes: yes and self.remove_worktrees([row.task_id for row in orphans]),
        )

    @work(thread=True, group="actions", exit_on_error=False)
    def remove_worktrees(self, task_ids: list[str]) -> None:
        operator = self._require_operator()
        for task_id in task_ids:
            operator.clean(task_id)
        self.notify(f"Removed {len(task_ids)} worktree(s).", timeout=3)
        self.scan_worktrees()

    # --- the run screen ---------------------------------------------------------------

    def open_run(self, task_id: str) -> None:
        task = self.plan.task_by_id(task_id)
        attempt = task.attempts if task else 0
        transcript = self.base.runs_dir / task_id / str(attempt) / "transcript.log" if attempt else None
        self.push_screen(
            RunScreen(
                task_id,
                title=task.title if task else "",
                transcript=transcript,
                worktree=self.base.worktrees_dir / task_id,
                branch=f"factory/{task_id}",
            )
        )

    @on(RunScreen.DiffWanted)
    def _diff_wanted(self, message: RunScreen.DiffWanted) -> None:
        self.load_diff(message.screen)

    @work(thread=True, group="diff", exit_on_error=False)
    def load_diff(self, screen: RunScreen) -> None:
        worktrees = self._require_operator().worktrees
        self.post_message(DiffLoaded(screen, worktrees.diff(screen.task_id)))

    @on(DiffLoaded)
    def _diff_loaded(self, message: DiffLoaded) -> None:
        if message.screen.is_attached:
            message.screen.show_diff(message.files)

    # --- quitting ---------------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._quitting:
            return
        running = self.engine.running
        if self.engine.mode != "embedded":
            self.exit()
            return
        if not running:
            self._quit_after(stop_agents=True)
            return
        names = ", ".join(running)
        self.push_screen(
            ChoiceDialog(
                f"{len(running)} agent(s) are at work ({names}).",
                "Stop them, and their tasks go back to the queue with their work committed; "
                "or leave them running, and a headless engine (factory run) takes over.",
                choices=[("stop", "Stop agents (s)", "s"), ("leave", "Leave them running (l)", "l"), ("cancel", "Don't quit (esc)", "escape")],
            ),
            self._quit_choice,
        )

    def _quit_choice(self, choice: str | None) -> None:
        if choice == "stop":
            self._quit_after(stop_agents=True)
        elif choice == "leave":
            self._quit_after(stop_agents=False)

    def _quit_after(self, *, stop_agents: bool) -> None:
        self._quitting = True
        self.header.engine = "engine: stopping agents…" if stop_agents else "engine: handing over…"
        self.stop_engine(stop_agents)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def stop_engine(self, stop_agents: bool) -> None:
        try:
            if stop_agents:
                self.engine.stop(stop_agents=True)
            else:
                pid = self.engine.hand_over()
                self.farewell = f"The agents go on under a headless engine (pid {pid}); its output is in .factory/engine.log."
        finally:
            self.call_from_thread(self.exit)

    # --- errors ---------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, FactoryError):
            self.notify(literal(str(error)), severity="error", markup=False)
        else:
            self.notify(
                literal(f"{type(error).__name__}: {error}"),
                title="Unexpected error",
                severity="error",
                markup=False,
            )
        if isinstance(self.top_screen, TaskScreen) and event.worker.group == "detail":
            self.pop_screen()

    # --- navigation -----------------------------------------------------------

    @property
    def top_screen(self):
        """The screen on top, or None while the app is shutting down (messages
        from workers can still arrive then)."""
        return self.screen_stack[-1] if self.screen_stack else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "zoom", "focus_pane", "help") and isinstance(self.screen, ModalScreen):
            return False
        if action in ("zoom", "focus_pane") and isinstance(self.screen, TaskScreen):
            return False
        return True

    def _pane(self, number: int) -> Pane:
        return self.panes[number]

    def action_focus_pane(self, number: int) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        self._pane(number).body.focus()

    def action_filter_pane(self, number: int) -> None:
        self.action_focus_pane(number)
        self._pane(number).action_filter()

    def action_follow_log(self) -> None:
        self.action_focus_pane(6)
        self.event_log.action_last()

    def action_zoom(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        focused = self.focused
        pane = next((node for node in (focused.ancestors_with_self if focused else []) if isinstance(node, Pane)), None)
        if pane is not None:
            screen.maximize(pane, container=False)

    def action_help(self) -> None:
        focused = self.focused
        pane = next((node for node in (focused.ancestors_with_self if focused else []) if isinstance(node, Pane)), None)
        if isinstance(self.screen, TaskScreen):
            title = f"task {self.screen.task_id}"
        elif pane is not None:
            title = f"{pane.number} {pane.title}"
        else:
            title = "console"
        self.push_screen(HelpScreen(title, self.screen.active_bindings))
