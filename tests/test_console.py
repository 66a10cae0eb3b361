"""Pilot tests: real keys on the real console over a real demo base, then
a look at the log itself (not only at the screen)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Static

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask, State
from factory_tui.screens.dialogs import ConfirmDialog, NewTaskDialog, NoteDialog
from factory_tui.screens.help import HelpScreen
from factory_tui.screens.task import TaskScreen
from tests.console_helpers import move_to, ready, row_text, wait_until

SIZE = (160, 48)


def state_of(base, task_id: str) -> State:
    with ExecutionLog.open(base.log_path) as log:
        return log.get_task(task_id).state


def last_event(base, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.events(task_id=task_id)[-1]


async def test_approve_a_proposed_task_with_a(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-9")
        await pilot.press("a")
        await wait_until(pilot, lambda: state_of(demo_base, "T-9") is State.QUEUED, "T-9 queued")
        event = last_event(demo_base, "T-9")
        assert (event.kind, event.from_state, event.to_state) == ("approved", "proposed", "queued")
        assert event.actor.startswith("console:")
        # The screen follows the log: T-9 now sits in the queued group.
        await wait_until(pilot, lambda: app.plan.task_by_id("T-9").state is State.QUEUED, "the plan to follow")
        assert app.plan.selected_task.id == "T-9"


async def test_requeue_asks_for_a_note_and_keeps_it(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the feedback dialog")
        # The note is a text area: enter starts a new line, ctrl+s submits.
        await pilot.press(*"Check the [bold] lockout", "enter", *"and the log", "ctrl+s")
        await wait_until(pilot, lambda: state_of(demo_base, "T-3") is State.QUEUED, "T-3 re-queued")
        event = last_event(demo_base, "T-3")
        assert event.kind == "requeued"
        assert event.note == "Check the [bold] lockout\nand the log"
        with ExecutionLog.open(demo_base.log_path) as log:
            assert log.get_task("T-3").feedback == "Check the [bold] lockout\nand the log"


async def test_requeue_dialog_escape_changes_nothing(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-8")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the feedback dialog")
        await pilot.press(*"never mind", "escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NoteDialog), "the dialog to close")
        # Nothing was set going: no action ran, and the task is as it was.
        assert not actions_started(app)
        assert state_of(demo_base, "T-8") is State.FAILED


async def test_cancel_asks_first_and_n_keeps_the_task(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-6")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), "the dialog to close")
        assert not actions_started(app)
        assert state_of(demo_base, "T-6") is State.QUEUED
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: state_of(demo_base, "T-6") is State.CANCELLED, "T-6 cancelled")
        assert last_event(demo_base, "T-6").kind == "cancelled"


async def test_cancel_of_running_task_ends_its_lease(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-5")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: state_of(demo_base, "T-5") is State.CANCELLED, "T-5 cancelled")
    with ExecutionLog.open(demo_base.log_path) as log:
        assert [lease for lease in log.live_leases() if lease[1] == "T-5"] == []


async def test_illegal_key_is_refused_with_a_notification(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-1")  # done: nothing may change it
        await pilot.press("a", "r", "x", "h")
        await wait_until(pilot, lambda: len(app._notifications) >= 4, "a refusal for each key")
        messages = [n.message for n in app._notifications]
        assert any("cannot approve T-1" in m and "done" in m for m in messages)
        assert not isinstance(app.screen, (ConfirmDialog, NoteDialog))
        assert not actions_started(app)
        assert state_of(demo_base, "T-1") is State.DONE


async def test_hold_and_release_with_h(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-13")
        await pilot.press("h")
        await wait_until(pilot, lambda: state_of(demo_base, "T-13") is State.HELD, "T-13 held")
        await wait_until(pilot, lambda: app.plan.task_by_id("T-13").state is State.HELD, "the plan to follow")
        await pilot.press("h")
        await wait_until(pilot, lambda: state_of(demo_base, "T-13") is State.QUEUED, "T-13 released")


async def test_priority_keys(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-4")
        await pilot.press("plus")
        await wait_until(pilot, lambda: app.plan.task_by_id("T-4").priority == 1, "priority 1")
        await pilot.press("plus")
        await wait_until(pilot, lambda: app.plan.task_by_id("T-4").priority == 2, "priority 2")
        await pilot.press("minus")
        await wait_until(pilot, lambda: app.plan.task_by_id("T-4").priority == 1, "priority 1 again")
    with ExecutionLog.open(demo_base.log_path) as log:
        assert log.get_task("T-4").priority == 1
        assert [e.kind for e in log.events(task_id="T-4")].count("priority") == 3


async def test_plan_filter(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("slash", *"login")
        await wait_until(pilot, lambda: app.plan.filter_text == "login", "the filter")
        shown = {t for t in app.plan.tasks if app.plan.index_of(t) is not None}
        assert shown == {"T-3"}
        await pilot.press("enter")
        assert app.focused is app.plan
        assert app.plan.selected_task.id == "T-3"
        await pilot.press("escape")
        assert app.plan.filter_text == ""
        assert all(app.plan.index_of(t) is not None for t in app.plan.tasks)


async def test_log_filter_by_task_and_kind(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("6")
        assert app.focused is app.event_log
        await pilot.press("slash", *"T-2")
        with ExecutionLog.open(demo_base.log_path) as log:
            expected = len(log.events(task_id="T-2"))
            approvals = len(log.events(kinds=["approved"]))
        await wait_until(pilot, lambda: app.event_log.event_count == expected, "T-2's events")
        await pilot.press(*["backspace"] * 3, *"approved")
        await wait_until(pilot, lambda: app.event_log.event_count == approvals, "approvals")


async def test_new_task_form_creates_the_task(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        await pilot.press(*"Add [red]caching[/red]")
        await pilot.press("tab", "3", "tab", *"T-99")
        await pilot.press("ctrl+s")
        # An unknown dependency keeps the form open with everything typed.
        error = app.screen.query_one("#form-error")
        await wait_until(pilot, lambda: "no such task: T-99" in str(error.render()), "the form's error")
        assert isinstance(app.screen, NewTaskDialog)
        await pilot.press(*["backspace"] * 4, *"T-6")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form to close")
    with ExecutionLog.open(demo_base.log_path) as log:
        task = log.get_task("T-15")
    assert task.title == "Add [red]caching[/red]"
    assert task.priority == 3
    assert task.depends_on == ("T-6",)
    assert task.state is State.QUEUED


async def test_task_screen_shows_body_dependencies_and_history(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None, "the task screen")
        detail = app.screen.detail
        assert detail.task.id == "T-3"
        assert [t.id for t in detail.dependencies] == ["T-2"]
        assert {t.id for t in detail.dependents} == {"T-4", "T-12"}
        assert [e.kind for e in detail.events][:2] == ["created", "depends"]
        # Keys work on the task screen too, and it follows the log.
        await pilot.press("a")
        await wait_until(pilot, lambda: app.screen.detail.task.state is State.DONE, "the screen to follow")
        await pilot.press("escape")
        assert not isinstance(app.screen, TaskScreen)


async def test_live_change_from_another_process_appears(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        before = app.event_log.event_count
        subprocess.run(
            [sys.executable, "-m", "factory_tui", "--base", str(demo_base.root), "plan", "add", "Written by the CLI"],
            check=True,
            capture_output=True,
        )
        await wait_until(pilot, lambda: app.plan.task_by_id("T-15") is not None, "the CLI's task")
        assert app.plan.task_by_id("T-15").title == "Written by the CLI"
        await wait_until(pilot, lambda: app.event_log.event_count == before + 1, "the CLI's event")


async def test_outside_text_is_shown_literally(base):
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="[bold]not bold[/] and [/]"), actor="test")
        log.add_task(NewTask(title="\x1b[31mred\x1b[0m\x07bell"), actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "[bold]not bold[/] and [/]" in row_text(app, "T-1")
        text = row_text(app, "T-2")
        assert "\x1b" not in text and "\x07" not in text
        assert "␛[31mred␛[0m␇bell" in text


async def test_invisible_characters_in_a_title_are_shown(base):
    # A zero-width space and a byte order mark: "paypal" that is not "paypal".
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="pay\u200bpal\ufeff"), actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        text = row_text(app, "T-1")
        assert "\u200b" not in text and "\ufeff" not in text
        assert "pay\\u200bpal\\ufeff" in text
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None, "the task screen")
        title = str(app.screen.query_one("#task-title", Static).render())
        assert "pay\\u200bpal\\ufeff" in title and "\u200b" not in title


async def test_help_shows_the_focused_panes_keys(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert app.screen.help_title == "1 Plan"
        actions = {b.binding.action for b in app.screen.bindings.values()}
        assert {"command('approve')", "command('requeue')", "command('cancel')", "new_task", "filter"} <= actions
        await pilot.press("escape")
        await pilot.press("6", "question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert app.screen.help_title == "6 Log"


async def test_number_keys_and_tab_move_between_panes(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for number in (2, 3, 4, 5, 6, 1):
            await pilot.press(str(number))
            pane = next(node for node in app.focused.ancestors_with_self if getattr(node, "number", None))
            assert pane.number == number
        await pilot.press("tab")
        assert app.focused is not app.plan


async def test_palette_runs_task_commands(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-10")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"task: approve")
        options = app.screen.query_one(CommandList)
        await wait_until(
            pilot, lambda: options.option_count and "approve T-10" in str(options.get_option_at_index(0).prompt),
            "the approve command found")
        await pilot.press("enter")
        await wait_until(pilot, lambda: state_of(demo_base, "T-10") is State.QUEUED, "T-10 approved from the palette")


async def test_zoom_fills_the_screen_with_the_pane(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("z")
        assert app.screen.maximized is not None
        await pilot.press("z")
        assert app.screen.maximized is None


async def test_q_quits(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the console to quit")
    assert app.return_code in (0, None)


@pytest.fixture
def big_log_base(base):
    """A base whose log holds 20,000 events."""
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}") for n in range(200)], actor="seed")
        for round_ in range(50):
            for n in range(1, 200):
                log.set_priority(f"T-{n}", (round_ % 5) + 1, actor="seed")
    return base


async def test_log_pane_pages_a_large_log_without_holding_it(big_log_base):
    app = FactoryApp(big_log_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        log_view = app.event_log
        assert log_view.event_count >= 10_000
        await pilot.press("6", "g")
        await wait_until(pilot, lambda: log_view.rows_missing() == 0, "the first page")
        for _ in range(5):
            await pilot.press("pagedown")
            await wait_until(pilot, lambda: log_view.rows_missing() == 0, "a page")
        # Only a bounded cache of events is held, never the whole log.
        assert len(log_view._events) <= log_view._events.maxsize
        assert log_view._events.maxsize < log_view.event_count


async def test_an_empty_plan_says_what_to_do(base):
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        first_row = "".join(segment.text for segment in app.plan.render_line(1))
        assert "The plan is empty: press n" in first_row
        await pilot.press("slash", *"nothing")
        await wait_until(pilot, lambda: app.plan.filter_text == "nothing", "the filter")
        assert "The plan is empty" in "".join(s.text for s in app.plan.render_line(1))


def actions_started(app) -> list:
    """The operator actions the console set going (workers of the group)."""
    return [worker for worker in app.workers if worker.group == "actions"]


def footer_keys(app) -> set[str]:
    """The keys the footer shows: bindings marked to show, and the palette."""
    shown = {active.binding.action for active in app.screen.active_bindings.values() if active.binding.show}
    return shown | {"command_palette"}


async def test_the_footer_shows_at_most_six_keys(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        seen = []
        for key in ("1", "6", "2"):
            await pilot.press(key)
            seen.append(footer_keys(app))
        await pilot.press("1", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen), "the task screen")
        seen.append(footer_keys(app))
    assert all(len(keys) <= 6 for keys in seen), seen
    assert {"command('approve')", "filter", "help"} <= seen[0]


async def test_moving_the_focus_keeps_no_footer_keys_behind(demo_base):
    # Textual's Footer bound every key it ever made to its `compact` and
    # forgot them only when that changed: each focus move kept the old keys.
    import gc

    from textual.widgets._footer import FooterKey

    app = FactoryApp(demo_base)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.focused is app.plan
        panes = [app.event_log, app.worktree_table, app.plan]
        for n in range(30):
            shown = {id(key) for key in app.query(FooterKey)}
            panes[n % 3].focus()
            # Each move's keys made anew (a set of old ones left behind each time).
            await wait_until(pilot, lambda n=n, shown=shown: app.focused is panes[n % 3]
                             and bool(app.query(FooterKey)) and not shown & {id(key) for key in app.query(FooterKey)},
                             "the footer's keys for the focused pane")

        def none_kept() -> bool:
            gc.collect()
            kept = [key for key in gc.get_objects() if isinstance(key, FooterKey) and not key.is_attached]
            return len(kept) <= len(app.query(FooterKey))

        await wait_until(pilot, none_kept, "the footer's old keys to be let go")
