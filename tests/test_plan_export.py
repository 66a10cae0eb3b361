"""``factory plan export``: the plan as JSON lines (with ``--events`` the
history too) or as the import checklist, which ``factory plan import``
turns back into the same plan; a task at a time, so that a plan far
bigger than memory streams out; a file written whole or not at all.

Through the real command (``python -m factory_tui``) on real bases."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import Action, NewTask, State
from tests.helpers import assert_one_line_error


def factory(base: FactoryBase, *args: str, **kwargs) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args],
        capture_output=True, text=True, env=environment, timeout=120, check=False, cwd=base.root, **kwargs,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def ok(base: FactoryBase, *args: str) -> str:
    done = factory(base, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_base(tmp_path: Path, name: str) -> FactoryBase:
    repo = tmp_path / name
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    return FactoryBase.init(repo)[0]


def plan_of(base: FactoryBase) -> list[tuple]:
    with ExecutionLog.open(base.log_path) as log:
        return [
            (t.id, t.title, t.state.value, t.priority, t.labels, t.profile, t.depends_on, t.body)
            for t in log.list_tasks()
        ]


def build_plan(log: ExecutionLog) -> None:
    """Five tasks: dependencies both ways in id order, a done one, labels,
    a profile, priorities, bodies with blank and indented lines, and a
    title with braces and markup."""
    log.add_tasks(
        [
            NewTask(title="Schema", priority=2, labels=("db",), state=State.QUEUED,
                    body="Tables:\n\n- users\n- carts\n\n    CREATE TABLE users;"),
            NewTask(title="API", profile="claude", after=("schema",), state=State.QUEUED, body="Routes."),
            NewTask(title="Docs", priority=-3),
            NewTask(title="Client", after=("api", "docs"), labels=("ui", "web/app"), state=State.QUEUED),
            NewTask(title="Fix {braces} in [bold]titles[/]", state=State.QUEUED, body="  starts indented\nthen not"),
        ],
        actor="test", handles=["schema", "api", "docs", None, None], done=[False, False, True, False, False],
    )
    log.add_dependency("T-1", "T-5", actor="test")  # on a later task


def test_the_checklist_export_imports_back_into_the_same_plan(base: FactoryBase, tmp_path: Path) -> None:
    with ExecutionLog.open(base.log_path) as log:
        build_plan(log)
    exported = tmp_path / "plan.md"
    assert ok(base, "plan", "export", "--format", "markdown", "-o", str(exported)) == ""
    text = exported.read_text()
    assert text.startswith("# The plan of repo\n")
    assert "- [x] Docs {#task-3 priority=-3}\n" in text
    other = new_base(tmp_path, "other")
    assert ok(other, "plan", "import", str(exported), "--state", "queued").strip() == (
        "Imported 5 tasks (T-1…T-5), 1 of them done."
    )
    assert plan_of(other) == plan_of(base)
    # Cancelled tasks have no word in the checklist: left out, and so are
    # the dependencies on them.
    with ExecutionLog.open(base.log_path) as log:
        log.apply("T-2", Action.CANCEL, actor="operator")
    text = ok(base, "plan", "export", "--format", "markdown")
    assert "API" not in text
    assert "- [ ] Client {#task-4 after=task-3 labels=ui,web/app}\n" in text


def test_jsonl_has_a_task_a_line_with_its_ids_elsewhere_then_the_events(base: FactoryBase) -> None:
    issues = [
        {"id": "bd-1", "title": "Schema", "status": "open", "priority": 0, "labels": ["db"]},
        {"id": "bd-2", "title": "API \x1b[31m", "status": "closed", "priority": 3,
         "dependencies": [{"issue_id": "bd-2", "depends_on_id": "bd-1", "type": "blocks"}]},
    ]
    (base.root / ".beads").mkdir()
    (base.root / ".beads" / "issues.jsonl").write_text("".join(json.dumps(i) + "\n" for i in issues))
    ok(base, "plan", "import", ".", "--state", "queued")
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="made here", body="x"), actor="test")
        log.apply("T-1", Action.HOLD, actor="operator")
    out = ok(base, "plan", "export")
    assert out.isascii()  # no raw escape from a title reaches the terminal
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(t["type"], t["id"], t["state"]) for t in lines] == [
        ("task", "T-1", "held"), ("task", "T-2", "done"), ("task", "T-3", "queued"),
    ]
    first, second, third = lines
    assert set(first) == {
        "type", "id", "title", "state", "priority", "labels", "depends_on", "body", "profile", "attempts",
        "source", "sources", "created", "updated",
    }
    # The ids elsewhere, with our state and priority in that tool's words.
    assert first["sources"] == [{"kind": "beads", "id": "bd-1", "status": "deferred", "priority": 0}]
    assert (first["priority"], first["labels"]) == (2, ["db"])
    assert second["sources"] == [{"kind": "beads", "id": "bd-2", "status": "closed", "priority": 3}]
    assert (second["title"], second["depends_on"]) == ("API \x1b[31m", ["T-1"])
    assert (third["sources"], third["body"]) == ([], "x")

    with_events = [json.loads(line) for line in ok(base, "plan", "export", "--events").splitlines()]
    assert with_events[:3] == lines
    events = with_events[3:]
    conn = sqlite3.connect(base.log_path)
    assert [e["id"] for e in events] == [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
    assert {e["type"] for e in events} == {"event"}
    assert set(events[0]) == {"type", "id", "at", "task", "kind", "actor", "from", "to", "note", "data"}
    held = events[-1]
    assert (held["task"], held["kind"], held["from"], held["to"], held["actor"]) == ("T-1", "held", "queued", "held", "operator")


def test_export_refusals_are_one_line(base: FactoryBase, tmp_path: Path) -> None:
    line = assert_one_line_error(**_result(factory(base, "plan", "export", "--format", "markdown", "--events")))
    assert line == "factory: --events goes with --format jsonl: the checklist has no place for the history"
    line = assert_one_line_error(**_result(factory(base, "plan", "export", "-o", str(tmp_path))))
    assert line == f"factory: cannot write {tmp_path}: it is a directory"
    line = assert_one_line_error(**_result(factory(base, "plan", "export", "-o", str(tmp_path / "no" / "such.jsonl"))))
    assert line == f"factory: cannot write {tmp_path / 'no' / 'such.jsonl'}: No such file or directory"
    assert ok(base, "plan", "export") == ""  # an empty plan: no lines


def _result(done: subprocess.CompletedProcess) -> dict:
    return {"exit_code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def test_a_file_that_cannot_be_written_whole_is_not_written(base: FactoryBase, tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a mount namespace here (needed for a full disk)")
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}", body="x" * 8000) for n in range(300)], actor="test")
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "plan.jsonl").write_text("the export before\n")
    argv = [sys.executable, "-m", "factory_tui", "--base", str(base.root), "plan", "export", "-o", str(disk / "plan.jsonl")]
    # The old file is copied onto the small disk first: a failed export
    # must leave it as it was, and no temporary file beside it.
    script = (
        f'cp "{disk}/plan.jsonl" /tmp/.keep-$$ && mount -t tmpfs -o size=1m tmpfs "{disk}" && '
        f'cp /tmp/.keep-$$ "{disk}/plan.jsonl" && rm /tmp/.keep-$$ && "$@"; status=$?; '
        f'ls -A "{disk}"; cat "{disk}/plan.jsonl"; exit $status'
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip() == f"factory: cannot write {disk / 'plan.jsonl'}: the disk is full"
    assert done.stdout.splitlines() == ["plan.jsonl", "the export before"]


# The process's own peak: VmHWM belongs to its address space, made new at
# exec (getrusage's ru_maxrss would carry the forking test process's).
MEASURE = """
import sys
from factory_tui.cli import main
try:
    main(sys.argv[1:], prog_name="factory")
except SystemExit as end:
    code = end.code
else:
    code = 0
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(peak, file=sys.stderr)
sys.exit(code)
"""


def peak_kib(base: FactoryBase, *args: str) -> int:
    """The export's peak memory (KiB), its output thrown away."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "--base", str(base.root), "plan", "export", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


def test_a_plan_bigger_than_the_exports_memory_streams_out(base: FactoryBase, tmp_path: Path) -> None:
    """20 MB of bodies: an export that held the plan would grow by about
    that much (and more, for the text it builds); one that streams stays
    within a few pages of the small plan's peak (a page is 100 tasks)."""
    small = new_base(tmp_path, "small")
    with ExecutionLog.open(small.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}", body="x" * 5_000) for n in range(10)], actor="test")
    body = "y" * 4_000
    with ExecutionLog.open(base.log_path) as log:
        log.add_tasks([NewTask(title=f"task {n}", body=body, after=(f"s{n - 1}",) if n else ()) for n in range(5000)],
                      actor="test", handles=[f"s{n}" for n in range(5000)])
    for fmt in ("jsonl", "markdown"):
        baseline = peak_kib(small, "--format", fmt)
        big = peak_kib(base, "--format", fmt)
        assert big - baseline < 8 * 1024, (fmt, baseline, big)
