"""The console's Artifacts pane: the living documents from real files (each
way into prompts marked, a broken one with why, a new one seen through the
watcher), a document rendered without its front matter, its history from
real commits with each version's diff, the runs of the task under the
Plan's cursor from real run folders (a compressed raw output read a window
at a time), and the refresh task proposed by a key."""

from __future__ import annotations

import subprocess

from factory_tui.app import FactoryApp
from factory_tui.artifacts_model import DocumentInfo
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.session import FactorySession
from factory_tui.model import NewTask, State
from factory_tui.panes.artifacts import ArtifactsPane
from factory_tui.screens.artifacts import DocumentHistoryScreen, DocumentScreen, RunFileScreen
from factory_tui.widgets.diff_view import PatchView
from factory_tui.widgets.run_file_view import RunFileView
from factory_tui.widgets.task_body import TaskBody
from tests.console_helpers import move_to, ready, wait_until
from tests.test_refresh import land


def artifacts_pane(app: FactoryApp) -> ArtifactsPane:
    return app.panes[3].body  # type: ignore[return-value]


def row_text(table, index: int, width: int = 120) -> str:
    return "".join(segment.text for segment in table.render_row(index, width))


def write_document(base, name: str, text: str) -> None:
    base.artifacts_dir.mkdir(parents=True, exist_ok=True)
    (base.artifacts_dir / name).write_text(text, encoding="utf-8")


def commit_all(base, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=base.root, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=base.root, check=True, capture_output=True)


def by_name(pane: ArtifactsPane) -> dict[str, DocumentInfo]:
    return {row.name: row for row in pane.documents.rows}


async def test_the_documents_are_listed_with_how_they_go_into_prompts(base):
    write_document(base, "style.md", "---\ntitle: '[bold]House style[/]'\n---\nWrite plainly.\n")
    write_document(base, "api.md", "---\ninclude: when\nwhen: ['src/api/**']\n---\nREST rules.\n")
    write_document(base, "notes.md", "---\ninclude: never\n---\nMine.\n")
    write_document(base, "broken.md", "---\ninclude: sometimes\n---\nbody\n")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await wait_until(pilot, lambda: len(pane.documents.rows) == 4, "four documents")
        rows = {row.name: row_text(pane.documents, index) for index, row in enumerate(pane.documents.rows)}
        assert rows["style.md"].startswith(" ") and "[bold]House style[/]" in rows["style.md"]  # literally
        assert rows["api.md"].startswith("?")
        assert rows["notes.md"].startswith("⊘")
        assert rows["broken.md"].startswith("!") and "sometimes" in rows["broken.md"]
        write_document(base, "new.md", "# Fresh\n")
        await wait_until(pilot, lambda: "new.md" in by_name(pane), "the new file, seen by the watcher")


async def test_enter_renders_a_document_without_its_front_matter_and_h_shows_its_history(base):
    write_document(base, "style.md", "---\ntitle: House style\nbudget: 2000\n---\n# Style\n\nWrite plainly.\n")
    commit_all(base, "First style")
    write_document(base, "style.md", "---\ntitle: House style\nbudget: 2000\n---\n# Style\n\nWrite plainly and briefly.\n")
    commit_all(base, "Briefer style")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await wait_until(pilot, lambda: "style.md" in by_name(pane), "the document")
        await pilot.press("3", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen.loaded, "the document screen")
        body = app.screen.query_one(TaskBody).body
        assert body is not None and body.startswith("# Style") and "title:" not in body
        assert "budget 2.0 KB" in str(app.screen.query_one("#document-facts").render())
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, DocumentHistoryScreen) and app.screen.shown_commit,
                         "the history with the newest version's diff")
        screen = app.screen
        versions = screen.query_one("#history-versions")
        assert [version.subject for version in versions.rows] == ["Briefer style", "First style"]
        assert "+Write plainly and briefly." in screen.query_one(PatchView).text
        await pilot.press("j")
        await wait_until(pilot, lambda: screen.shown_commit == versions.rows[1].commit, "the older version's diff")
        assert "new file" in screen.query_one(PatchView).text


def write_run(base, task_id: str, attempt: int, *, raw: str) -> None:
    folder = base.run_dir(task_id, attempt)
    folder.mkdir(parents=True)
    (folder / "prompt.md").write_text(f"# {task_id}: a task\n")
    (folder / "transcript.log").write_text("[red]not markup[/]\n\x1b[31mnot a colour\n")
    (folder / "output.raw").write_text(raw)


