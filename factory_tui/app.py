"""The operator console: the dashboard of panes over one factory base.

The app composes the panes from their registry (``panes/__init__.py``) and
routes only what is global: the keys that move between panes, help, zoom,
quitting, the engine it runs or attaches to, and the log feed. Each pane
owns its own data, workers and messages; every backend call goes through
one ``FactorySession`` (backends/session.py), the same facade the CLI and
the engine use. A task command from anywhere (``TaskCommand``) goes to
``TaskActions`` (actions.py).

Data travels one way: a worker reads or writes (SQLite, git) and posts a
message; the widget that owns the worker shows the result. Widgets never
import SQLite or git.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from factory_tui.actions import TaskActions
from factory_tui.actors import actor_name
from factory_tui.attention import Need, Notice, notices, window_title
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.feed import Changes, LogFeed
from factory_tui.backends.session import FactorySession
from factory_tui.commands import FactoryCommands
from factory_tui.config import ConsoleConfig
from factory_tui.engine_host import EngineHost
from factory_tui.errors import FactoryError
from factory_tui.keys import PANE_BINDING_PREFIX, bindings, keymap_problem
from factory_tui.messages import (
    EngineChanged,
    LogChanged,
    LogCompleted,
    NewTaskWanted,
    PlanLoaded,
    TaskCommand,
    TaskHighlighted,
    WorktreesChanged,
)
from factory_tui.model import State, Task
from factory_tui.panes import PANE_NUMBERS, PANES, Area, PaneSpec
from factory_tui.panes.feed import FeedListener
from factory_tui.panes.log import LogPane
from factory_tui.panes.pane import Pane
from factory_tui.panes.plan import PlanPane
from factory_tui.panes.worktrees import WorktreesPane
from factory_tui.plan_notes import around
from factory_tui.screens import is_task_screen
from factory_tui.screens.dialogs import ChoiceDialog
from factory_tui.screens.help import HelpScreen
from factory_tui.startup import FrameReport, hold_whole_plan, read_whole_plan, use_worker_threads
from factory_tui.text import literal
from factory_tui.widgets.footer import ConsoleFooter
from factory_tui.widgets.header import FactoryHeader

POLL_SECONDS = 0.1
# The rest of a big base waits at most this long for the first frame.
FIRST_FRAME_WAIT = 5.0


class FactoryApp(App[None]):
    """The console over one base."""

    # A path of its own: a subclass elsewhere (a test's) finds the same file.
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "factory"
    COMMANDS = App.COMMANDS | {FactoryCommands}

    PANE_NAMES = {spec.number: spec.name for spec in PANES}
    # Below 120 columns the Plan takes more of the width (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        *bindings("app.help", "app.quit", "app.zoom"),
        *(
            Binding(spec.key, f"focus_pane({spec.number})", f"Go to {spec.name}", show=False,
                    id=f"{PANE_BINDING_PREFIX}{spec.number}")
            for spec in PANES
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
        self.session = FactorySession(base)
        self.with_engine = engine
        # What "now" is for elapsed times (pictures and tests fix it).
        self.clock = clock
        self.engine = EngineHost(base, on_status=lambda status: self.post_message(EngineChanged(status)))
        self._quitting = False
        # What the CLI prints once the console has gone.
        self.farewell: str | None = None
        self.bench_first_frame = bench_first_frame
        self.poll_seconds = poll_seconds
        # Set once the first full frame is drawn (startup.py): what it does
        # not show is read after it.
        self.first_drawn = threading.Event()
        self._frames = FrameReport(self, lambda: self.worktree_table.listed, self.first_drawn,
                                   say=bench_first_frame)
        self.actor = actor_name("console")
        self.plan_ready = False
        # What the terminal's title was last set to ("": not yet).
        self.window_title = ""
        self.actions = TaskActions(self)
        self.header = FactoryHeader(id="header")
        # The panes by number, made once: the dashboard's widgets are needed
        # under dialogs and screens too, where queries do not reach them.
        self.panes: dict[int, Pane] = {
            spec.number: Pane(spec.number, spec.name, spec.make(id=spec.widget_id),
                              filterable=spec.filterable, id=f"pane-{spec.number}")
            for spec in PANES
        }

    # --- the panes ----------------------------------------------------------------

    def _area(self, area: Area) -> list[Pane]:
        return [self.panes[spec.number] for spec in PANES if spec.area is area]

    def compose(self) -> ComposeResult:
        yield self.header
        with Horizontal(id="dashboard"):
            yield from self._area(Area.LEFT)
            with Vertical(id="right"):
                yield from self._area(Area.RIGHT_TOP)
                with Horizontal(id="right-middle"):
                    yield from self._area(Area.RIGHT_MIDDLE)
                yield from self._area(Area.RIGHT_BOTTOM)
        yield from self._area(Area.BOTTOM)
        yield ConsoleFooter()

    def _body(self, kind: type[Widget]):
        return next(pane.body for pane in self.panes.values() if isinstance(pane.body, kind))

    @property
    def plan(self) -> PlanPane:
        return self._body(PlanPane)

    @property
    def worktree_table(self) -> WorktreesPane:
        return self._body(WorktreesPane)

    @property
    def event_log(self) -> LogPane:
        return self._body(LogPane)

    def _listeners(self) -> list[FeedListener]:
        return [pane.body for pane in self.panes.values() if isinstance(pane.body, FeedListener)]

    # --- what every part reaches (context.Console) --------------------------------

    def task_by_id(self, task_id: str) -> Task | None:
        return self.plan.task_by_id(task_id)

    def all_tasks(self) -> list[Task]:
        return list(self.plan.tasks.values())

    def current_task(self) -> Task | None:
        """The task the operator is looking at: the open task screen's, the
        Log's selected event's, or the Plan's cursor row."""
        screen = self.top_screen
        if is_task_screen(screen):
            return self.task_by_id(screen.task_id)
        if self.focused is self.event_log:
            event = self.event_log.selected_event
            if event is not None and event.task_id:
                return self.task_by_id(event.task_id)
        return self.plan.selected_task

    # --- start and end --------------------------------------------------------------

    def on_load(self) -> None:
        use_worker_threads()

    def on_mount(self) -> None:
        keymap = self._console_config.keymap
        if keymap:
            # `factory console` refuses a misspelt id before it gets here;
            # an app made another way says so and applies the rest.
            problem = keymap_problem(keymap, PANE_NUMBERS)
            if problem is not None:
                self.notify(problem, severity="error", timeout=10, markup=False)
            self.set_keymap(dict(keymap))
        self.plan.focus()
        self.follow_log()
        if self.with_engine:
            self.start_engine()
        else:
            self.header.engine = "engine: off"
        self.find_agent()
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        self.session.close()
        hold_whole_plan()  # collections back on, even if the plan never landed

    # --- following the log -------------------------------------------------------

    @work(thread=True, exclusive=True, group="feed", exit_on_error=False)
    def follow_log(self) -> None:
        """Send the first snapshot, then every change (from any process)
        within ``poll_seconds``."""
        worker = get_current_worker()
        feed = LogFeed(self.base.log_path)
        try:
            self.session.open()  # here, in a worker, not on the screen's time
            first = feed.first_look()
            self.post_message(PlanLoaded(first))
            if not first.complete:
                # Read once the first frame is drawn (reading it meanwhile
                # would take the screen's turns at Python), and here, in the
                # feed's own thread, so that every change after it comes after it.
                self.first_drawn.wait(FIRST_FRAME_WAIT)
                self.post_message(LogCompleted(*read_whole_plan(feed)))
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
        config = self.session.config
        self.header.factory_name = config.name
        self.header.base_branch = config.base_branch
        snapshot = message.snapshot
        for listener in self._listeners():
            listener.log_loaded(snapshot)
        self._update_counts()
        self._frames.plan_drawn(snapshot.complete)
        if snapshot.complete:
            self._log_whole()

    @on(LogCompleted)
    def _log_completed(self, message: LogCompleted) -> None:
        self.plan.prepared = message.plan
        for listener in self._listeners():
            listener.log_completed(message.rest)
        self._update_counts()
        self._frames.whole_plan()
        self._log_whole()

    def _log_whole(self) -> None:
        """The console holds the whole plan."""
        self.plan_ready = True
        hold_whole_plan()
        if not self.bench_first_frame:
            self.call_after_refresh(
                lambda: self.run_worker(self.actions.warm_up, thread=True, group="warm-up", exit_on_error=False)
            )

    @on(TaskHighlighted)
    def _task_highlighted(self, message: TaskHighlighted) -> None:
        for listener in self._listeners():
            listener.task_highlighted(message.task_id)

    @on(LogChanged)
    def _log_changed(self, message: LogChanged) -> None:
        changes = message.changes
        if changes.tasks:
            # The feed reads again every task an event touched; a note or a
            # QA result leaves the task as it was, and a task as it was
            # changes nothing on screen.
            moved = [task for task in changes.tasks if self.task_by_id(task.id) != task]
            if len(moved) != len(changes.tasks):
                changes = Changes(changes.events, moved)
        before = {task.id: known.state for task in changes.tasks if (known := self.task_by_id(task.id))}
        for listener in self._listeners():
            listener.log_changed(changes)
        if changes.tasks:
            self._update_counts()
            self._say_what_needs_you(notices(before, changes.tasks, self._around(changes.tasks)))
        for below in self.screen_stack:
            # A screen that follows the log itself (a mail thread), also
            # under a dialog (the reply form that wrote what changed).
            if isinstance(below, FeedListener):
                below.log_changed(changes)
        screen = self.top_screen
        if is_task_screen(screen):
            # Its own events, and its dependencies' (one cancelled leaves it
            # unable to run; one re-queued gives it a way again).
            related = {screen.task_id, *(screen.detail.task.depends_on if screen.detail else ())}
            if any(event.task_id in related for event in changes.events):
                self.actions.load_detail(screen)

    def _around(self, changed: list[Task]) -> Iterator[Task]:
        """The part of the plan that decides whether what waits on
        ``changed`` can still run (plan_notes.around), found only if
        ``notices`` asks: when a task died."""
        plan = self.plan
        yield from around(plan.tasks, plan.dependents, [task.id for task in changed])[1].values()

    def _update_counts(self) -> None:
        # The Plan keeps them by deltas as tasks change: no pass over the plan.
        counts = dict(self.plan.counts)
        if counts == self.header.counts:
            return
        self.header.counts = counts
        if self._console_config.title:
            self._set_window_title(window_title(self.session.config.name, counts[State.REVIEW]))

    # --- what needs the operator ----------------------------------------------------

    @property
    def _console_config(self) -> ConsoleConfig:
        return self.session.config.console

    def _say_what_needs_you(self, found: list[Notice]) -> None:
        """A notification each, and the bell once, as [console] allows."""
        if not found:
            return
        config = self._console_config
        if config.notify:
            for notice in found:
                severity: SeverityLevel = "information" if notice.need is Need.REVIEW else "warning"
                self.notify(literal(notice.text), severity=severity, timeout=6, markup=False)
        if config.bell:
            self.bell()

    def _set_window_title(self, title: str) -> None:
        """The terminal window's title (OSC 2), where there is a terminal."""
        if title == self.window_title:
            return
        self.window_title = title
        driver = self._driver
        if driver is not None and not driver.is_headless:
            driver.write(f"\x1b]2;{literal(title)}\x07")

    # --- routing -------------------------------------------------------------------

    @on(TaskCommand)
    def _task_command(self, message: TaskCommand) -> None:
        self.actions.handle(message)

    @on(NewTaskWanted)
    def action_new_task(self) -> None:
        self.plan.open_new_task_form()

    @on(WorktreesChanged)
    def _worktrees_changed(self, message: WorktreesChanged) -> None:
        self.worktree_table.post_message(WorktreesChanged(message.tasks))

    def open_task(self, task_id: str) -> None:
        self.actions.open_task(task_id)

    def open_run(self, task_id: str) -> None:
        self.actions.open_run(task_id)

    # --- the engine -----------------------------------------------------------

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def start_engine(self) -> None:
        # After the first frame: importing and starting an engine would
        # take the screen's turns at Python.
        self.first_drawn.wait(FIRST_FRAME_WAIT)
        self.engine.start()
        self.post_message(EngineChanged())

    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def find_agent(self) -> None:
        """Which profile tasks run with (found on PATH: a worker, after
        the first frame)."""
        from factory_tui.backends.agents import default_profile_name, load_profiles

        self.first_drawn.wait(FIRST_FRAME_WAIT)
        config = self.session.config
        name = default_profile_name(config, load_profiles(config))
        self.call_from_thread(setattr, self.header, "agent", name)

    @on(EngineChanged)
    def _engine_changed(self, message: EngineChanged) -> None:
        self.header.engine = self.engine.describe()
        # A run began or ended: the list may have changed (its commits are
        # seen in git's files, its edits in its progress events).
        self.worktree_table.post_message(WorktreesChanged(()))

    def _tick(self) -> None:
        # One clock for the panes' times (ages, elapsed), so that they are
        # drawn in one frame a second, not one frame each.
        self.plan.tick()
        self.worktree_table.tick()
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
        who = "1 agent is" if len(running) == 1 else f"{len(running)} agents are"
        self.push_screen(
            ChoiceDialog(
                f"{who} at work ({names}).",
                "Stop them, and their tasks go back to the queue with their work committed; "
                "or leave them running, and a headless engine (factory run) takes over.",
                choices=[("stop", "Stop agents (s)", "s"), ("leave", "Leave them running (l)", "l"),
                         ("cancel", "Don't quit (esc)", "escape")],
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
        """Every worker's failure, wherever it ran, as one notification."""
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
        if is_task_screen(self.top_screen) and event.worker.group == "detail":
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
        if action in ("zoom", "focus_pane") and is_task_screen(self.screen):
            return False
        return True

    def pane_spec(self, number: int) -> PaneSpec:
        return next(spec for spec in PANES if spec.number == number)

    def action_focus_pane(self, number: int) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        self.panes[number].body.focus()

    def action_filter_pane(self, number: int) -> None:
        self.action_focus_pane(number)
        self.panes[number].action_filter()

    def action_follow_log(self) -> None:
        self.action_focus_pane(next(spec.number for spec in PANES if spec.make is LogPane))
        self.event_log.action_last()

    def _focused_pane(self) -> Pane | None:
        focused = self.focused
        return next((node for node in (focused.ancestors_with_self if focused else []) if isinstance(node, Pane)), None)

    def action_zoom(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        pane = self._focused_pane()
        if pane is not None:
            screen.maximize(pane, container=False)

    def action_help(self) -> None:
        pane = self._focused_pane()
        if is_task_screen(self.screen):
            title = f"task {self.screen.task_id}"
        elif pane is not None:
            title = f"{pane.number} {pane.title}"
        else:
            title = "console"
        self.push_screen(HelpScreen(title, self._keys_here(), note=self._engine_note()))

    def _keys_here(self) -> dict[str, ActiveBinding]:
        """The screen's keys for help: those that work now, and those its
        ``check_action`` hides where they do not apply (``t`` on a note),
        said as such, so that help lists every key of the pane."""
        keys = dict(self.screen.active_bindings)
        for node, node_keys in self.screen._modal_binding_chain:
            for key, binding in node_keys:
                if key not in keys:
                    said = f"{binding.tooltip} (only where it applies)".lstrip()
                    keys[key] = ActiveBinding(node, replace(binding, tooltip=said), False, said)
        return keys

    def _engine_note(self) -> str:
        """Where no engine runs, how to start one (tasks shown running are
        then waiting for an engine to take them over)."""
        if self.engine.mode != "none":
            return ""
        running = sum(1 for task in self.all_tasks() if task.state is State.RUNNING)
        if running == 1:
            waiting = "1 task shown running waits for one. "
        else:
            waiting = f"{running} tasks shown running wait for one. " if running else ""
        return (f"No engine runs on this base: {waiting}Start one with `factory run` in a terminal, "
                "or ctrl+p → engine: start in the console.")
