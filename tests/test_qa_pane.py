"""The console's QA: the QA pane (scenarios from real files, records from
real qa rows, a new file seen through the watcher, the scenario screen
with its history, a new scenario from the template), a task's QA report
on the task screen, and the Plan's and Worktrees' QA column."""

from __future__ import annotations

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask, State
from factory_tui.panes.qa import QaPane
from factory_tui.qa_model import Gate, QaKind, QaResult, Verdict
from factory_tui.qa_scenarios import template
from factory_tui.screens.qa import NewScenarioDialog, QaRunScreen, ScenarioScreen
from factory_tui.widgets.qa_table import QaRunTable
from tests.console_helpers import ready, wait_until


def write_scenario(base, name: str, kind: QaKind = QaKind.TEST, text: str | None = None) -> None:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    (base.qa_dir / f"{name}.md").write_text(text if text is not None else template(kind, name))


def result(scenario: str, verdict: Verdict, *, gate: Gate = Gate.REQUIRED, reason: str = "", output: str | None = None,
           commit: str = "abc1234def") -> QaResult:
    return QaResult(scenario=scenario, version="v1", kind=QaKind.TEST, gate=gate, verdict=verdict, reason=reason,
                    commit=commit, duration=1.5, output=output)


def qa_pane(app: FactoryApp) -> QaPane:
    return app.panes[4].body  # type: ignore[return-value]


def row_text(table, index: int, width: int = 100) -> str:
    return "".join(segment.text for segment in table.render_row(index, width))


async def test_the_pane_lists_scenarios_with_their_record_and_invalid_files(base):
    write_scenario(base, "unit", QaKind.TEST)
    write_scenario(base, "broken", text="---\nkind: nonsense\n---\nbody\n")
    with ExecutionLog.open(base.log_path) as log:
        log.record_qa_on_demand([result("unit", Verdict.PASS)], actor="test")
        log.record_qa_on_demand([result("unit", Verdict.FAIL, reason="2 tests broke")], actor="test")
        log.record_qa_on_demand([result("unit", Verdict.FLAKY)], actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 2, "two scenario rows")
        names = [row.name for row in pane.rows]
        assert names == ["broken", "unit"]
        broken = row_text(pane, 0)
        assert "invalid" in broken and "nonsense" in broken
        unit = row_text(pane, 1)
        assert "test" in unit and "required" in unit and "FLAKY" in unit
        assert "67%" in unit  # PASS and FLAKY of three runs
        assert "▇▁▅" in unit  # oldest first


async def test_a_new_file_and_a_qa_event_reach_the_pane(base):
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: pane.loaded, "the first read")
        assert pane.rows == []
        write_scenario(base, "smoke", QaKind.VERIFY)
        await wait_until(pilot, lambda: [row.name for row in pane.rows] == ["smoke"], "the new file, seen by the watcher")
        assert "never run" in row_text(pane, 0)
        with ExecutionLog.open(base.log_path) as log:
            task = log.add_task(NewTask(title="a task"), actor="test")
            log.record_qa_on_demand([result("smoke", Verdict.FAIL)], actor="test", task_id=task.id)
        await wait_until(pilot, lambda: pane.rows[0].stats is not None, "the qa event's reread")
        assert "FAIL" in row_text(pane, 0)


async def test_enter_opens_the_scenario_with_its_history_and_a_run(base):
    write_scenario(base, "unit", QaKind.TEST)
    out = base.runs_dir / "qa" / "20250101-unit"
    out.mkdir(parents=True)
    (out / "output.log").write_text("collected 3 items\n[bold]literal[/]\n3 passed\n")
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title="a task"), actor="test")
        log.record_qa_on_demand([result("unit", Verdict.FAIL, reason="first")], actor="test", task_id=task.id)
        log.record_qa_on_demand([result("unit", Verdict.PASS, reason="second",
                                        output=str(out.relative_to(base.root)))], actor="test", task_id=task.id)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: pane.rows, "the scenario row")
        await pilot.press("4")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ScenarioScreen) and app.screen.loaded, "the scenario screen")
        runs = app.screen.query_one(QaRunTable)
        assert [run.result.reason for run in runs.runs] == ["second", "first"]  # newest first
        assert task.id in row_text(runs, 0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, QaRunScreen) and app.screen.files is not None, "the run")
        assert [path.name for path in app.screen.files] == ["output.log"]
        from factory_tui.widgets.transcript import TranscriptView

        await wait_until(pilot, lambda: app.screen.query(TranscriptView) and
                         app.screen.query_one(TranscriptView).row_count == 3, "the output's lines")
        assert app.screen.query_one(TranscriptView).line(1) == "[bold]literal[/]"


