"""Plans from beads, Backlog.md and Task Master through ``factory plan
import``: files written by the tests in each tool's own format (fields the
importer ignores included) in a real repository, imported by the real
command (``python -m factory_tui``) into a real log; importing again
updates by the tool's ids and never duplicates; a state changes only as
the README's table says; every bad input is one line naming the file and
the record, and nothing is imported."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.cli import main
from factory_tui.model import NewTask, State
from tests.helpers import assert_one_line_error, log_tables

TABLES = ("tasks", "task_bodies", "deps", "events", "task_sources")


def factory(base: FactoryBase, *args: str, input: str | bytes | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args],
        capture_output=True, input=input.encode() if isinstance(input, str) else input,
        env=environment, timeout=120, check=False, cwd=cwd or base.root,
    )
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in out + err, err
    return subprocess.CompletedProcess(done.args, done.returncode, out, err)


def ok(base: FactoryBase, *args: str, **kwargs) -> str:
    done = factory(base, *args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ok_json(base: FactoryBase, *args: str, **kwargs):
    return json.loads(ok(base, *args, "--json", **kwargs))


def refused_line(base: FactoryBase, *args: str, **kwargs) -> str:
    """A refused import through the real command: exit 1, one line, and
    the log as it was."""
    before = log_tables(base.log_path, TABLES)
    done = factory(base, *args, **kwargs)
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
    assert log_tables(base.log_path, TABLES) == before
    return line


def refused_here(base: FactoryBase, *args: str) -> str:
    """The same, in this process (click's runner): for long tables of cases."""
    before = log_tables(base.log_path, TABLES)
    result = CliRunner(catch_exceptions=False).invoke(
        main, ["--base", str(base.root), *args], env={k: None for k in os.environ if k.startswith("FACTORY_")},
    )
    line = assert_one_line_error(result.exit_code, result.stdout, result.stderr)
    assert log_tables(base.log_path, TABLES) == before
    return line


def tasks(base: FactoryBase) -> dict[str, tuple]:
    """Every task as (title, state, priority, labels, depends_on)."""
    with ExecutionLog.open(base.log_path) as log:
        return {t.id: (t.title, t.state.value, t.priority, t.labels, t.depends_on) for t in log.list_tasks()}


# --- beads -------------------------------------------------------------------------------


def issue(issue_id: str, title: str, *, status: str = "open", priority: int = 2, blocks: tuple[str, ...] = (),
          **more) -> dict:
    """One line of .beads/issues.jsonl as bd writes it, with the fields the
    importer does not keep (type, assignee, timestamps, comments…)."""
    line = {
        "id": issue_id, "title": title, "description": more.pop("description", f"About {title}."),
        "status": status, "priority": priority, "issue_type": "task", "assignee": "someone",
        "created_at": "2026-01-02T10:00:00Z", "created_by": "me", "updated_at": "2026-01-03T10:00:00Z",
        "comments": [{"id": "c1", "issue_id": issue_id, "author": "me", "text": "noted", "created_at": "2026-01-02T10:00:00Z"}],
    }
    if status == "closed":
        line.update(closed_at="2026-01-04T10:00:00Z", close_reason="done")
    deps = [{"issue_id": issue_id, "depends_on_id": target, "type": "blocks",
             "created_at": "2026-01-02T10:00:00Z", "created_by": "me"} for target in blocks]
    if deps:
        line["dependencies"] = deps
    line.update(more)
    return line


def write_beads(root: Path, *issues: dict) -> Path:
    folder = root / ".beads"
    folder.mkdir(exist_ok=True)
    path = folder / "issues.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in issues))
    return path


def test_beads_issues_import_and_a_second_import_updates_by_their_ids(base: FactoryBase) -> None:
    root = base.root
    write_beads(
        root,
        issue("bd-1", "Schema", priority=1, labels=["db"]),
        issue("bd-2", "API", blocks=("bd-1",)),
        issue("bd-3", "Docs", status="closed", priority=4),
        issue("bd-4", "Someday", status="deferred", priority=3),
    )
    out = ok(base, "plan", "import", ".")
    assert out.strip() == "Imported from beads (.beads/issues.jsonl): 4 new tasks (T-1…T-4), 1 of them done."
    assert tasks(base) == {
        "T-1": ("Schema", "proposed", 1, ("db",), ()),
        "T-2": ("API", "proposed", 0, (), ("T-1",)),
        "T-3": ("Docs", "done", -2, (), ()),
        "T-4": ("Someday", "held", -1, (), ()),
    }
    shown = ok_json(base, "plan", "show", "T-2")
    assert shown["sources"] == [{"kind": "beads", "id": "bd-2", "status": "open", "path": ".beads/issues.jsonl"}]
    assert shown["body"] == "About API."
    assert "from:       beads bd-2 (open there; .beads/issues.jsonl)" in ok(base, "plan", "show", "T-2")

    # Nothing changed there: nothing changes here.
    again = ok(base, "plan", "import", ".beads/issues.jsonl")
    assert again.strip() == "Imported from beads (.beads/issues.jsonl): no new tasks; 4 unchanged."

    # The operator raises T-1 here; beads renames API, re-prioritises Docs
    # and adds an issue that waits for the API.
    with ExecutionLog.open(base.log_path) as log:
        log.set_priority("T-1", 5, actor="operator")
    write_beads(
        root,
        issue("bd-1", "Schema", priority=1, labels=["db"]),
        issue("bd-2", "API v2", blocks=("bd-1",), description="Routes and auth."),
        issue("bd-3", "Docs", status="closed", priority=0),
        issue("bd-4", "Someday", status="deferred", priority=3),
        issue("bd-5", "Client", blocks=("bd-2",)),
    )
    data = ok_json(base, "plan", "import", str(root / ".beads"))
    assert [t["id"] for t in data["imported"]] == ["T-5"]
    assert data["imported"][0]["depends_on"] == ["T-2"]
    assert data["updated"] == [
        {"task": "T-2", "id": "bd-2", "changed": ["title", "body"]},
        {"task": "T-3", "id": "bd-3", "changed": ["priority"]},
    ]
    assert {item["id"] for item in data["unchanged"]} == {"bd-1", "bd-4"}
    after = tasks(base)
    assert len(after) == 5  # never a second task for an id
    assert after["T-1"][2] == 5  # the operator's priority stays: beads did not change it
    assert after["T-2"][:2] == ("API v2", "proposed")
    assert after["T-3"][2] == 2
    with ExecutionLog.open(base.log_path) as log:
        assert log.get_task("T-2").body == "Routes and auth."
        imported = [(e.kind, e.note) for e in log.events(task_id="T-2") if e.actor.startswith("cli")]
        assert ("imported", "title from beads: API v2") in imported
        assert ("imported", "body from beads") in imported
    conn = sqlite3.connect(base.log_path)
    assert conn.execute("SELECT count(*) FROM task_sources").fetchone()[0] == 5


def test_a_state_follows_the_tool_only_until_the_factory_starts_the_task(base: FactoryBase) -> None:
    root = base.root
    write_beads(root, *(issue(f"bd-{n}", f"Issue {n}") for n in range(1, 5)))
    ok(base, "plan", "import", ".")
    with ExecutionLog.open(base.log_path) as log:
        log.apply("T-1", "approve", actor="operator")  # queued, never run
        log.apply("T-2", "approve", actor="operator")
        claim = log.claim_next("engine", lease_seconds=600)  # T-1 (the first ready)
        assert claim is not None and claim.task.id == "T-1"
    write_beads(
        root,
        issue("bd-1", "Issue 1", status="closed"),  # running here: stays running
        issue("bd-2", "Issue 2", status="closed"),  # queued, unstarted: done
        issue("bd-3", "Issue 3", status="deferred"),  # proposed: held
        issue("bd-4", "Issue 4", status="tombstone"),  # deleted there: cancelled
    )
    out = ok(base, "plan", "import", ".")
    assert "T-1 stays running: beads now says closed, but the factory has started or finished it here." in out
    states = {task_id: row[1] for task_id, row in tasks(base).items()}
    assert states == {"T-1": "running", "T-2": "done", "T-3": "held", "T-4": "cancelled"}
    with ExecutionLog.open(base.log_path) as log:
        [moved] = [e for e in log.events(task_id="T-2", kinds=["imported"])]
        assert (moved.from_state, moved.to_state, moved.note) == ("queued", "done", "beads says closed")
        # The operator's own move is not undone by an import of the same file.
        log.apply("T-3", "release", actor="operator")
    ok(base, "plan", "import", ".")
    assert tasks(base)["T-3"][1] == "queued"
    # Reopened there, done here: a done task never moves back.
    write_beads(
        root,
        issue("bd-1", "Issue 1", status="closed"), issue("bd-2", "Issue 2", status="open"),
        issue("bd-3", "Issue 3", status="deferred"), issue("bd-4", "Issue 4", status="tombstone"),
    )
    data = ok_json(base, "plan", "import", ".")
    assert data["kept"] == [{"task": "T-2", "id": "bd-2", "state": "done", "status": "open"}]
    assert tasks(base)["T-2"][1] == "done"


def test_dependencies_follow_the_tool_and_one_added_here_stays(base: FactoryBase) -> None:
    root = base.root
    write_beads(root, issue("bd-1", "a"), issue("bd-2", "b"), issue("bd-3", "c", blocks=("bd-1",)))
    ok(base, "plan", "import", ".")
    with ExecutionLog.open(base.log_path) as log:
        mine = log.add_task(NewTask(title="made here", state=State.QUEUED), actor="operator").id
        log.add_dependency("T-3", mine, actor="operator")
    # beads moves bd-3 from waiting for bd-1 to waiting for bd-2.
    write_beads(root, issue("bd-1", "a"), issue("bd-2", "b"), issue("bd-3", "c", blocks=("bd-2",)))
    data = ok_json(base, "plan", "import", ".")
    assert data["updated"] == [{"task": "T-3", "id": "bd-3", "changed": ["dependencies"]}]
    assert tasks(base)["T-3"][4] == (mine, "T-2")
    # A loop through the dependency added here is refused, naming the record.
    write_beads(root, issue("bd-1", "a"), issue("bd-2", "b"), issue("bd-3", "c", blocks=("bd-2",)),
                issue("bd-9", "loop", blocks=("bd-3",)))
    with ExecutionLog.open(base.log_path) as log:
        log.add_dependency(mine, "T-1", actor="operator")
    write_beads(root, issue("bd-1", "a", blocks=("bd-3",)), issue("bd-2", "b"), issue("bd-3", "c", blocks=("bd-2",)))
    line = refused_line(base, "plan", "import", ".")
    assert line == f"factory: .beads/issues.jsonl:1 (bd-1): dependency cycle: bd-1 → bd-3 → {mine} → bd-1"


def test_an_agents_import_only_proposes(base: FactoryBase) -> None:
    write_beads(base.root, issue("bd-1", "first"), issue("bd-2", "second", status="closed"))
    ok(base, "plan", "import", ".", "--state", "queued")
    with ExecutionLog.open(base.log_path) as log:
        claim = log.claim_next("engine", lease_seconds=600)
        assert claim is not None and claim.task.id == "T-1"
    run = base.runs_dir / "T-1" / "1"
    run.mkdir(parents=True)
    agent = {"FACTORY_BASE": str(base.root), "FACTORY_TASK": "T-1", "FACTORY_RUN": str(run), "FACTORY_TOKEN": claim.secret}
    write_beads(base.root, issue("bd-1", "renamed by the agent", status="closed"), issue("bd-2", "second"),
                issue("bd-3", "third", status="closed"))
    out = factory(base, "plan", "import", ".", "--state", "queued", env=agent)
    assert out.returncode == 0, out.stderr
    assert "1 new task (T-3), all proposed; 2 imported before and left as they are" in out.stdout
    assert tasks(base) == {
        "T-1": ("first", "running", 0, (), ()),
        "T-2": ("second", "done", 0, (), ()),
        "T-3": ("third", "proposed", 0, (), ()),
    }
    with ExecutionLog.open(base.log_path) as log:
        assert log.get_task("T-3").source == "agent:T-1"


def test_text_from_beads_is_stored_and_shown_literally(base: FactoryBase) -> None:
    title = "[bold red]x[/] \x1b[31mred\x1b[0m \u202egnp.exe"
    write_beads(base.root, issue("bd-1", title, description="[link=file:///etc]y[/link] \x1b]0;owned\x07"))
    ok(base, "plan", "import", ".")
    with ExecutionLog.open(base.log_path) as log:
        task = log.get_task("T-1")
    assert task.title == title and task.body == "[link=file:///etc]y[/link] \x1b]0;owned\x07"
    listed = ok(base, "plan", "list")
    assert "\x1b" not in listed and "\u202e" not in listed
    assert "[bold red]x[/] ␛[31mred" in listed


# --- Backlog.md ----------------------------------------------------------------------------


def backlog_task(folder: Path, task_id: str, title: str, *, status: str = "To Do", deps: str = "[]",
                 extra: str = "", body: str = "") -> Path:
    """A task file as Backlog.md writes one, dates, ordinal and section markers included."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task_id} - {title.replace(' ', '-')}.md"
    path.write_text(
        f"---\nid: {task_id}\ntitle: {title}\nstatus: {status}\nassignee: @codex\n"
        f"created_date: '2026-07-26 10:30'\nlabels: []\ndependencies: {deps}\nordinal: 1000\n{extra}---\n\n"
        "## Description\n\n<!-- SECTION:DESCRIPTION:BEGIN -->\n"
        f"{body or 'About ' + title + '.'}\n<!-- SECTION:DESCRIPTION:END -->\n"
    )
    return path


def test_a_backlog_folder_imports_and_an_archived_task_is_cancelled(base: FactoryBase) -> None:
    backlog = base.root / "backlog"
    (backlog).mkdir()
    (backlog / "config.yml").write_text(
        'project_name: "shop"\ndefault_status: "To Do"\nstatuses: ["To Do", "In Progress", "Done"]\n'
        'labels: []\ndate_format: yyyy-mm-dd hh:mm\nauto_commit: false\n'
    )
    tasks_dir, completed, archive = backlog / "tasks", backlog / "completed", backlog / "archive" / "tasks"
    first = backlog_task(tasks_dir, "task-1", "Cart", extra="priority: high\n")
    backlog_task(tasks_dir, "task-10", "Checkout", status="In Progress", deps="[task-1, task-3, task-4]")
    backlog_task(completed, "task-3", "Catalogue", status="Done")
    backlog_task(archive, "task-4", "Wishlist")  # dropped there: not imported
    backlog_task(backlog / "drafts", "draft-1", "An idea")  # a draft: not a task yet
    (tasks_dir / "readme.md").write_text("Not a task.\n")
    out = ok(base, "plan", "import", "backlog")
    assert out.strip() == "Imported from Backlog.md (backlog): 3 new tasks (T-1…T-3), 1 of them done."
    # In id order; a dependency on an archived task is none (Backlog.md drops it too).
    assert tasks(base) == {
        "T-1": ("Cart", "proposed", 1, (), ()),
        "T-2": ("Catalogue", "done", 0, (), ()),
        "T-3": ("Checkout", "proposed", 0, (), ("T-1", "T-2")),
    }
    with ExecutionLog.open(base.log_path) as log:
        assert log.get_task("T-1").body == "## Description\n\nAbout Cart."
    # Archived there: cancelled here, as it has not started, and no longer
    # waited for (Backlog.md takes it out of other tasks' dependencies).
    shutil.move(str(first), str(archive / first.name))
    data = ok_json(base, "plan", "import", str(base.root))
    assert data["updated"] == [
        {"task": "T-3", "id": "TASK-10", "changed": ["dependencies"]},
        {"task": "T-1", "id": "TASK-1", "changed": ["state"]},
    ]
    assert tasks(base)["T-1"][1] == "cancelled"
    assert tasks(base)["T-3"][4] == ("T-2",)
    assert ok_json(base, "plan", "show", "T-1")["sources"][0]["status"] == "archived"
    # One task file alone imports too (its dependencies imported before).
    single = backlog_task(tasks_dir, "task-11", "Receipts", deps="[task-10]")
    one = ok_json(base, "plan", "import", str(single))
    assert [(t["id"], t["depends_on"]) for t in one["imported"]] == [("T-4", ["T-3"])]


def test_backlog_refusals_name_the_file(base: FactoryBase) -> None:
    tasks_dir = base.root / "backlog" / "tasks"
    backlog_task(tasks_dir, "task-1", "Fine")
    broken = tasks_dir / "task-2 - Broken.md"
    broken.write_text("---\nid: task-2\ntitle: [unclosed\nstatus: To Do\n---\nbody\n")
    assert refused_line(base, "plan", "import", "backlog") == (
        "factory: backlog/tasks/task-2 - Broken.md:4: YAML: while parsing a flow sequence, did not find expected ',' or ']'"
    )
    broken.unlink()
    backlog_task(tasks_dir, "task-2", "Broken", status="Blocked")
    assert refused_here(base, "plan", "import", str(base.root / "backlog")).endswith(
        "task-2 - Broken.md (TASK-2): unknown status 'Blocked' (the project's statuses: To Do, In Progress, Done)"
    )
    (tasks_dir / "task-2 - Broken.md").unlink()
    # A link that leads out of backlog/ is not followed.
    outside = base.root.parent / "secret.md"
    outside.write_text("---\nid: task-3\ntitle: stolen\n---\n")
    (tasks_dir / "task-3 - Link.md").symlink_to(outside)
    assert refused_here(base, "plan", "import", str(base.root / "backlog")).endswith(
        "task-3 - Link.md: a link to a file outside backlog/; refused"
    )
    (tasks_dir / "task-3 - Link.md").unlink()
    # A FIFO among the task files is refused without waiting on it.
    os.mkfifo(tasks_dir / "task-4 - Pipe.md")
    assert refused_line(base, "plan", "import", "backlog").endswith("task-4 - Pipe.md: not a regular file")


# --- Task Master ---------------------------------------------------------------------------


def tm_task(number: int, title: str, **fields) -> dict:
    task = {"id": number, "title": title, "description": f"About {title}.", "status": "pending",
            "dependencies": [], "priority": "medium", "details": "", "testStrategy": "", "subtasks": [],
            "complexity": 5, "recommendedSubtasks": 2, "expansionPrompt": "split", "updatedAt": "2026-01-01T00:00:00Z"}
    task.update(fields)
    return task


def write_taskmaster(root: Path, data: dict) -> Path:
    path = root / ".taskmaster" / "tasks" / "tasks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def test_task_master_tasks_and_subtasks_import_and_update(base: FactoryBase) -> None:
    data = {
        "master": {
            "tasks": [
                tm_task(1, "Setup", status="done", priority="high"),
                tm_task(2, "Cart", dependencies=[1], subtasks=[
                    {"id": 1, "title": "Model", "description": "Rows.", "status": "pending", "dependencies": []},
                    {"id": 2, "title": "Routes", "description": "HTTP.", "status": "pending", "dependencies": [1]},
                ]),
            ],
            "metadata": {"created": "2026-01-01T00:00:00Z", "description": "Tasks for master context"},
        },
        "feature-x": {"tasks": [tm_task(1, "Experiment", status="deferred")], "metadata": {}},
    }
    write_taskmaster(base.root, data)
    out = ok(base, "plan", "import", ".")
    assert out.strip() == "Imported from Task Master (.taskmaster/tasks/tasks.json): 4 new tasks (T-1…T-4), 1 of them done."
    assert tasks(base) == {
        "T-1": ("Setup", "done", 1, (), ()),
        "T-2": ("Cart", "proposed", 0, (), ("T-1", "T-3", "T-4")),
        "T-3": ("Model", "proposed", 0, (), ("T-1",)),
        "T-4": ("Routes", "proposed", 0, (), ("T-3", "T-1")),
    }
    tagged = ok_json(base, "plan", "import", ".taskmaster", "--tag", "feature-x")
    assert [(t["id"], t["state"]) for t in tagged["imported"]] == [("T-5", "held")]
    assert ok_json(base, "plan", "show", "T-5")["sources"][0]["id"] == "feature-x:1"
    # Task Master marks a subtask done and adds one: the rest as before.
    data["master"]["tasks"][1]["subtasks"][0]["status"] = "done"
    data["master"]["tasks"][1]["subtasks"].append({"id": 3, "title": "Tests", "status": "pending", "dependencies": [2]})
    write_taskmaster(base.root, data)
    again = ok_json(base, "plan", "import", str(base.root / ".taskmaster" / "tasks" / "tasks.json"))
    assert [(t["id"], t["title"], t["depends_on"]) for t in again["imported"]] == [("T-6", "Tests", ["T-4", "T-1"])]
    assert again["updated"] == [
        {"task": "T-2", "id": "2", "changed": ["dependencies"]},
        {"task": "T-3", "id": "2.1", "changed": ["state"]},
    ]
    assert tasks(base)["T-2"][4] == ("T-1", "T-3", "T-4", "T-6")
    assert tasks(base)["T-3"][1] == "done"


# --- finding the plan, and what cannot be read ------------------------------------------------


def test_the_plan_is_found_from_the_path_or_named(base: FactoryBase, tmp_path: Path) -> None:
    root = base.root
    write_beads(root, issue("bd-1", "from beads"))
    write_taskmaster(root, {"tasks": [tm_task(1, "from task master")]})
    assert refused_here(base, "plan", "import", str(root)) == (
        f"factory: {root} holds plans of beads and taskmaster: name one with --from"
    )
    assert "Imported from Task Master" in ok(base, "plan", "import", ".", "--from", "taskmaster")
    assert refused_here(base, "plan", "import", str(root), "--from", "beads", "--tag", "x") == (
        f"factory: --tag is for Task Master plans; {root} is read as beads"
    )
    assert refused_here(base, "plan", "import", str(root), "--from", "backlog") == (
        f"factory: no backlog plan in {root} (looked for backlog/tasks/)"
    )
    # Standard input, named.
    line = json.dumps(issue("bd-7", "from stdin"))
    out = ok(base, "plan", "import", "-", "--from", "beads", input=line + "\n")
    assert out.strip() == "Imported from beads (standard input): 1 new task (T-2)."
    # A checklist is still a checklist, whatever folder it is in.
    checklist = tmp_path / "plan.md"
    checklist.write_text("- [ ] from the checklist\n")
    assert ok(base, "plan", "import", str(checklist)).strip() == "Imported 1 task (T-3), 0 of them done."
    assert refused_here(base, "plan", "import", str(tmp_path / "nowhere")) == (
        f"factory: no such file: {tmp_path / 'nowhere'}"
    )


def test_a_fifo_is_refused_without_waiting_on_it(base: FactoryBase, tmp_path: Path) -> None:
    for name in ("issues.jsonl", "plan.md"):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        # The real command, bounded by factory()'s timeout: a reader that
        # opened the FIFO would wait forever for a writer.
        assert refused_line(base, "plan", "import", str(fifo)) == f"factory: cannot read {fifo}: not a regular file"


BAD_BEADS = [
    ('{"id": "bd-1", "title": "a"}\n{"id": "bd-2", "title": "b",\n',
     "issues.jsonl:2: not JSON: Expecting property name enclosed in double quotes (column 29)"),
    ('{"id": "bd-1", "title": "a", "status": "wip"}\n',
     "issues.jsonl:1 (bd-1): unknown status 'wip' "
     "(beads statuses: open, in_progress, blocked, hooked, deferred, pinned, closed, tombstone)"),
    ('{"id": "bd-1", "title": "a", "dependencies": [{"depends_on_id": "bd-404", "type": "blocks"}]}\n',
     "issues.jsonl:1 (bd-1): depends on bd-404, which is neither in the plan nor imported before"),
    ('{"id": "bd-1", "title": "a", "dependencies": [{"depends_on_id": "bd-2", "type": "blocks"}]}\n'
     '{"id": "bd-2", "title": "b", "dependencies": [{"depends_on_id": "bd-1", "type": "blocks"}]}\n',
     "issues.jsonl:1 (bd-1): dependency cycle: bd-1 → bd-2 → bd-1"),
    ('{"id": "bd-1", "title": "a"}\n{"id": "bd-1", "title": "again"}\n',
     "issues.jsonl:2 (bd-1): the id bd-1 is given twice (first at {dir}/issues.jsonl:1 (bd-1))"),
    ('{"id": "bd-1", "title": "a", "priority": "P1"}\n', "issues.jsonl:1 (bd-1): priority must be a whole number from 0 to 4, not 'P1'"),
    ('{"id": "bd-1", "title": ["a"]}\n', "issues.jsonl:1 (bd-1): the title must be text, not ['a']"),
    ('{"id": "bd-1", "title": "a", "labels": {"ui": true}}\n', "issues.jsonl:1 (bd-1): labels must be a list, not {'ui': True}"),
    ("\n\n", "issues.jsonl: no beads tasks in it"),
]


@pytest.mark.parametrize(("text", "message"), BAD_BEADS)
def test_a_bad_beads_file_is_one_line_and_nothing_is_imported(base: FactoryBase, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "issues.jsonl"
    path.write_text(text)
    expected = f"factory: {tmp_path}/" + message.replace("{dir}", str(tmp_path))
    assert refused_here(base, "plan", "import", str(path)) == expected


def test_bad_bytes_and_huge_lines_are_refused_by_line(base: FactoryBase, tmp_path: Path) -> None:
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b'{"id": "bd-1", "title": "a"}\n{"id": "bd-2", "title": "caf\xe9"}\n')
    assert refused_line(base, "plan", "import", str(path)) == f"factory: {path}:2: not UTF-8 text"
    huge = '{"id": "bd-2", "title": "big", "description": "' + "x" * (1024 * 1024) + '"}'
    path.write_text('{"id": "bd-1", "title": "a"}\n' + huge + "\n")
    assert refused_line(base, "plan", "import", str(path)) == (
        f"factory: {path}:2: a line of {len(huge):,} bytes; a line may have 1,048,576 at most"
    )


def test_a_bad_task_master_file_is_one_line_and_nothing_is_imported(base: FactoryBase) -> None:
    path = write_taskmaster(base.root, {"tasks": [tm_task(1, "a", dependencies=[2]), tm_task(2, "b", dependencies=[1])]})
    assert refused_here(base, "plan", "import", str(base.root)) == (
        f"factory: {path} (task 1, tasks[0]): dependency cycle: 1 → 2 → 1"
    )
    path.write_text('{"tasks": [\n  {"id": 1, "title": "a", "status": "paused"}\n]}')
    assert refused_here(base, "plan", "import", str(path)).endswith(
        "(task 1, tasks[0]): unknown status 'paused' "
        "(Task Master statuses: pending, in-progress, blocked, review, deferred, done, completed, cancelled)"
    )
    path.write_text('{"tasks": [\n  {"id": 1, "title": "a",}\n]}')
    assert refused_here(base, "plan", "import", str(path)) == (
        f"factory: {path}:2: not JSON: Expecting property name enclosed in double quotes (column 26)"
    )


def test_two_imports_at_once_make_each_task_once(base: FactoryBase) -> None:
    """Both work the import out before taking the write lock; the second
    to take it finds the log changed, works it out again, and finds every
    issue imported."""
    n = 2000
    write_beads(base.root, *(issue(f"bd-{i}", f"Issue {i}", blocks=(f"bd-{i - 1}",) if i else ()) for i in range(n)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    argv = [sys.executable, "-m", "factory_tui", "--base", str(base.root), "plan", "import", str(base.root)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
            for _ in range(2)]
    outputs = sorted(run.communicate(timeout=120)[0].strip() for run in runs)
    assert [run.returncode for run in runs] == [0, 0]
    where = f"{base.root}/.beads/issues.jsonl"
    assert outputs == sorted([
        f"Imported from beads ({where}): {n} new tasks (T-1…T-{n}).",
        f"Imported from beads ({where}): no new tasks; {n} unchanged.",
    ])
    conn = sqlite3.connect(base.log_path)
    assert conn.execute("SELECT count(*), count(DISTINCT title) FROM tasks").fetchone() == (n, n)
    assert conn.execute("SELECT count(*) FROM task_sources").fetchone()[0] == n
    assert conn.execute("SELECT count(*) FROM deps").fetchone()[0] == n - 1


def test_an_import_that_waited_for_the_lock_works_itself_out_again(base: FactoryBase) -> None:
    """The import works out its tasks' ids before taking the write lock;
    another writer takes T-1 while it waits, and the import, finding the
    log changed, works them out again (else its T-1 would collide)."""
    from tests.engine_helpers import wait_for

    write_beads(base.root, issue("bd-1", "first"), issue("bd-2", "second", blocks=("bd-1",)))
    other = sqlite3.connect(base.log_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    importing = subprocess.Popen(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), "plan", "import", str(base.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )
    try:
        # SQLite's busy handler sleeps between tries: the import is waiting
        # for the lock, its work out already done.
        wait_for(lambda: "nanosleep" in Path(f"/proc/{importing.pid}/wchan").read_text(),
                 "the import to wait for the write lock", limit=30)
        other.execute(
            "INSERT INTO tasks (seq, title, state, priority, attempts, created_at, updated_at) "
            "VALUES (1, 'made meanwhile', 'queued', 0, 0, 1.0, 1.0)"
        )
        other.execute("COMMIT")
        out, err = importing.communicate(timeout=60)
    finally:
        other.close()
        if importing.poll() is None:
            importing.kill()
            importing.wait()
    assert importing.returncode == 0, err
    assert "2 new tasks (T-2…T-3)" in out
    assert tasks(base) == {
        "T-1": ("made meanwhile", "queued", 0, (), ()),
        "T-2": ("first", "proposed", 0, (), ()),
        "T-3": ("second", "proposed", 0, (), ("T-2",)),
    }
