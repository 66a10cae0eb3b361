"""Keys: one binding id per action, shared by every place that offers it;
no key means two things; a user's keymap from factory.toml applies."""

from __future__ import annotations

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.keys import KEYS
from factory_tui.model import State
from factory_tui.panes.log import LogPane
from factory_tui.panes.plan import PlanPane
from factory_tui.panes.worktrees import WorktreesPane
from factory_tui.screens.run import RunScreen
from factory_tui.screens.task import TaskScreen
from tests.console_helpers import move_to, ready, wait_until

SIZE = (160, 48)


def _bindings(cls) -> list:
    found = []
    for klass in reversed(cls.__mro__):
        found.extend(getattr(klass, "BINDINGS", []) if "BINDINGS" in vars(klass) else [])
    return found


def test_every_place_that_offers_an_action_uses_its_one_id() -> None:
    places = (PlanPane, WorktreesPane, LogPane, TaskScreen, RunScreen)
    by_action: dict[str, set[str]] = {}
    for place in places:
        for binding in _bindings(place):
            if binding.id is None:
                continue
            assert binding.id in KEYS, (place.__name__, binding.id)
            by_action.setdefault(binding.action, set()).add(binding.id)
    # Approve, re-queue and cancel are the same binding wherever they are.
    for action in ("command('approve')", "command('requeue')", "command('cancel')"):
        assert by_action[action] == {f"task.{action[9:-2]}"}, by_action[action]


def test_no_key_means_two_things_in_one_place() -> None:
    for place in (PlanPane, WorktreesPane, LogPane, TaskScreen, RunScreen):
        seen: dict[str, str] = {}
        for binding in _bindings(place):
            for key in binding.key.split(","):
                if key in seen and seen[key] != binding.action:
                    # A subclass may give a key a new meaning on purpose
                    # (G follows in the Log); a list's k is never one of them.
                    assert key not in ("j", "k"), (place.__name__, key, seen[key], binding.action)
                seen[key] = binding.action
        assert seen.get("k") in (None, "cursor_up"), place.__name__


async def test_a_keymap_in_factory_toml_moves_a_key(demo_base) -> None:
    text = demo_base.config_path.read_text()
    text = text.replace("[console]\n", '[console]\nkeymap = { "task.approve" = "A" }\n', 1)
    demo_base.config_path.write_text(text)
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-9")  # proposed
        await pilot.press("A")
        with ExecutionLog.open(demo_base.log_path) as log:
            await wait_until(pilot, lambda: log.get_task("T-9").state is State.QUEUED, "T-9 approved with A")


async def test_help_says_how_to_start_an_engine_when_none_runs(demo_base) -> None:
    from textual.widgets import Static

    from factory_tui.screens.help import HelpScreen

    app = FactoryApp(demo_base, engine=False)  # the demo shows T-5 running
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        note = app.screen.query_one(".help-note", Static)
        text = str(note.render())
        assert "No engine runs on this base: 1 task shown running waits for one." in text
        assert "factory run" in text


def _with_keymap(base, keymap: str) -> None:
    text = base.config_path.read_text()
    base.config_path.write_text(text.replace("[console]\n", f"[console]\nkeymap = {keymap}\n", 1))


def test_a_misspelt_binding_id_stops_the_console_with_the_nearest_id(demo_base) -> None:
    from tests.test_cli import run

    _with_keymap(demo_base, '{ "approve" = "A" }')
    result = run(demo_base, "console", "--no-engine")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.endswith("[console] keymap: unknown binding id approve; did you mean task.approve?"), line


def test_the_keymap_knows_every_binding_and_the_pane_keys() -> None:
    from factory_tui.keys import keymap_problem
    from factory_tui.panes import PANE_NUMBERS

    assert keymap_problem({key_id: "f1" for key_id in KEYS}, PANE_NUMBERS) is None
    assert keymap_problem({"app.pane-6": "f6"}, PANE_NUMBERS) is None
    assert "unknown binding id app.pane-9" in (keymap_problem({"app.pane-9": "f9"}, PANE_NUMBERS) or "")


async def test_an_app_given_a_misspelt_id_says_so_and_keeps_the_rest(demo_base) -> None:
    _with_keymap(demo_base, '{ "task.aprove" = "B", "task.approve" = "A" }')
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: any("task.aprove" in str(n.message) for n in app._notifications),
                         "a notification naming the misspelt id")
        await move_to(pilot, "T-9")
        await pilot.press("A")
        with ExecutionLog.open(demo_base.log_path) as log:
            await wait_until(pilot, lambda: log.get_task("T-9").state is State.QUEUED, "T-9 approved with A")
