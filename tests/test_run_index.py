"""The run index: what the engine writes when a run ends (a real run of
the demo agent, a real branch's diff, a real QA check's outputs), what is
read from a run's folder for a run the log never indexed, and
``factory run-info`` by task and attempt. Real bases, real git, ``factory``
as a subprocess; nothing of ours is mocked."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from factory_tui.artifacts_model import FileKind, RunFile, RunOutcome, RunRecord
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.run_diff import DiffSummary, parse_numstat, parse_summary, render_stat
from factory_tui.backends.run_folders import agent_of, attempt_of, file_kind
from factory_tui.backends.run_index import decide_outcome, outcome_from_event
from factory_tui.backends.run_log import IndexedRun, LeaseEnd
from factory_tui.backends.schema import SCHEMA_VERSION
from factory_tui.model import State
from tests.engine_helpers import (
    add,
    agent_printed,
    agent_profile,
    configure,
    events,
    factory,
    git,
    run_dir,
    start_factory,
    task,
    wait_for,
)
from tests.helpers import assert_one_line_error
from tests.test_migrations import make_log_at

# An agent that changes one line of the README and adds a file of three.
EDITOR = ("from pathlib import Path; Path('README.md').write_text('# a changed project\\n'); "
          "Path('new.txt').write_text('a\\nb\\nc\\n')")


def indexed(base: FactoryBase, task_id: str) -> list[RunRecord]:
    """What the log's index holds, as it is (no look at the disk)."""
    with ExecutionLog.open(base.log_path) as log:
        return log.indexed_runs([task_id])


def files_of(run: RunRecord) -> dict[str, tuple[str, str]]:
    return {item.name: (item.kind, item.state) for item in run.files}


