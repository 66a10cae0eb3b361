"""Approve after QA (issue 8 §2): a task whose required QA has not passed on
its branch head is refused unless forced with a note; when the base branch
moved since the task's QA, the required tests run again on the merge commit
before the base branch moves, and main never goes red.

Real bases in temporary git repositories, real scenario files, real test
commands run in clean checkouts; the CLI through click's CliRunner."""

from __future__ import annotations

import sqlite3
import subprocess

from factory_tui.backends import qa_checks
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktrees import Worktrees
from tests.test_cli import ok_json, refused, run
from tests.test_review_cli import git_out, to_review

# Fails when a.txt and b.txt both say "on": the task turns a on, a later
# commit on main turns b on; each alone passes, their merge does not.
CHECK = """import pathlib, sys
on = [n for n in ("a.txt", "b.txt") if pathlib.Path(n).read_text().strip() == "on"]
sys.exit(1 if len(on) == 2 else 0)
"""

UNIT = """---
kind: test
run: ["{python}", "check.py"]
---
Both switches on is a bug.
"""


def commit_on_main(base: FactoryBase, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (base.root / name).write_text(text)
    subprocess.run(["git", "-C", str(base.root), "add", *files], check=True)
    subprocess.run(["git", "-C", str(base.root), "commit", "-q", "-m", message], check=True)
    return git_out(base.root, "rev-parse", "HEAD")


def with_scenario(base: FactoryBase) -> FactoryBase:
    commit_on_main(base, {"check.py": CHECK, "a.txt": "off\n", "b.txt": "off\n"}, "the switches")
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    (base.qa_dir / "unit.md").write_text(UNIT, encoding="utf-8")
    return base


def main_head(base: FactoryBase) -> str:
    return git_out(base.root, "rev-parse", "main")


def branch_head(base: FactoryBase, task_id: str) -> str:
    head = Worktrees(base.root, base_branch="main").branch_head(task_id)
    assert head is not None
    return head


def pass_qa(base: FactoryBase, task_id: str) -> None:
    """QA run on demand on the task's head, recorded: what `factory qa run`
    does."""
    head = branch_head(base, task_id)
    scenarios = qa_checks.valid_scenarios(base)
    results = qa_checks.run_scenarios(base, scenarios, commit=head, base_commit=main_head(base),
                                      task_id=task_id, attempt=1)
    assert [str(r.verdict) for r in results] == ["PASS"], [r.reason for r in results]
    with ExecutionLog.open(base.log_path) as log:
        log.record_qa_on_demand(results, actor="test", task_id=task_id, attempt=1)


def state(base: FactoryBase, task_id: str) -> str:
    return ok_json(base, "plan", "show", task_id)["state"]


def warnings(base: FactoryBase, task_id: str) -> list[dict]:
    return [e for e in ok_json(base, "log", "--task", task_id) if e["kind"] == "warning"]


# --- refused until QA passed on the head ---------------------------------------------


def test_approve_is_refused_until_required_qa_passed_on_the_head(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    before = main_head(base)
    head = branch_head(base, task_id)

    line = refused(base, "task", "approve", task_id)
    assert f"{task_id}: QA has not passed on factory/{task_id}'s head {head[:7]} (never checked)" in line
    assert f"factory qa run --task {task_id}" in line and "--force --note" in line
    assert state(base, task_id) == "review" and main_head(base) == before
    assert "QA has not passed" in warnings(base, task_id)[-1]["note"]

    pass_qa(base, task_id)
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"
    assert main_head(base) == head


def test_a_commit_on_the_branch_after_qa_makes_it_stale(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    pass_qa(base, task_id)
    checked = branch_head(base, task_id)
    worktree = base.root / ".factory" / "worktrees" / task_id
    (worktree / "note.txt").write_text("the operator's own touch\n")
    subprocess.run(["git", "-C", str(worktree), "add", "note.txt"], check=True)
    subprocess.run(["git", "-C", str(worktree), "commit", "-q", "-m", "by hand"], check=True)

    line = refused(base, "task", "approve", task_id)
    assert f"head {branch_head(base, task_id)[:7]}" in line and checked[:7] not in line
    assert state(base, task_id) == "review"


def test_the_gates_checked_commit_lets_it_through(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    head = branch_head(base, task_id)
    # The mark the gate leaves when a check passes (conclude_check's commit).
    with sqlite3.connect(base.log_path) as conn:
        conn.execute("UPDATE tasks SET checked_commit = ? WHERE seq = ?", (head, int(task_id[2:])))
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"


def test_no_scenarios_no_qa(base) -> None:
    task_id = to_review(base, "plain", {"x.txt": "x\n"})
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"


# --- force ----------------------------------------------------------------------------


def test_force_needs_a_note_and_is_kept_as_a_warning(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    line = refused(base, "task", "approve", task_id, "--force")
    assert "--force needs --note" in line
    assert state(base, task_id) == "review"

    done = ok_json(base, "task", "approve", task_id, "--force", "--note", "the check is broken, not the code")
    assert done["state"] == "done"
    forced = warnings(base, task_id)[-1]
    assert "approved by force" in forced["note"] and "the check is broken" in forced["note"]
    assert forced["data"]["forced"] == "approve"
    assert forced["data"]["reason"] == "the check is broken, not the code"


def test_force_is_for_approve_only(base) -> None:
    result = run(base, "task", "cancel", "T-1", "--force")
    assert result.exit_code != 0 and "Traceback" not in result.output


# --- main never goes red --------------------------------------------------------------


def test_a_merge_on_a_moved_base_that_fails_the_tests_never_lands(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    pass_qa(base, task_id)
    moved = commit_on_main(base, {"b.txt": "on\n"}, "switch b on")
    head = branch_head(base, task_id)

    line = refused(base, "task", "approve", task_id)
    assert f"merged with main as it is now ({moved[:7]}), it fails unit" in line
    assert main_head(base) == moved
    assert branch_head(base, task_id) == head
    assert state(base, task_id) == "review"
    report = warnings(base, task_id)[-1]
    assert "FAIL unit (test, required)" in report["note"]
    merge_commit = report["data"]["recheck"]
    # The merge commit was made, checked, and never reached main.
    assert git_out(base.root, "rev-list", "--parents", "-n", "1", merge_commit).split()[1:] == [moved, head]
    status = subprocess.run(["git", "-C", str(base.root), "merge-base", "--is-ancestor", merge_commit, "main"])
    assert status.returncode == 1
    with ExecutionLog.open(base.log_path) as log:
        rows = log.qa_runs(task_id=task_id)
    assert (rows[0].result.commit, str(rows[0].result.verdict)) == (merge_commit, "FAIL")


def test_a_merge_on_a_moved_base_that_passes_lands(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    pass_qa(base, task_id)
    moved = commit_on_main(base, {"c.txt": "unrelated\n"}, "something else")
    done = ok_json(base, "task", "approve", task_id)
    assert done["state"] == "done"
    assert git_out(base.root, "rev-parse", "main^1") == moved
    with ExecutionLog.open(base.log_path) as log:
        rows = log.qa_runs(task_id=task_id)
    assert (rows[0].result.commit, str(rows[0].result.verdict)) == (done["merge_commit"], "PASS")


def test_no_recheck_when_the_base_has_not_moved(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    pass_qa(base, task_id)
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"
    with ExecutionLog.open(base.log_path) as log:
        assert len(log.qa_runs(task_id=task_id)) == 1  # only the run before


# --- the console: `a` on a task whose QA has not passed asks for a note -----------


async def test_the_console_asks_for_a_note_to_approve_without_qa_and_logs_it(base) -> None:
    from factory_tui.app import FactoryApp
    from factory_tui.screens.dialogs import NoteDialog
    from tests.console_helpers import move_to, ready, wait_until

    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await move_to(pilot, task_id)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note asked for")
        assert "QA has not passed" in app.screen.detail
        # Sent without a note: refused, nothing approved.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NoteDialog), "the dialog closed")
        await wait_until(pilot, lambda: any("needs a note" in str(n.message) for n in app._notifications),
                         "the refusal")
        assert state(base, task_id) == "review"
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note asked for again")
        app.screen.text_area.insert("the check is broken on this branch; fixed in T-9")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: state(base, task_id) == "done", "approved, forced")
    forced = [w for w in warnings(base, task_id) if (w.get("data") or {}).get("forced") == "approve"]
    assert forced and "fixed in T-9" in forced[-1]["data"]["reason"]
