"""Task labels: kept in the log (schema 5), given and changed through the
CLI, a plan file and the console's form, shown, and matched by a QA
scenario's ``when: {labels: [...]}`` in the engine's gate and in ``qa run``.
Real logs, real bases, a real ``factory run`` subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import InvalidInput, PlanSyntaxError
from factory_tui.model import KIND_LABELS, NewTask, State, check_label, split_labels
from factory_tui.plan_file import parse_plan
from tests.engine_helpers import factory, task
from tests.test_cli import ok, ok_json, refused, snapshot
from tests.test_qa_gate import command, qa_config, qa_rows, scenario
from tests.test_review_cli import to_review


@pytest.mark.parametrize("label", ["docs", "area/backend", "v1.2", "team:qa", "a_b-c", "X" * 40])
def test_a_label_is_a_short_word(label: str) -> None:
    assert check_label(label) == label


@pytest.mark.parametrize("label", ["", "-docs", "+docs", "two words", "a,b", "x" * 41, "ünï", "[red]", "docs\n"])
def test_a_bad_label_is_refused_with_the_rule(label: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_label(label)
    assert "is not a label: a label is 1 to 40 letters" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_labels_are_split_on_commas_and_spaces_each_once() -> None:
    assert split_labels(" docs, ui  docs,,api ") == ("docs", "ui", "api")
    assert split_labels("") == ()


def test_the_log_keeps_labels_and_records_every_change_as_an_event(log: ExecutionLog) -> None:
    made = log.add_task(NewTask(title="t", labels=("docs", "ui", "docs")), actor="op")
    assert made.labels == ("docs", "ui")
    assert log.get_task(made.id).labels == ("docs", "ui")
    changed = log.change_labels(made.id, add=["api"], remove=["ui", "never-there"], actor="cli:op")
    assert changed.labels == ("docs", "api") == log.get_task(made.id).labels
    [event] = log.events(task_id=made.id, kinds=[KIND_LABELS])
    assert (event.actor, event.note) == ("cli:op", "labels +api -ui")
    assert event.data == {"added": ["api"], "removed": ["ui"], "labels": ["docs", "api"]}
    # No change, no event; a bad label changes nothing at all.
    log.change_labels(made.id, add=["docs"], actor="op")
    with pytest.raises(InvalidInput):
        log.change_labels(made.id, add=["ok", "not ok"], remove=["docs"], actor="op")
    with pytest.raises(InvalidInput):
        log.add_task(NewTask(title="bad", labels=("a b",)), actor="op")
    assert log.get_task(made.id).labels == ("docs", "api")
    assert len(log.events(task_id=made.id, kinds=[KIND_LABELS])) == 1
    assert [t.title for t in log.list_tasks()] == ["t"]


def test_the_cli_adds_changes_and_shows_labels(base: FactoryBase) -> None:
    made = ok_json(base, "plan", "add", "Write the guide", "-l", "docs", "--label", "ui")
    assert made["labels"] == ["docs", "ui"]
    task_id = made["id"]
    assert ok(base, "task", "label", task_id, "+api", "-ui", "release").stdout == (
        f"{task_id}: labels docs, api, release\n"
    )
    data = ok_json(base, "task", "label", task_id, "-release")
    assert data["labels"] == ["docs", "api"]
    [listed] = ok_json(base, "plan", "list")
    assert listed["labels"] == ["docs", "api"]
    assert ok_json(base, "plan", "show", task_id)["labels"] == ["docs", "api"]
    assert "labels:     docs, api\n" in ok(base, "plan", "show", task_id).stdout
    notes = [e["note"] for e in ok_json(base, "plan", "show", task_id)["events"] if e["kind"] == "labels"]
    assert notes == ["labels +api +release -ui", "labels -release"]
    # A bad label: one line, nothing written.
    before = snapshot(base)
    line = refused(base, "task", "label", task_id, "+bad label")
    assert "'bad label' is not a label" in line
    assert "is not a label" in refused(base, "plan", "add", "Another", "-l", "[x]")
    assert snapshot(base) == before


def test_a_plan_file_gives_labels_and_keeps_hash_names_for_after(base: FactoryBase, tmp_path: Path) -> None:
    items = parse_plan("- [ ] A {#a labels=docs,ui}\n- [ ] B {after=a labels=api labels=docs}\n")
    assert [(item.label, item.labels, item.after) for item in items] == [
        ("a", ("docs", "ui"), []), (None, ("api", "docs"), ["a"]),
    ]
    with pytest.raises(PlanSyntaxError) as caught:
        parse_plan("- [ ] A\n- [ ] B {labels=ok,not[ok]}\n", "plan.md")
    assert "plan.md:2:" in str(caught.value) and "is not a label" in str(caught.value)
    plan = tmp_path / "plan.md"
    plan.write_text("- [ ] Guide {#guide labels=docs}\n- [ ] Code {after=guide}\n")
    imported = ok_json(base, "plan", "import", str(plan))["imported"]
    assert [item["labels"] for item in imported] == [["docs"], []]


def test_the_gate_runs_a_labelled_scenario_only_for_tasks_with_the_label(
    base: FactoryBase, agent: Path,
) -> None:
    qa_config(base, agent)
    scenario(base, "docs-check", {"kind": "test", "run": command("print('checked the docs')"),
                                  "when": {"labels": ["docs"]}})
    with ExecutionLog.open(base.log_path) as log:
        labelled = log.add_task(NewTask(title="Write docs", labels=("docs",)), actor="test").id
        plain = log.add_task(NewTask(title="Write code"), actor="test").id

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, labelled).state is State.REVIEW and task(base, plain).state is State.REVIEW
    assert [(row.result.scenario, str(row.result.verdict)) for row in qa_rows(base, labelled)] == [
        ("docs-check", "PASS"),
    ]
    # As a `when: paths` miss: not run, no row.
    assert qa_rows(base, plain) == []


def test_qa_run_on_a_task_chooses_scenarios_by_its_labels(base: FactoryBase) -> None:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    (base.qa_dir / "ui.md").write_text(
        '---\nkind: test\nrun: ["{python}", "-c", "pass"]\nwhen: {labels: [ui]}\n---\n', encoding="utf-8",
    )
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    assert ok_json(base, "qa", "run", "--task", task_id)["runs"] == []
    ok(base, "task", "label", task_id, "ui")
    assert [run["scenario"] for run in ok_json(base, "qa", "run", "--task", task_id)["runs"]] == ["ui"]


# --- the console --------------------------------------------------------------------


async def test_the_new_task_form_takes_labels_and_the_task_screen_shows_them(demo_base) -> None:
    from textual.widgets import Input, Static

    from factory_tui.app import FactoryApp
    from factory_tui.screens.dialogs import NewTaskDialog
    from factory_tui.screens.task import TaskScreen
    from tests.console_helpers import move_to, ready, wait_until

    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        await pilot.press(*"Label me")
        labels = app.screen.query_one("#labels", Input)
        labels.value = "docs, ui bad!"
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#form-error")
        await wait_until(pilot, lambda: "'bad!' is not a label" in str(error.render()), "the form's error")
        labels.value = "docs, [red]ui[/red]x"  # refused too: brackets are no label's
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "is not a label" in str(error.render()) and "[red]" in str(error.render()),
                         "the second error, literally")
        labels.value = "docs, ui"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form to close")
        with ExecutionLog.open(demo_base.log_path) as log:
            [made] = [t for t in log.list_tasks() if t.title == "Label me"]
        assert made.labels == ("docs", "ui")
        await move_to(pilot, made.id)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None,
                         "the task screen")
        meta = app.screen.query_one("#task-meta", Static)
        await wait_until(pilot, lambda: "labels: docs, ui" in str(meta.render()), "the labels line")
