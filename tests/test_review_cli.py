"""The operator's review loop from the command line (issue 7): several ids
per action, why a task failed, dependencies that can never be met and
dropping them, JSON errors, approvals that were refused, idempotent
imports, cancel messages. Real bases in temporary git repositories, through
click's CliRunner as tests/test_cli.py does, and real subprocesses where
the process boundary matters."""

from __future__ import annotations

import json
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator
from factory_tui.backends.worktrees import Worktrees
from factory_tui.model import State
from tests.test_cli import add, ok, ok_json, refused, run


def worktrees(base: FactoryBase) -> Worktrees:
    return Worktrees(base.root, base_branch="main")


# --- cancel says nothing of a branch a task never had ------------------------------------


def test_cancelling_a_task_that_never_ran_mentions_no_branch(base) -> None:
    never = add(base, "never ran")
    with ExecutionLog.open(base.log_path) as log:
        detail = Operator(base, log).cancel_detail(log.get_task(never))
    assert "branch" not in detail and "factory/" not in detail
    assert "never ran" in detail
    message = ok(base, "task", "cancel", never).stdout
    assert message == f"{never}: queued → cancelled\n"


def test_cancelling_a_task_with_a_branch_says_where_its_work_is(base) -> None:
    ran = add(base, "ran once")
    worktrees(base).create_for(ran)
    worktrees(base).remove(ran)  # the branch stays, the worktree is gone
    with ExecutionLog.open(base.log_path) as log:
        detail = Operator(base, log).cancel_detail(log.get_task(ran))
    assert f"factory/{ran}" in detail
    assert ok(base, "task", "cancel", ran).stdout == f"{ran}: queued → cancelled; its work stays on factory/{ran}\n"


# --- the demo says where its base is -------------------------------------------------------


def test_the_demo_says_where_its_base_is_when_the_console_has_gone(tmp_path: Path) -> None:
    from factory_tui.cli import demo_farewell

    root = tmp_path / "shopfront"
    assert str(root) in demo_farewell(root, kept=True, engine_stays=False)
    assert "kept" in demo_farewell(root, kept=True, engine_stays=False)
    stays = demo_farewell(root, kept=False, engine_stays=True)
    assert str(root) in stays and "engine stop" in stays
    gone = demo_farewell(root, kept=False, engine_stays=False)
    assert str(root) in gone and "removed" in gone and "--path" in gone


def test_the_demo_says_its_agent_fails_on_purpose(tmp_path: Path) -> None:
    help_text = ok(None, "demo", "--help").stdout
    assert "fails one run in ten on purpose" in " ".join(help_text.split())
    built = ok(None, "demo", "--no-console", "--path", str(tmp_path / "demo")).stdout.strip()
    # The printed path is the base, and `status` names it too.
    assert ok_json(built, "status")["base"] == built


# --- helpers: a task taken to review by hand (what the engine does, minus the agent) -----


def to_review(base: FactoryBase, title: str, files: dict[str, str], outcome: State = State.REVIEW) -> str:
    """Add a task, claim it, make its worktree and branch, commit ``files``
    there and end its run in ``outcome``: real git and the real log."""
    with ExecutionLog.open(base.log_path) as log:
        task_id = add(base, title)
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task_id
        prepared = worktrees(base).prepare_for(task_id, owned=False)
        log.record_branch_start(task_id, prepared.start)
        for name, text in files.items():
            (prepared.path / name).write_text(text)
        assert worktrees(base).commit_all(task_id, f"work on {task_id}")
        log.finish(claim.token, outcome)
    return task_id