def run_info(base: FactoryBase, *args: str) -> dict:
    done = factory(base, "run-info", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the schema ------------------------------------------------------------------------


def test_a_version_6_log_gains_the_run_index(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    make_log_at(path, 6)
    with ExecutionLog.open(path) as log:
        assert log.get_task("T-1").title == "from v1"
        record = RunRecord("T-1", 1, folder="1", outcome="finished", started_at=5.0,
                           files=(RunFile("output.raw", "raw", 10),))
        log.record_run(IndexedRun(record))
        [back] = log.indexed_runs(["T-1"])
        assert (back.outcome, back.started_at, back.files) == ("finished", 5.0, record.files)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "run_files"} <= tables


def test_a_dropped_file_stays_listed_when_the_folder_is_read_again(log: ExecutionLog) -> None:
    files = (RunFile("output.raw", "raw", 0, "dropped"), RunFile("transcript.log", "transcript", 9))
    log.record_run(IndexedRun(RunRecord("T-4", 1, folder="1", outcome="failed", files=files)))
    log.record_run(IndexedRun(RunRecord("T-4", 1, folder="1", outcome="failed",
                                        files=(RunFile("transcript.log", "transcript", 12),))))
    [run] = log.indexed_runs(["T-4"])
    assert files_of(run) == {"output.raw": ("raw", "dropped"), "transcript.log": ("transcript", "kept")}


# --- pure parts ----------------------------------------------------------------------------


def test_file_kinds_folders_and_agents() -> None:
    assert [file_kind(name) for name in ("prompt.md", "transcript.log", "output.raw", "output.raw.gz",
                                         "diff.stat", "qa/20260101-x/output.log", "run.json",
                                         "exit.code", "child.pid")] == [
        FileKind.PROMPT, FileKind.TRANSCRIPT, FileKind.RAW, FileKind.RAW, FileKind.DIFF, FileKind.QA,
        FileKind.RECORD, FileKind.RECORD, FileKind.OTHER]
    assert [attempt_of(name) for name in ("1", "12", "2.stopped", "2.stopped-3", "3.earlier-123",
                                          "0", "x", "2.evil", "")] == [1, 12, 2, 2, 3, None, None, None, None]
    assert agent_of(["/usr/bin/python3.12", "-m", "factory_tui.demo_agent", "--prompt-file", "p"]) == \
        "factory_tui.demo_agent"
    assert agent_of(["/opt/bin/claude", "-p", "x"]) == "claude"
    assert agent_of("claude -p") is None and agent_of([]) is None


@pytest.mark.parametrize(("kind", "data", "outcome"), [
    ("finished", {}, RunOutcome.FINISHED),
    ("checking", {}, RunOutcome.FINISHED),
    ("failed", {"failure": "exit"}, RunOutcome.FAILED),
    ("failed", {"failure": "timeout"}, RunOutcome.TIMED_OUT),
    ("stopped", {}, RunOutcome.STOPPED),
    ("expired", {}, RunOutcome.EXPIRED),
    ("claimed", {}, None),
])
def test_the_event_that_ended_a_lease_says_how_the_run_ended(kind, data, outcome) -> None:
    assert outcome_from_event(kind, data) == outcome


def test_an_outcome_is_decided_from_the_best_witness() -> None:
    ended = LeaseEnd(1.0, "failed", 2.0, {"failure": "timeout"})
    decide = decide_outcome
    assert decide(live=True, end=None, lease_end=ended, exit_record=None, exit_code=None, folder="1") == "running"
    assert decide(live=False, end=None, lease_end=ended, exit_record={"exit_code": 0}, exit_code=0,
                  folder="1") == "timed out"
    # No event (an older log, or one that lost it): the exit record.
    assert decide(live=False, end=None, lease_end=None, exit_record={"exit_code": 0, "failure": None},
                  exit_code=None, folder="1") == "finished"
    assert decide(live=False, end=None, lease_end=None, exit_record={"stopped": True}, exit_code=None,
                  folder="1") == "stopped"
    assert decide(live=False, end=None, lease_end=None, exit_record=None, exit_code=3, folder="1") == "failed"
    assert decide(live=False, end=None, lease_end=None, exit_record=None, exit_code=None,
                  folder="2.stopped") == "stopped"
    assert decide(live=False, end=None, lease_end=None, exit_record=None, exit_code=None, folder="2") == "unknown"


def test_a_diff_summary_is_written_and_read_back() -> None:
    numstat = parse_numstat(b"3\t1\tsrc/a.py\x00-\t-\tlogo.png\x000\t2\tweird\nname\x1b[31m.txt\x00")
    assert numstat == [(3, 1, "src/a.py"), (None, None, "logo.png"), (0, 2, "weird\nname\x1b[31m.txt")]
    summary = DiffSummary(3, 3, 3, "a" * 40, "b" * 40, tuple(numstat))
    text = render_stat(summary)
    assert text.splitlines()[0] == f"3 files changed, +3 -3 ({'a' * 12}..{'b' * 12})"
    # A name cannot break the file's lines or reach a terminal raw.
    assert len(text.splitlines()) == 4 and "\x1b" not in text
    assert parse_summary(text) == DiffSummary(3, 3, 3, "a" * 12, "b" * 12)
    assert parse_summary("not a summary") is None


# --- what the engine writes -------------------------------------------------------------------


def test_a_demo_run_is_indexed_when_it_ends_with_its_figures_and_files(base: FactoryBase) -> None:
    task_id = add(base, "Write the notes")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    [run] = indexed(base, task_id)
    [finished] = events(base, task_id, "finished")
    assert (run.attempt, run.folder, run.outcome, run.exit_code) == (1, "1", "finished", 0)
    assert (run.profile, run.agent) == ("demo", "factory_tui.demo_agent")
    # The demo agent reports cost and tokens; the index has what the run's end said.
    assert run.cost_usd == finished.data["cost_usd"] and run.cost_usd > 0
    assert (run.input_tokens, run.output_tokens) == (finished.data["input_tokens"], finished.data["output_tokens"])
    record = json.loads((run_dir(base, task_id) / "run.json").read_text())
    assert run.started_at == record["started"] and run.ended_at >= run.started_at
    kinds = files_of(run)
    for name, kind in (("prompt.md", "prompt"), ("transcript.log", "transcript"), ("output.raw", "raw"),
                       ("run.json", "record"), ("exit.json", "record"), ("diff.stat", "diff")):
        assert kinds[name] == (kind, "kept"), name
    sizes = {item.name: item.size for item in run.files}
    assert sizes["output.raw"] == (run_dir(base, task_id) / "output.raw").stat().st_size > 0
    # The demo agent added one file: the summary says so, as git does.
    added = git(base.root, "diff", "--numstat", "main", f"factory/{task_id}").split()
    assert (run.files_changed, run.lines_added, run.lines_removed) == (1, int(added[0]), 0)


def test_the_diff_summary_counts_the_branch_against_where_it_left_the_base(base: FactoryBase) -> None:
    configure(base, default_agent="editor",
              agents={"editor": {"argv": ["{python}", "-c", EDITOR], "output": "text", "timeout": 60}})
    task_id = add(base, "Change the README")
    start = git(base.root, "rev-parse", "main")

    assert factory(base, "run", "--once").returncode == 0
    [run] = indexed(base, task_id)
    assert (run.files_changed, run.lines_added, run.lines_removed) == (2, 4, 1)
    head = git(base.root, "rev-parse", f"factory/{task_id}")
    stat = (run_dir(base, task_id) / "diff.stat").read_text().splitlines()
    assert stat[0] == f"2 files changed, +4 -1 ({start[:12]}..{head[:12]})"
    assert sorted(line.split()[-1] for line in stat[1:]) == ["README.md", "new.txt"]
    shown = run_info(base, task_id)["runs"][0]
    assert shown["diff_summary"] == "2 files, +4 -1"


def test_qa_outputs_are_indexed_with_the_run_they_checked(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent)})
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    (base.qa_dir / "has-work.md").write_text(
        '---\nkind: test\nrun: ["{python}", "-c", "print(\'checked\')"]\n---\n\nPrints.\n', encoding="utf-8")
    task_id = add(base, "Do some work")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    [run] = indexed(base, task_id)
    qa = {item.name: item for item in run.files if item.kind == FileKind.QA}
    [log_name] = [name for name in qa if name.endswith("-has-work/output.log")]
    assert log_name.startswith("qa/")
    assert "checked" in (run_dir(base, task_id) / log_name).read_text()
    assert qa[log_name].size == (run_dir(base, task_id) / log_name).stat().st_size
    # QA's verdict is not the run's end: the agent finished. Listing the
    # files again kept the run's figures and the commits its diff counts.
    assert (run.outcome, run.files_changed, run.lines_added) == ("finished", 1, 1)
    conn = sqlite3.connect(base.log_path)
    [(diff_base, diff_head)] = conn.execute("SELECT diff_base, diff_head FROM runs").fetchall()
    conn.close()
    assert diff_head == git(base.root, "rev-parse", f"factory/{task_id}")
    assert diff_base == git(base.root, "rev-parse", "main")