async def test_n_writes_a_scenario_from_the_template_and_refuses_a_name_that_exists(base):
    write_scenario(base, "taken", QaKind.TEST)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: pane.rows, "the scenario row")
        await pilot.press("4")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewScenarioDialog), "the dialog")
        await pilot.press(*"taken", "enter")
        await wait_until(pilot, lambda: "exists" in str(app.screen.query_one("#form-error").render()), "the refusal")
        assert isinstance(app.screen, NewScenarioDialog)
        assert (base.qa_dir / "taken.md").read_text() == template(QaKind.TEST, "taken")
        for _ in "taken":
            await pilot.press("backspace")
        await pilot.press(*"fresh", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewScenarioDialog), "the dialog to close")
        assert "kind: test" in (base.qa_dir / "fresh.md").read_text()
        await wait_until(pilot, lambda: "fresh" in [row.name for row in pane.rows], "the new row")


async def test_the_qa_column_follows_qa_events_in_plan_and_worktrees(base):
    from factory_tui.widgets import plan_table

    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title="checked"), actor="test")
        other = log.add_task(NewTask(title="passed before the console started"), actor="test")
        log.record_qa_on_demand([result("unit", Verdict.PASS)], actor="test", task_id=other.id)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        plan = app.plan

        def qa_cell(task_id: str) -> str:
            layout = plan_table.layout_columns(plan_table.COLUMNS, 120, plan_table.MIN_TITLE)
            return str(plan.qa.mark(task_id, plan.task_by_id(task_id).state)) if any(
                column.name == "qa" for column, _ in layout) else "dropped"

        await wait_until(pilot, lambda: qa_cell(other.id) == "✓", "the first read of the QA column")
        assert qa_cell(task.id) == ""
        with ExecutionLog.open(base.log_path) as log:
            log.record_qa_on_demand([result("unit", Verdict.PASS), result("lint", Verdict.FAIL)],
                                    actor="test", task_id=task.id)
        await wait_until(pilot, lambda: qa_cell(task.id) == "✗", "✗ after a failed required scenario")
        row = plan.index_of(task.id)
        assert "✗" in "".join(segment.text for segment in plan.render_row(row, 120))
        assert app.worktree_table.qa.mark(task.id) == "✗"  # the Worktrees pane follows the same events
        with ExecutionLog.open(base.log_path) as log:
            log.record_qa_on_demand([result("lint", Verdict.ERROR)], actor="test", task_id=task.id)
        await wait_until(pilot, lambda: qa_cell(task.id) == "!", "! after an error")
        # Narrow, the column is the first to go.
        narrow = plan_table.layout_columns(plan_table.COLUMNS, 60, plan_table.MIN_TITLE)
        assert "qa" not in [column.name for column, _ in narrow]
        assert "age" in [column.name for column, _ in narrow]


def test_checking_shows_the_ellipsis():
    from factory_tui.qa_marks import qa_mark

    assert qa_mark({"unit": (Verdict.FAIL, Gate.REQUIRED)}, State.CHECKING) == "…"
    assert qa_mark({"unit": (Verdict.FAIL, Gate.ADVISORY)}) == "✓"  # advisory never makes it red
    assert qa_mark({}) == ""


def commit_on_task_branch(base, task_id: str) -> None:
    import subprocess

    root = str(base.root)
    subprocess.run(["git", "-C", root, "checkout", "-q", "-b", f"factory/{task_id}"], check=True)
    (base.root / "feature.txt").write_text("done\n")
    subprocess.run(["git", "-C", root, "add", "feature.txt"], check=True)
    subprocess.run(["git", "-C", root, "commit", "-q", "-m", "work"], check=True)
    subprocess.run(["git", "-C", root, "checkout", "-q", "main"], check=True)


async def test_the_task_screen_shows_its_qa_report_and_Q_runs_qa_again(base):
    from factory_tui.screens.task import TaskScreen

    write_scenario(base, "feature-file", text=(
        "---\nkind: verify\nrun: [\"cat\", \"feature.txt\"]\nexpect: [\"done\"]\n---\nThe feature file says done.\n"))
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title="a task"), actor="test")
        log.record_qa_on_demand([result("feature-file", Verdict.FAIL, reason="no feature.txt")],
                                actor="test", task_id=task.id)
    commit_on_task_branch(base, task.id)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.qa_runs is not None,
                         "the task's QA report")
        screen = app.screen
        assert [run.result.verdict for run in screen.qa_runs] == [Verdict.FAIL]
        await pilot.press("Q")
        await wait_until(pilot, lambda: screen.qa_runs and screen.qa_runs[0].result.verdict is Verdict.PASS,
                         "the report after Q ran the verify scenario", limit=30)
        with ExecutionLog.open(base.log_path) as log:
            runs = log.qa_runs(task_id=task.id)
        assert [run.result.verdict for run in runs] == [Verdict.PASS, Verdict.FAIL]
        assert runs[0].result.commit  # checked on the branch's commit