async def test_the_runs_of_the_task_under_the_cursor_and_a_compressed_file_read_by_windows(base):
    with ExecutionLog.open(base.log_path) as log:
        first = log.add_task(NewTask(title="first", state=State.QUEUED), actor="test")
        second = log.add_task(NewTask(title="second", state=State.QUEUED), actor="test")
    write_run(base, first.id, 1, raw="".join(f"raw line {n}\n" for n in range(5000)))
    write_run(base, second.id, 1, raw="short\n")
    write_run(base, second.id, 2, raw="shorter\n")
    # The oldest runs beyond the newest two keep no raw output whole: the
    # first task's is compressed (a real retention round, as gc does it).
    config = base.config_path.read_text()
    assert "# keep_runs = 50" in config
    base.config_path.write_text(config.replace("# keep_runs = 50", "keep_runs = 2"))
    session = FactorySession(base)
    try:
        for task_id in (first.id, second.id):
            session.runs_of(task_id)  # indexed from their folders, as an engine would
        report = session.collect_runs(apply=True)
    finally:
        session.close()
    assert report.done and report.freed > 0
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await move_to(pilot, second.id)
        await wait_until(pilot, lambda: pane.runs.task_id == second.id and pane.runs.rows, "the second task's runs")
        summaries = [row.run.attempt for row in pane.runs.rows if row.file is None]
        assert summaries == [2, 1]  # newest first
        await move_to(pilot, first.id)
        await wait_until(pilot, lambda: pane.runs.task_id == first.id and pane.runs.rows, "the first task's runs")
        raw = next(row for row in pane.runs.rows if row.file is not None and row.file.kind == "raw")
        assert raw.file is not None and raw.file.state == "compressed"
        await pilot.press("3", "tab")
        assert app.focused is pane.runs
        pane.runs.cursor = pane.runs.rows.index(raw)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunFileScreen), "the run file screen")
        view = app.screen.query_one(RunFileView)
        await wait_until(pilot, lambda: view.count == 5000 and view._lines.get(0) == "raw line 0", "the first window")
        await pilot.press("G")
        await wait_until(pilot, lambda: view._lines.get(4999) == "raw line 4999", "the last window, read when shown")
        await pilot.press("escape")
        transcript = next(row for row in pane.runs.rows if row.file is not None and row.file.kind == "transcript")
        pane.runs.cursor = pane.runs.rows.index(transcript)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunFileScreen) and
                         app.screen.query_one(RunFileView)._lines.get(1) is not None, "the transcript's lines")
        view = app.screen.query_one(RunFileView)
        assert row_text(view, 0).strip() == "[red]not markup[/]"
        assert "␛[31mnot a colour" in row_text(view, 1)


async def test_R_proposes_the_refresh_task_once(base):
    write_document(base, "style.md", "Write plainly.\n")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await wait_until(pilot, lambda: pane.documents.rows, "the document")
        await pilot.press("3", "R")
        await wait_until(pilot, lambda: any("artifacts" in task.labels for task in app.all_tasks()), "the refresh task")
        refresh = next(task for task in app.all_tasks() if "artifacts" in task.labels)
        assert refresh.state is State.PROPOSED
        await pilot.press("R")
        await wait_until(pilot, lambda: any("no second one" in str(n.message) for n in app._notifications),
                         "the note that one is open")
        assert sum("artifacts" in task.labels for task in app.all_tasks()) == 1


async def test_the_generated_history_is_not_edited(base):
    with FactorySession(base) as session:
        land(session, "A task that landed")  # a real approval: the history is written
    assert (base.artifacts_dir / "history.md").exists()
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await wait_until(pilot, lambda: "history.md" in by_name(pane), "the history")
        assert by_name(pane)["history.md"].generated
        assert "A task that landed" in (base.artifacts_dir / "history.md").read_text()
        await pilot.press("3", "e")
        await wait_until(pilot, lambda: any("written by the factory" in str(n.message) for n in app._notifications),
                         "the refusal")


async def test_runs_that_arrive_after_the_task_was_shown_empty_put_the_cursor_on_a_file(base):
    """A task's runs can be read before its run is indexed (the list shows it
    empty) and again once it is: the cursor then rests on the first file,
    as after a move, not on the run's summary line."""
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title="ran", state=State.QUEUED), actor="test")
    write_run(base, task.id, 1, raw="out\n")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = artifacts_pane(app)
        await move_to(pilot, task.id)
        await wait_until(pilot, lambda: pane.runs.task_id == task.id and pane.runs.rows, "the task's runs")
        runs = [row.run for row in pane.runs.rows if row.file is None]
        pane.runs.show_runs(task.id, [])
        assert pane.runs.cursor == 0 and not pane.runs.rows
        pane.runs.show_runs(task.id, runs)
        assert pane.runs.rows[pane.runs.cursor].file is not None