# --- read from disk, for runs the log never indexed -------------------------------------------


def test_a_run_the_log_never_indexed_is_indexed_from_its_folder(base: FactoryBase) -> None:
    task_id = add(base, "Write the notes")
    assert factory(base, "run", "--once").returncode == 0
    folder = run_dir(base, task_id)
    # As an older factory-tui left it: no index rows, no diff.stat.
    conn = sqlite3.connect(base.log_path)
    conn.execute("DELETE FROM run_files")
    conn.execute("DELETE FROM runs")
    conn.commit()
    conn.close()
    (folder / "diff.stat").unlink()
    # And a run the engine set aside (it stopped it, and ran the attempt again).
    aside = folder.with_name("1.stopped")
    shutil.copytree(folder, aside)
    (aside / "exit.json").unlink()
    assert indexed(base, task_id) == []

    shown = run_info(base, task_id)["runs"]

    [finished] = events(base, task_id, "finished")
    by_folder = {run["folder"]: run for run in shown}
    assert set(by_folder) == {"1", "1.stopped"}
    run = by_folder["1"]
    assert (run["outcome"], run["exit_code"], run["profile"]) == ("finished", 0, "demo")
    assert (run["cost_usd"], run["input_tokens"]) == (finished.data["cost_usd"], finished.data["input_tokens"])
    assert run["diff_summary"] is None  # only the engine computes one, when the run ends
    names = {item["name"] for item in run["files"]}
    assert {"prompt.md", "transcript.log", "output.raw", "run.json", "exit.json"} <= names
    # The copy names the same lease: the log says that run finished; the
    # folder's name says it was set aside. Both are in the index now.
    assert by_folder["1.stopped"]["attempt"] == 1
    assert {run.folder for run in indexed(base, task_id)} == {"1", "1.stopped"}
    # A folder that is gone leaves the index too.
    shutil.rmtree(aside)
    assert [run["folder"] for run in run_info(base, task_id)["runs"]] == ["1"]
    assert [run.folder for run in indexed(base, task_id)] == ["1"]