def git_out(where: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def json_error(result) -> str:
    """A refused command run with --json: exit 1, nothing on stdout, one
    JSON line on stderr; returns its error."""
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    data = json.loads(lines[0])
    assert list(data) == ["error"]
    return data["error"]


# --- --json errors are JSON ---------------------------------------------------------------


def test_with_json_an_error_is_a_json_line_on_stderr(base) -> None:
    result = run(base, "task", "approve", "T-99", "--json")
    assert result.exit_code == 1
    assert json_error(result) == "no such task: T-99"
    # Whatever comes first on the line: a malformed id is checked before --json is read.
    result = run(base, "task", "hold", "nope", "--json")
    assert result.exit_code == 1
    assert json_error(result).startswith("not a task id: 'nope'")
    result = run(base, "plan", "show", "T-5", "--json")
    assert json_error(result) == "no such task: T-5"
    # A command line click cannot parse: exit 2, and JSON too.
    result = run(base, "plan", "show", "--json")
    assert result.exit_code == 2
    assert json_error(result).startswith("Missing argument 'ID'")
    # Without --json, the usual line.
    assert refused(base, "task", "approve", "T-99") == "factory: no such task: T-99"


def test_json_errors_from_a_real_process_are_ascii_json(base) -> None:
    from tests.engine_helpers import factory

    done = factory(base, "plan", "show", "T-7", "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert json.loads(done.stderr) == {"error": "no such task: T-7"}
    add(base, "a title with \x1b[31m an escape and é")
    hostile = factory(base, "task", "hold", "T-1", "T-1", "--json")  # the second one fails
    assert hostile.returncode == 1
    assert "\x1b" not in hostile.stdout
    entries = json.loads(hostile.stdout)
    assert entries[0]["title"] == "a title with \x1b[31m an escape and é"
    assert entries[1]["error"].startswith("cannot hold T-1")
    # An error naming outside text: escaped in the JSON, never raw on the terminal.
    missing = factory(base, "plan", "import", "\x1b[31mplan-é.md", "--json")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.isascii() and "\x1b" not in missing.stderr
    assert json.loads(missing.stderr) == {"error": "no such file: \x1b[31mplan-é.md"}


# --- several ids at once ------------------------------------------------------------------


def test_an_action_on_several_ids_tries_each_and_reports_each(base) -> None:
    one, two, three = add(base, "one"), add(base, "two"), add(base, "three")
    ok(base, "task", "hold", two)
    result = run(base, "task", "hold", one, two, three, "T-99")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{one}: queued → held", f"{three}: queued → held"]
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(line.startswith("factory: ") for line in errors)
    assert f"cannot hold {two}" in errors[0] and "no such task: T-99" in errors[1]
    states = {t["id"]: t["state"] for t in ok_json(base, "plan", "list")}
    assert states == {one: "held", two: "held", three: "held"}
    # All went through: exit 0, a line each.
    released = ok(base, "task", "release", one, two, three)
    assert released.stdout.splitlines() == [f"{t}: held → queued" for t in (one, two, three)]


def test_several_ids_with_json_give_a_list(base) -> None:
    one, two = add(base, "one"), add(base, "two")
    result = run(base, "task", "cancel", one, "nope", two, "--json", "--note", "not now")
    assert result.exit_code == 1
    assert result.stderr == ""
    entries = json.loads(result.stdout)
    assert [e["id"] for e in entries] == [one, "nope", two]
    assert entries[0]["state"] == entries[2]["state"] == "cancelled"
    assert entries[0]["message"] == f"{one}: queued → cancelled"
    assert entries[1]["error"].startswith("not a task id: 'nope'")
    # Re-queue both back with one note each: every id gets the same feedback.
    requeued = ok_json(base, "task", "requeue", one, two, "--note", "try again")
    assert [(e["id"], e["state"], e["feedback"]) for e in requeued] == [
        (one, "queued", "try again"), (two, "queued", "try again"),
    ]


def test_approve_json_holds_the_merge_commit(base) -> None:
    first = to_review(base, "first", {"a.txt": "a\n"})
    second = to_review(base, "second", {"b.txt": "b\n"})
    data = ok_json(base, "task", "approve", first)
    assert data["state"] == "done"
    assert data["merge_commit"] == git_out(base.root, "rev-parse", "main")
    entries = ok_json(base, "task", "approve", second)
    assert entries["merge_commit"] == git_out(base.root, "rev-parse", "main")
    # A proposed task approved is queued: nothing merged, no merge commit.
    proposed = add(base, "an idea", "--state", "proposed")
    assert "merge_commit" not in ok_json(base, "task", "approve", proposed)


# --- an approval refused is in the log --------------------------------------------------


def test_an_approval_refused_by_files_in_the_way_is_a_warning_in_the_log(base) -> None:
    task_id = to_review(base, "adds a file", {"new.txt": "the task's\n"})
    # The user's own untracked file where the merge would put the task's.
    (base.root / "new.txt").write_text("mine, not committed\n")
    line = refused(base, "task", "approve", task_id)
    assert "nothing changed" in line and "new.txt" in line
    [warning] = [e for e in ok_json(base, "log", "--task", task_id, "--kind", "warning")]
    assert warning["note"].startswith(f"approval refused, {task_id} stays in review: ")
    assert warning["data"]["refused"] == "approve"
    assert warning["data"]["reason"] == line.removeprefix("factory: ")
    assert ok_json(base, "plan", "show", task_id)["state"] == "review"
    assert (base.root / "new.txt").read_text() == "mine, not committed\n"


def test_an_approval_refused_by_a_dirty_checkout_is_a_warning_in_the_log(base) -> None:
    task_id = to_review(base, "edits the readme", {"README.md": "# the task's readme\n"})
    (base.root / "README.md").write_text("# my edit, not committed\n")
    line = refused(base, "task", "approve", task_id)
    warnings = ok_json(base, "log", "--task", task_id, "--kind", "warning")
    assert len(warnings) == 1 and warnings[0]["data"]["reason"] == line.removeprefix("factory: ")
    # Once the way is clear, it lands, and nothing more is warned.
    (base.root / "README.md").write_text("# a project\n")
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"
    assert len(ok_json(base, "log", "--task", task_id, "--kind", "warning")) == 1


# --- importing a file again -------------------------------------------------------------


def test_importing_a_file_again_imports_only_what_is_new(base, tmp_path: Path) -> None:
    from tests.helpers import log_tables

    plan = tmp_path / "plan.md"
    plan.write_text("- [ ] Schema {#schema}\n- [ ] API {#api after=schema}\n- [x] Licence\n")
    first = ok(base, "plan", "import", str(plan)).stdout
    assert first == "Imported 3 tasks (T-1…T-3), 1 of them done.\n"
    before = log_tables(base.log_path)
    again = ok(base, "plan", "import", str(plan)).stdout
    assert again == "Nothing to import: all 3 items were imported before (T-1…T-3), skipped.\n"
    assert log_tables(base.log_path) == before  # not a byte written
    # An item added to the file, depending on one imported before.
    plan.write_text(plan.read_text() + "- [ ] Docs {after=api}\n")
    grown = ok(base, "plan", "import", str(plan)).stdout
    assert grown == "Imported 1 task (T-4), 0 of them done; 3 already imported, skipped.\n"
    docs = ok_json(base, "plan", "show", "T-4")
    assert (docs["title"], docs["depends_on"]) == ("Docs", ["T-2"])
    data = ok_json(base, "plan", "import", str(plan))
    assert data["imported"] == []
    assert data["skipped"] == [
        {"line": 1, "title": "Schema", "task": "T-1"}, {"line": 2, "title": "API", "task": "T-2"},
        {"line": 3, "title": "Licence", "task": "T-3"}, {"line": 4, "title": "Docs", "task": "T-4"},
    ]
    assert len(ok_json(base, "plan", "list")) == 4


def test_a_title_twice_in_a_file_is_two_tasks_and_each_is_known_again(base, tmp_path: Path) -> None:
    plan = tmp_path / "steps.md"
    plan.write_text("- [ ] Run the tests\n- [ ] Fix what fails\n- [ ] Run the tests\n")
    assert [t["id"] for t in ok_json(base, "plan", "import", str(plan))["imported"]] == ["T-1", "T-2", "T-3"]
    plan.write_text(plan.read_text() + "- [ ] Run the tests\n")
    data = ok_json(base, "plan", "import", str(plan))
    assert [(t["id"], t["title"]) for t in data["imported"]] == [("T-4", "Run the tests")]
    assert [item["task"] for item in data["skipped"]] == ["T-1", "T-2", "T-3"]
    # Another file with the same titles is another file's items.
    other = tmp_path / "other.md"
    other.write_text("- [ ] Run the tests\n")
    assert ok_json(base, "plan", "import", str(other))["imported"][0]["id"] == "T-5"