NOW = 1_790_000_000.0


def test_snapshot_of_the_qa_pane(snap_compare, base):
    write_scenario(base, "unit", QaKind.TEST)
    write_scenario(base, "smoke", QaKind.VERIFY)
    write_scenario(base, "broken", text="---\nkind: nonsense\n---\nbody\n")
    with ExecutionLog.open(base.log_path, clock=lambda: NOW) as log:
        for verdict in (Verdict.PASS, Verdict.FAIL, Verdict.FLAKY, Verdict.PASS, Verdict.ERROR):
            log.record_qa_on_demand([result("unit", verdict)], actor="test")

    async def run_before(pilot):
        app = await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 3, "the scenarios")
        await pilot.press("4", "z")
        await pilot.pause()  # the messages the zoom posted, handled

    assert snap_compare(FactoryApp(base, engine=False, clock=lambda: NOW), terminal_size=(100, 20), run_before=run_before)


def test_snapshot_of_a_tasks_qa_report(snap_compare, base):
    from factory_tui.screens.task import TaskScreen

    with ExecutionLog.open(base.log_path, clock=lambda: NOW) as log:
        task = log.add_task(NewTask(title="add the login page"), actor="test")
        log.record_qa_on_demand([result("unit", Verdict.FAIL, reason="test_login broke"),
                                 result("smoke", Verdict.PASS),
                                 result("rubric", Verdict.ERROR, gate=Gate.ADVISORY, reason="no verdict")],
                                actor="test", task_id=task.id)

    async def run_before(pilot):
        app = await ready(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.qa_runs, "the QA report")
        await pilot.pause()  # the report drawn

    assert snap_compare(FactoryApp(base, engine=False, clock=lambda: NOW), terminal_size=(120, 30), run_before=run_before)


def test_a_scenario_file_is_shown_as_yaml_then_markdown() -> None:
    from rich.console import Group
    from rich.syntax import Syntax

    from factory_tui.screens.qa import scenario_file_view

    view = scenario_file_view("---\nkind: test\nrun: [x]\n---\nThe body.\n---\n")
    assert isinstance(view, Group)
    front, body = view.renderables
    assert isinstance(front, Syntax) and isinstance(body, Syntax)
    assert front.code.endswith("run: [x]\n---") and body.code.startswith("The body.")
    # No front matter (or an unclosed one): all of it as markdown.
    assert isinstance(scenario_file_view("---\nkind: test\n"), Syntax)


async def test_Q_in_the_qa_pane_runs_the_scenario_on_the_base_branch_and_on_a_runs_task(base):
    """Q on a scenario runs it now on the base branch's head; on a run in the
    scenario's history, on that run's task's branch head; an invalid one is
    refused with a notification."""
    write_scenario(base, "readme-there", text=(
        "---\nkind: verify\nrun: [\"ls\"]\nexpect: [\"feature.txt\"]\n---\nThe feature file is there.\n"))
    write_scenario(base, "broken", text="---\nkind: nonsense\n---\nbody\n")
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title="a task"), actor="test")
        log.record_qa_on_demand([result("readme-there", Verdict.ERROR, reason="planted")],
                                actor="test", task_id=task.id)
    commit_on_task_branch(base, task.id)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = qa_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 2, "two scenario rows")
        await pilot.press("4")
        assert pane.rows[0].name == "broken"
        await pilot.press("Q")
        await wait_until(pilot, lambda: any("invalid" in n.message for n in app._notifications), "the refusal")
        await pilot.press("j", "Q")

        def runs() -> list:
            with ExecutionLog.open(base.log_path) as log:
                return log.qa_runs(scenario="readme-there")

        await wait_until(pilot, lambda: len(runs()) == 2, "the run on the base branch", limit=30)
        on_base = runs()[0]
        assert on_base.task_id is None and on_base.result.verdict is Verdict.FAIL  # main has no feature.txt
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ScenarioScreen) and app.screen.loaded, "its screen")
        table = app.screen.query_one(QaRunTable)
        await wait_until(pilot, lambda: len(table.runs) == 2, "both runs in its history")
        await pilot.press("j", "Q")  # the older run: the task's
        await wait_until(pilot, lambda: len(runs()) == 3, "the run on the task", limit=30)
        on_task = runs()[0]
        assert on_task.task_id == task.id and on_task.result.verdict is Verdict.PASS
        await wait_until(pilot, lambda: len(table.runs) == 3, "the history, read again")