def ended_run(base: FactoryBase, task_id: str, attempt: int, code: int, started: float) -> Path:
    """A run folder as an ended run leaves it (as the engine writes it)."""
    folder = run_dir(base, task_id, attempt)
    folder.mkdir(parents=True)
    (folder / "prompt.md").write_text(f"# {task_id}: try\n")
    (folder / "transcript.log").write_text("⏺ trying\n")
    (folder / "output.raw").write_text("trying\n")
    (folder / "run.json").write_text(json.dumps({
        "task": task_id, "attempt": attempt, "token": f"{task_id}:t{attempt}", "profile": "steady",
        "argv": ["/usr/bin/python3", "agent.py", task_id], "started": started}))
    (folder / "exit.json").write_text(json.dumps({
        "exit_code": code, "failure": f"agent exited {code}" if code else None, "started": started,
        "ended": started + 65}))
    return folder


def test_run_info_by_task_and_attempt(base: FactoryBase) -> None:
    task_id = add(base, "Try twice")
    ended_run(base, task_id, 1, 3, 1_790_000_000.0)
    ended_run(base, task_id, 2, 0, 1_790_000_100.0)

    both = run_info(base, task_id)["runs"]

    assert [(run["attempt"], run["outcome"], run["exit_code"]) for run in both] == [(2, "finished", 0),
                                                                                   (1, "failed", 3)]
    assert (both[1]["profile"], both[1]["agent"], both[1]["ended_at"]) == ("steady", "python3", 1_790_000_065.0)
    paths = {item["name"]: item["path"] for item in both[1]["files"]}
    assert paths["transcript.log"] == f".factory/runs/{task_id}/1/transcript.log"

    text = factory(base, "run-info", task_id.lower(), "--attempt", "1")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[:3] == [
        f"{task_id} run 1: failed · exit 3 · steady (python3)",
        "  started 2026-09-21 14:13:20, ended 2026-09-21 14:14:25, took 1:05",
        f"  .factory/runs/{task_id}/1/",
    ]
    folder = run_dir(base, task_id, 1)
    assert [line.split() for line in lines[3:]] == [
        [name, kind, str((folder / name).stat().st_size), "B", "kept"]
        for name, kind in (("exit.json", "record"), ("output.raw", "raw"), ("prompt.md", "prompt"),
                           ("run.json", "record"), ("transcript.log", "transcript"))]
    for args, said in ((["--attempt", "3"], f"{task_id} has no run 3"), (["T-99"], "no such task: T-99"),
                       (["xyz"], "not a task id")):
        done = factory(base, "run-info", *(args if args[0] != "--attempt" else [task_id, *args]))
        assert said in assert_one_line_error(done.returncode, done.stdout, done.stderr)
    never = add(base, "Not yet")
    done = factory(base, "run-info", never)
    assert (done.returncode, done.stdout.strip()) == (0, f"{never} has not run yet.")


def test_an_agent_may_read_run_info_but_not_collect(base: FactoryBase) -> None:
    from factory_tui.actors import Need
    from factory_tui.cli import main

    commands = {name: command for name, command in main.commands.items()}
    assert commands["run-info"].callback.needs is Need.READ
    assert commands["artifacts"].commands["gc"].callback.needs is Need.GC


def test_a_live_run_is_shown_running(base: FactoryBase, agent: Path, tmp_path: Path, tidy) -> None:
    gate = tmp_path / "gate"
    configure(base, default_agent="steady", agents={"steady": agent_profile(agent, AGENT_GATE=str(gate))})
    task_id = add(base, "Wait at the gate")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 2"), "the agent's output")

    [run] = run_info(base, task_id)["runs"]
    assert (run["outcome"], run["ended_at"]) == ("running", None)

    gate.touch()
    assert engine.wait(timeout=120) == 0
    [run] = run_info(base, task_id)["runs"]
    assert run["outcome"] == "finished" and run["ended_at"] is not None



def test_a_diff_summary_from_a_head_read_already_is_the_same(base: FactoryBase) -> None:
    """The engine reads the branch's head from its ref file, and their merge
    base from the loose commits, and hands them in: git runs only for the
    diff, and the summary is the same."""
    from factory_tui.backends.run_diff import branch_summary

    git(base.root, "branch", "factory/T-9", "main")
    git(base.root, "worktree", "add", "-q", str(base.root / "wt"), "factory/T-9")
    (base.root / "wt" / "added.txt").write_text("one\ntwo\n", encoding="utf-8")
    git(base.root / "wt", "add", "added.txt")
    git(base.root / "wt", "commit", "-q", "-m", "add a file")
    head = git(base.root, "rev-parse", "factory/T-9")

    asked = branch_summary(base.root, "main", "factory/T-9", None)
    given = branch_summary(base.root, "main", "factory/T-9", None, head=head)
    assert asked is not None and given == asked and given.head == head
    # And the merge base, when the caller knows it (the head grew from main's commit).
    main = git(base.root, "rev-parse", "main")
    assert branch_summary(base.root, "main", "factory/T-9", None, head=head, since=main) == asked
    assert asked.base == main
    assert (given.files, given.added, given.removed) == (1, 2, 0)
    # Not a commit id: read from git as before.
    assert branch_summary(base.root, "main", "factory/T-9", None, head="factory/T-9") == asked


# --- the summary counted while the run's work is committed ----------------------------


def test_the_summary_counted_while_committing_is_the_one_git_gives_for_the_commit(base: FactoryBase) -> None:
    from factory_tui.backends.run_diff import branch_summary, summarise
    from factory_tui.backends.worktrees import Worktrees

    trees = Worktrees(base.root, base_branch="main")
    (base.root / "gone.txt").write_text("soon deleted\n")
    (base.root / "moved.txt").write_text("".join(f"row {n}\n" for n in range(20)))
    git(base.root, "add", "-A")
    git(base.root, "commit", "-q", "-m", "files to change")
    start = git(base.root, "rev-parse", "main")
    path = trees.create_for("T-1")
    (path / "README.md").write_text("# changed\nand more\n")
    (path / "gone.txt").unlink()
    (path / "moved.txt").rename(path / "renamed.txt")
    (path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (path / "new.txt").write_text("one\ntwo\nthree\n")

    committed, numstat = trees.commit_all_counted("T-1", "the work", start)

    assert committed and numstat is not None
    head = git(base.root, "rev-parse", "factory/T-1")
    counted = summarise(parse_numstat(numstat), start, head)
    asked = branch_summary(base.root, "main", "factory/T-1", None)
    assert asked is not None and counted == asked and counted.per_file == asked.per_file
    assert render_stat(counted) == render_stat(asked)
    # Nothing left to commit: the count is the branch's as it stands.
    again, numstat = trees.commit_all_counted("T-1", "nothing new", start)
    assert not again and numstat is not None
    assert summarise(parse_numstat(numstat), start, head).per_file == asked.per_file


def test_a_post_commit_hook_leaves_the_summary_to_git_after_the_commit(base: FactoryBase) -> None:
    # A hook that amends the commit it follows: the count taken while
    # committing would not be the branch's; the summary is git's own.
    hook = base.root / ".git" / "hooks" / "post-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\n[ -e hooked.txt ] && exit 0\necho by the hook > hooked.txt\n"
                    "git add hooked.txt && git commit -q --amend --no-edit --no-verify\n")
    hook.chmod(0o755)
    task_id = add(base, "Write the notes")

    assert factory(base, "run", "--once").returncode == 0

    [run] = indexed(base, task_id)
    numstat = git(base.root, "diff", "--numstat", "main", f"factory/{task_id}").splitlines()
    assert "hooked.txt" in " ".join(numstat)
    assert run.files_changed == len(numstat) == 2
