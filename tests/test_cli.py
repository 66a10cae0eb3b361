"""The ``factory`` command, end to end: mostly through click's CliRunner on
real bases in temporary git repositories, and through real subprocesses of
the installed ``factory`` command and of ``python -m factory_tui`` where the
process boundary matters (exit status, raw stdout bytes, imports, locks held
by another process)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from factory_tui.actors import actor_name
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.cli import main
from factory_tui.model import STATE_ORDER, State
from tests.helpers import assert_one_line_error, log_tables

FACTORY_BIN = Path(sys.executable).parent / "factory"
ESC = "\x1b"
CLI_ACTOR = actor_name("cli")
NO_LEFTOVERS = {"branches": [], "worktrees": []}
# What a new base's init writes into .factory/artifacts/ (backends/starting_documents.py).
STARTING_DOCUMENTS = ["conventions.md", "start-sequence.md"]

# --- helpers ----------------------------------------------------------------


def run(
    base: FactoryBase | Path | str | None,
    *args: str,
    input: str | bytes | None = None,
    env: dict[str, str | None] | None = None,
    color: bool = False,
) -> Result:
    """``factory --base BASE ARGS…`` in this process. Any exception that is
    not a clean exit propagates (catch_exceptions=False), so a traceback can
    never pass for a result."""
    root = base.root if isinstance(base, FactoryBase) else base
    argv = (["--base", str(root)] if root is not None else []) + list(args)
    environment = {
        "FACTORY_TASK": None, "FACTORY_BASE": None, "FACTORY_RUN": None, "FACTORY_TOKEN": None,
        **(env or {}),
    }
    result = CliRunner(catch_exceptions=False).invoke(
        main, argv, input=input, env=environment, color=color, prog_name="factory"
    )
    assert "Traceback" not in result.output
    return result


def ok(base, *args: str, **kwargs) -> Result:
    result = run(base, *args, **kwargs)
    assert result.exit_code == 0, (args, result.output)
    assert result.stderr == "", result.stderr
    return result


def ok_json(base, *args: str, **kwargs):
    out = ok(base, *args, "--json", **kwargs).stdout
    if args[:1] == ("log",):
        # `factory log --json` streams: one JSON object per line.
        return [json.loads(line) for line in out.splitlines()]
    return json.loads(out)


def refused(base, *args: str, code: int = 1, **kwargs) -> str:
    """Run a command that must fail: exit ``code``, nothing on stdout, and
    exactly one line on stderr, ``factory: …``. Returns that line."""
    result = run(base, *args, **kwargs)
    return assert_one_line_error(result.exit_code, result.stdout, result.stderr, code=code)


def snapshot(base: FactoryBase) -> dict:
    """Everything the log holds, to show that a refused command wrote nothing."""
    return log_tables(base.log_path)


def add(base, title: str, *args: str, **kwargs) -> str:
    task_id = ok(base, "plan", "add", title, *args, **kwargs).stdout.strip()
    assert task_id.startswith("T-")
    return task_id


def show(base, task_id: str) -> dict:
    return ok_json(base, "plan", "show", task_id)


def engine_run(base: FactoryBase, task_id: str, outcome: State) -> None:
    """What the engine does: claim the ready task and finish its run."""
    with ExecutionLog.open(base.log_path) as log:
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task_id
        log.finish(claim.token, outcome)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FACTORY_TASK", "FACTORY_BASE", "FACTORY_RUN", "FACTORY_TOKEN")}
    env.update(extra)
    return env


def run_bin(*argv: str, cwd: Path | None = None, input: bytes | None = None, **env: str):
    return subprocess.run(
        [str(FACTORY_BIN), *argv],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=subprocess_env(**env),
        timeout=60,
    )


def git_status(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory in no git repository and no base."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    probe = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--git-dir"], capture_output=True
    )
    assert probe.returncode != 0, "the temporary folder must not be inside a git repository"
    return folder


# --- factory init -----------------------------------------------------------


def test_init_creates_the_base_layout(git_repo: Path) -> None:
    result = ok(None, "init", str(git_repo))
    factory = git_repo / ".factory"
    assert str(factory) in result.stdout
    assert (factory / "factory.toml").is_file()
    assert (factory / ".gitignore").is_file()
    for folder in ("artifacts", "qa", "mailbox/inbox", "mailbox/outbox", "runs", "worktrees"):
        assert (factory / folder).is_dir(), folder
    log_db = factory / "log.db"
    assert log_db.read_bytes()[:16] == b"SQLite format 3\x00"
    ignored = (factory / ".gitignore").read_text().splitlines()
    for entry in ("log.db", "runs/", "worktrees/"):
        assert entry in ignored
    assert 'name = "repo"' in (factory / "factory.toml").read_text()
    # The new base works at once.
    status = ok_json(git_repo, "status")
    assert status["name"] == "repo"
    assert status["total"] == 0
    assert status["base_branch"] == "main"


def test_init_in_the_current_directory_and_with_a_name(git_repo: Path, monkeypatch) -> None:
    sub = git_repo / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    data = ok_json(None, "init", "--name", "shop floor")
    # The base goes to the top of the repository, not into the subdirectory.
    assert data == {"base": str(git_repo.resolve()), "created": True, "ignore_rules_added": [], "leftovers": NO_LEFTOVERS,
                    "documents_written": STARTING_DOCUMENTS}
    assert not (sub / ".factory").exists()
    assert ok_json(None, "status")["name"] == "shop floor"


def test_init_twice_is_harmless(git_repo: Path) -> None:
    ok(None, "init", str(git_repo))
    task_id = add(git_repo, "keep me")
    factory = git_repo / ".factory"
    config_before = (factory / "factory.toml").read_bytes()
    ignore_before = (factory / ".gitignore").read_bytes()
    second = ok(None, "init", str(git_repo))
    assert "already a factory base" in second.stdout
    assert ok_json(None, "init", str(git_repo)) == {
        "base": str(git_repo.resolve()), "created": False, "ignore_rules_added": [], "leftovers": NO_LEFTOVERS,
        "documents_written": [],
    }
    assert (factory / "factory.toml").read_bytes() == config_before
    assert (factory / ".gitignore").read_bytes() == ignore_before
    assert [t["id"] for t in ok_json(git_repo, "plan", "list")] == [task_id]


def test_init_writes_nothing_outside_dot_factory(git_repo: Path) -> None:
    (git_repo / "notes.txt").write_text("the user's own untracked file\n")
    (git_repo / "README.md").write_text("# a project, edited but not committed\n")
    before = git_status(git_repo)
    readme = (git_repo / "README.md").read_bytes()
    ok(None, "init", str(git_repo))
    after = git_status(git_repo)
    added = [line for line in after if line not in before]
    assert [line for line in before if line not in after] == []
    assert added, "init must create .factory/"
    assert all(line.startswith("?? .factory/") for line in added), added
    assert (git_repo / "README.md").read_bytes() == readme
    assert (git_repo / "notes.txt").read_text() == "the user's own untracked file\n"
    assert not (git_repo / ".gitignore").exists()
    # The ignore rules keep the log, runs and worktrees out of git.
    tracked_candidates = {line[3:] for line in added}
    assert not any("log.db" in path for path in tracked_candidates)


def test_init_outside_a_git_repository_is_refused(outside: Path, monkeypatch) -> None:
    monkeypatch.chdir(outside)
    line = refused(None, "init")
    assert "not a git repository" in line
    assert str(outside.resolve()) in line
    line = refused(None, "init", str(outside))
    assert "not a git repository" in line
    assert list(outside.iterdir()) == []


def test_init_subprocess_outside_git_and_inside(outside: Path, git_repo: Path) -> None:
    """Through the installed command: the exit status and the streams are
    the real ones."""
    refused_run = run_bin("init", cwd=outside)
    line = assert_one_line_error(
        refused_run.returncode, refused_run.stdout.decode(), refused_run.stderr.decode()
    )
    assert "not a git repository" in line
    assert list(outside.iterdir()) == []

    created = run_bin("init", "--json", cwd=git_repo)
    assert created.returncode == 0, created.stderr
    assert created.stderr == b""
    assert json.loads(created.stdout) == {
        "base": str(git_repo.resolve()), "created": True, "ignore_rules_added": [], "leftovers": NO_LEFTOVERS,
        "documents_written": STARTING_DOCUMENTS,
    }
    added = run_bin("plan", "add", "from a subprocess", cwd=git_repo / ".factory" / "qa")
    assert added.returncode == 0, added.stderr
    assert added.stdout == b"T-1\n"
    listed = run_bin("plan", "list", "--json", cwd=git_repo)
    assert listed.returncode == 0
    assert [t["title"] for t in json.loads(listed.stdout)] == ["from a subprocess"]


# --- plan add ---------------------------------------------------------------


def test_plan_add_prints_sequential_ids(base) -> None:
    assert [add(base, f"task {n}") for n in range(1, 4)] == ["T-1", "T-2", "T-3"]
    tasks = ok_json(base, "plan", "list")
    assert [(t["id"], t["title"], t["state"]) for t in tasks] == [
        ("T-1", "task 1", "queued"),
        ("T-2", "task 2", "queued"),
        ("T-3", "task 3", "queued"),
    ]


def test_plan_add_json(base) -> None:
    data = ok_json(base, "plan", "add", "Write the API", "--body", "with *markdown*")
    assert data["id"] == "T-1"
    assert data["title"] == "Write the API"
    assert data["body"] == "with *markdown*"
    assert data["state"] == "queued"
    assert data["priority"] == 0
    assert data["attempts"] == 0
    assert data["source"] == "cli"
    assert data["depends_on"] == [] and data["blocked_by"] == []
    assert data["created"] and data["updated"]


def test_plan_add_after_priority_state_profile(base) -> None:
    first = add(base, "schema")
    second = add(base, "api", "--after", first)
    third = ok_json(
        base, "plan", "add", "ship", "-a", "t1", "--after", second, "--priority", "7",
        "--state", "held", "--profile", "claude",
    )
    assert show(base, second)["depends_on"] == [first]
    assert third["depends_on"] == [first, second]
    assert third["blocked_by"] == [first, second]
    assert third["priority"] == 7
    assert third["state"] == "held"
    assert third["profile"] == "claude"
    assert ok_json(base, "plan", "add", "low", "-p", "-5")["priority"] == -5
    assert ok_json(base, "plan", "add", "idea", "--state", "proposed")["state"] == "proposed"


def test_plan_add_body_from_stdin_and_file(base, tmp_path: Path) -> None:
    body = "# Notes\n\nline one\nline two ünïcode\n"
    from_stdin = ok_json(base, "plan", "add", "from stdin", "--body-file", "-", input=body)
    assert from_stdin["body"] == body
    path = tmp_path / "body.md"
    path.write_text(body, encoding="utf-8")
    assert ok_json(base, "plan", "add", "from a file", "--body-file", str(path))["body"] == body
    # The body is shown, line by line, by plan show.
    out = ok(base, "plan", "show", from_stdin["id"]).stdout
    assert "line one\nline two ünïcode\n" in out


def test_a_name_is_not_an_agents_identity(base) -> None:
    """FACTORY_TASK alone (no run token) proves nothing: refused, nothing
    written. An agent proper (a live run's token) is tests/test_identity.py's."""
    add(base, "the agent's own task")
    before = snapshot(base)
    for args in (("plan", "add", "a follow-up"), ("note", "hello"), ("task", "hold", "T-1")):
        line = refused(base, *args, env={"FACTORY_TASK": "T-1"})
        assert "claims to be an agent (FACTORY_TASK set)" in line
        assert "run token is missing, forged or stale; refused" in line
    assert snapshot(base) == before
    # Reading needs no identity.
    assert [t["id"] for t in ok_json(base, "plan", "list", env={"FACTORY_TASK": "T-1"})] == ["T-1"]
    # Without the agent variables, the operator's tasks are queued and by cli:<user>.
    mine = ok_json(base, "plan", "add", "mine")
    assert mine["state"] == "queued"
    assert mine["source"] == "cli"
    assert ok_json(base, "log", "--task", mine["id"])[0]["actor"] == CLI_ACTOR


def test_plan_add_bad_input_writes_nothing(base) -> None:
    add(base, "existing")
    before = snapshot(base)
    assert "no such task: T-99" in refused(base, "plan", "add", "x", "--after", "T-99")
    assert "not a task id: 'X'" in refused(base, "plan", "add", "x", "--after", "X")
    assert "out of range" in refused(base, "plan", "add", "x", "--priority", "100")
    # A later --after fails after the task row was inserted: all or nothing.
    assert "T-42" in refused(base, "plan", "add", "x", "-a", "T-1", "-a", "T-42")
    line = refused(base, "plan", "add", "x", "--state", "running", code=2)
    assert "'running' is not one of" in line
    assert "factory plan add --help" in line
    assert "Missing argument" in refused(base, "plan", "add", code=2)
    assert snapshot(base) == before


def test_plan_add_body_file_problems(base, tmp_path: Path) -> None:
    before = snapshot(base)
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    assert "is not UTF-8 text" in refused(base, "plan", "add", "x", "--body-file", str(latin1))
    assert "standard input is not UTF-8 text" in refused(
        base, "plan", "add", "x", "--body-file", "-", input=b"\xff\xfe"
    )
    assert "--body-file" in refused(
        base, "plan", "add", "x", "--body-file", str(tmp_path / "missing.md"), code=2
    )
    assert snapshot(base) == before


# --- plan list and show -----------------------------------------------------


@pytest.fixture
def mixed_plan(base: FactoryBase) -> FactoryBase:
    """A task in every state: T-1 review, T-2 failed, T-3 done, T-4 proposed,
    T-5 queued (blocked by T-4), T-6 held, T-7 cancelled, T-8 running."""
    add(base, "reviewed", "-p", "9")
    engine_run(base, "T-1", State.REVIEW)
    add(base, "broken", "-p", "9")
    engine_run(base, "T-2", State.FAILED)
    add(base, "finished", "-p", "9")
    engine_run(base, "T-3", State.REVIEW)
    ok(base, "task", "approve", "T-3")
    add(base, "an idea", "--state", "proposed")
    add(base, "waiting", "--after", "T-4")
    add(base, "parked", "--state", "held")
    add(base, "dropped")
    ok(base, "task", "cancel", "T-7")
    add(base, "busy", "-p", "9")
    with ExecutionLog.open(base.log_path) as log:
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == "T-8"
    add(base, "being checked", "-p", "9")
    with ExecutionLog.open(base.log_path) as log:
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == "T-9"
        log.finish(claim.token, State.CHECKING)
    return base


def test_plan_list_is_grouped_by_state(mixed_plan) -> None:
    out = ok(mixed_plan, "plan", "list", "--all").stdout.splitlines()
    header, rows = out[0], out[1:]
    assert header.split() == ["ID", "STATE", "PRI", "TRIES", "BLOCKED", "BY", "TITLE"]
    states = [row.split()[1] for row in rows]
    assert states == [s.value for s in STATE_ORDER]
    by_id = {row.split()[0]: row for row in rows}
    assert by_id["T-5"].split()[-2:] == ["T-4", "waiting"]  # blocked by T-4
    assert by_id["T-8"].endswith("busy")


def test_plan_list_counts_the_finished_tasks_unless_asked_for_all(mixed_plan) -> None:
    # A plan's done and cancelled tasks are most of it after a while: the
    # listing shows the open ones and says how many it left out.
    out = ok(mixed_plan, "plan", "list").stdout.splitlines()
    rows, footer = out[1:-1], out[-1]
    assert [row.split()[1] for row in rows] == [s.value for s in STATE_ORDER if s not in (State.DONE, State.CANCELLED)]
    assert footer == "1 done and 1 cancelled not listed (--all lists them)."
    # Asked for by state, they are listed, and nothing is said to be left out.
    done = ok(mixed_plan, "plan", "list", "-s", "done", "-s", "cancelled").stdout.splitlines()
    assert [row.split()[0] for row in done[1:]] == ["T-3", "T-7"]
    # --json holds every task, as before: it is for scripts.
    assert len(ok_json(mixed_plan, "plan", "list")) == 9


def test_plan_list_with_nothing_open(base) -> None:
    for title in ("one", "two"):
        task = add(base, title)
        ok(base, "task", "cancel", task)
    assert ok(base, "plan", "list").stdout == "No open tasks; 2 cancelled not listed (--all lists them).\n"
    assert [row.split()[0] for row in ok(base, "plan", "list", "-a").stdout.splitlines()[1:]] == ["T-1", "T-2"]


def test_plan_list_filters_by_state(mixed_plan) -> None:
    out = ok(mixed_plan, "plan", "list", "--state", "held").stdout.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["T-6"]
    data = ok_json(mixed_plan, "plan", "list", "-s", "review", "-s", "failed")
    assert sorted((t["id"], t["state"]) for t in data) == [("T-1", "review"), ("T-2", "failed")]
    assert "'bogus' is not one of" in refused(mixed_plan, "plan", "list", "--state", "bogus", code=2)


def test_plan_list_json_holds_every_task(mixed_plan) -> None:
    data = ok_json(mixed_plan, "plan", "list")
    assert [t["id"] for t in data] == [f"T-{n}" for n in range(1, 10)]
    assert {t["id"]: t["state"] for t in data} == {
        "T-1": "review", "T-2": "failed", "T-3": "done", "T-4": "proposed",
        "T-5": "queued", "T-6": "held", "T-7": "cancelled", "T-8": "running", "T-9": "checking",
    }
    assert data[4]["blocked_by"] == ["T-4"]


def test_plan_list_when_empty(base) -> None:
    assert "The plan is empty" in ok(base, "plan", "list").stdout
    assert ok_json(base, "plan", "list") == []
    add(base, "queued one")
    out = ok(base, "plan", "list", "--state", "done").stdout
    assert "No tasks are done" in out
    assert ok_json(base, "plan", "list", "--state", "done") == []


def test_plan_show_body_dependencies_and_events(base) -> None:
    add(base, "schema")
    add(base, "api", "--after", "T-1", "--body", "Design the **API**.\n\nThen build it.")
    add(base, "docs", "--after", "T-2")
    ok(base, "task", "priority", "T-2", "4")
    out = ok(base, "plan", "show", "T-2").stdout
    lines = out.splitlines()
    assert lines[0] == "T-2  api"
    assert "priority 4" in lines[1] and "state queued" in lines[1]
    assert "depends on: T-1 (blocking)" in out
    assert "needed by:  T-3 (queued)" in out
    assert "Design the **API**.\n\nThen build it." in out
    event_lines = [line for line in lines if f"by {CLI_ACTOR}" in line]
    assert [line.split()[2] for line in event_lines] == ["created", "depends", "priority"]

    data = show(base, "t2")  # ids are normalised: T-2, t-2, T2, 2
    assert data["id"] == "T-2"
    assert data["depends_on"] == ["T-1"]
    assert data["blocked_by"] == ["T-1"]
    assert data["dependents"] == ["T-3"]
    assert [e["kind"] for e in data["events"]] == ["created", "depends", "priority"]
    assert data["events"][2]["data"] == {"from": 0, "to": 4}
    assert show(base, "2") == show(base, "T2") == data


# --- plan import ------------------------------------------------------------

DOCUMENTED_PLAN = """\
# Release plan

Some prose the importer passes over.

- [ ] Set up the schema {#schema priority=2}
  Indented lines under an item are its body (markdown).

      indented code stays indented
- [ ] Write the API {#api after=schema}
- [x] Pick a licence
- [ ] Ship it {after=api,T-1 profile=claude}
* [ ] A star bullet
1. [ ] A numbered item
- a plain bullet, passed over
"""


def test_plan_import_the_documented_format(base, tmp_path: Path) -> None:
    add(base, "already in the log")
    plan = tmp_path / "plan.md"
    plan.write_text(DOCUMENTED_PLAN, encoding="utf-8")
    out = ok(base, "plan", "import", str(plan)).stdout
    assert out.strip() == "Imported 6 tasks (T-2…T-7), 1 of them done."
    tasks = {t["id"]: t for t in ok_json(base, "plan", "list")}
    schema, api, licence, ship = tasks["T-2"], tasks["T-3"], tasks["T-4"], tasks["T-5"]
    assert schema["title"] == "Set up the schema"
    assert schema["priority"] == 2
    assert schema["body"] == (
        "Indented lines under an item are its body (markdown).\n\n"
        "    indented code stays indented"
    )
    assert schema["state"] == "proposed"
    assert api["depends_on"] == ["T-2"]
    assert licence["state"] == "done" and licence["title"] == "Pick a licence"
    assert ship["depends_on"] == ["T-3", "T-1"]
    assert ship["profile"] == "claude"
    assert tasks["T-6"]["title"] == "A star bullet"
    assert tasks["T-7"]["title"] == "A numbered item"
    assert schema["source"] == "import:plan.md"
    created = ok_json(base, "log", "--kind", "created")
    assert [(e["task"], e["to"]) for e in created[1:]] == [
        ("T-2", "proposed"), ("T-3", "proposed"), ("T-4", "done"),
        ("T-5", "proposed"), ("T-6", "proposed"), ("T-7", "proposed"),
    ]


def test_plan_import_json_state_and_stdin(base, tmp_path: Path) -> None:
    plan = tmp_path / "p.md"
    plan.write_text("- [ ] one {#one}\n- [x] two\n- [ ] three {after=one}\n")
    data = ok_json(base, "plan", "import", str(plan), "--state", "queued")["imported"]
    assert [(t["id"], t["state"]) for t in data] == [
        ("T-1", "queued"), ("T-2", "done"), ("T-3", "queued"),
    ]
    assert data[2]["depends_on"] == ["T-1"]
    from_stdin = ok_json(base, "plan", "import", "-", input="- [ ] via stdin\n")["imported"]
    assert [(t["id"], t["title"], t["source"]) for t in from_stdin] == [
        ("T-4", "via stdin", "import:stdin")
    ]
    single = ok(base, "plan", "import", "-", input="- [x] only one\n").stdout
    assert single.strip() == "Imported 1 task (T-5), 1 of them done."


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("- [ ] fine\n- [?] odd box\n", 2, "unknown box [?]"),
        ("- [ ] fine\n\n- [ ]   \n", 3, "no title"),
        ("- [ ]no space\n", 1, "put a space"),
        ("- [ ] a {#a}\n- [ ] b {colour=red}\n", 2, "unknown attribute 'colour'"),
        ("- [ ] a {priority=high}\n", 1, "whole number"),
        ("- [ ] a {priority=1000}\n", 1, "out of range"),
        ("- [ ] a {after=nowhere}\n", 1, "no item in this file is labelled #nowhere"),
        ("- [ ] a {#x}\n- [ ] b {#x}\n", 2, "label #x is already used on line 1"),
        ("- [ ] a {#a after=b}\n- [ ] b {#b after=a}\n", 1, "dependency cycle"),
        ("- [ ] a {#a after=a}\n", 1, "cannot depend on itself"),
        ("- [ ] a {unclosed\n", 1, "not closed"),
        ("just prose\n", 1, "no checklist items"),
        # Refused only when written, inside the transaction: rolled back.
        ("- [ ] first\n- [ ] second\n- [ ] third {after=T-99}\n", 3, "after=T-99: no such task"),
    ],
)
def test_plan_import_malformed_writes_nothing(base, tmp_path, text, line, words) -> None:
    add(base, "before the import")
    plan = tmp_path / "plan.md"
    plan.write_text(text, encoding="utf-8")
    before = snapshot(base)
    message = refused(base, "plan", "import", str(plan))
    assert message.startswith(f"factory: plan.md:{line}: "), message
    assert words in message
    assert snapshot(base) == before
    # With --json the same one line is JSON.
    as_json = run(base, "plan", "import", str(plan), "--json")
    assert (as_json.exit_code, as_json.stdout) == (1, "")
    assert json.loads(as_json.stderr) == {"error": message.removeprefix("factory: ")}
    assert snapshot(base) == before


def test_plan_import_ignores_a_byte_order_mark(base, tmp_path: Path) -> None:
    plan = tmp_path / "windows.md"
    plan.write_bytes(b"\xef\xbb\xbf- [ ] first item\r\n- [ ] second item\r\n")
    data = ok_json(base, "plan", "import", str(plan))["imported"]
    assert [t["title"] for t in data] == ["first item", "second item"]
    from_stdin = ok_json(base, "plan", "import", "-", input=b"\xef\xbb\xbf- [ ] third\n")["imported"]
    assert [t["title"] for t in from_stdin] == ["third"]


def test_plan_import_unreadable_files(base, tmp_path: Path) -> None:
    before = snapshot(base)
    assert "no such file" in refused(base, "plan", "import", str(tmp_path / "missing.md"))
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("- [ ] caf\xe9\n".encode("latin-1"))
    assert "is not UTF-8 text" in refused(base, "plan", "import", str(latin1))
    assert "standard input is not UTF-8 text" in refused(
        base, "plan", "import", "-", input=b"- [ ] \xff\n"
    )
    # A folder is read when it holds another tool's plan; this one holds none.
    assert "is a directory without a plan in it" in refused(base, "plan", "import", str(tmp_path))
    assert snapshot(base) == before


# --- task actions -----------------------------------------------------------


def test_approve_hold_release_cancel_requeue_keep_notes(base) -> None:
    add(base, "idea", "--state", "proposed")
    assert ok(base, "task", "approve", "T-1", "--note", "go ahead").stdout == "T-1: proposed → queued\n"
    assert ok(base, "task", "hold", "T-1", "-n", "wait for the design").stdout == "T-1: queued → held\n"
    assert ok(base, "task", "release", "T-1", "--note", "design done").stdout == "T-1: held → queued\n"
    assert ok(base, "task", "cancel", "T-1", "--note", "not now").stdout == "T-1: queued → cancelled\n"
    requeued = ok_json(base, "task", "requeue", "T-1", "--note", "try the simpler way")
    assert requeued["state"] == "queued"
    assert requeued["feedback"] == "try the simpler way"
    events = ok_json(base, "log", "--task", "T-1")
    assert [(e["kind"], e["from"], e["to"], e["note"], e["actor"]) for e in events[1:]] == [
        ("approved", "proposed", "queued", "go ahead", CLI_ACTOR),
        ("held", "queued", "held", "wait for the design", CLI_ACTOR),
        ("released", "held", "queued", "design done", CLI_ACTOR),
        ("cancelled", "queued", "cancelled", "not now", CLI_ACTOR),
        ("requeued", "cancelled", "queued", "try the simpler way", CLI_ACTOR),
    ]
    out = ok(base, "plan", "show", "T-1").stdout
    assert "feedback:   try the simpler way" in out


def test_review_approve_and_requeue_with_feedback(base) -> None:
    add(base, "build it")
    add(base, "build that")
    engine_run(base, "T-1", State.REVIEW)
    done = ok_json(base, "task", "approve", "T-1", "--note", "looks right")
    assert done["state"] == "done"
    engine_run(base, "T-2", State.REVIEW)
    back = ok_json(base, "task", "requeue", "T-2", "--note", "the tests do not pass")
    assert (back["state"], back["feedback"], back["attempts"]) == ("queued", "the tests do not pass", 1)
    engine_run(base, "T-2", State.FAILED)
    assert ok(base, "task", "requeue", "T-2").stdout == "T-2: failed → queued\n"
    assert show(base, "T-2")["feedback"] is None  # a requeue without a note clears it


def test_every_task_action_prints_json(base) -> None:
    add(base, "a", "--state", "proposed")
    for action, state in [
        ("approve", "queued"), ("hold", "held"), ("release", "queued"),
        ("cancel", "cancelled"), ("requeue", "queued"),
    ]:
        data = ok_json(base, "task", action, "T-1")
        assert (data["id"], data["state"]) == ("T-1", state)


def test_illegal_transition_is_explained_and_changes_nothing(base) -> None:
    add(base, "queued task")
    before = snapshot(base)
    line = refused(base, "task", "approve", "T-1", "--note", "n")
    # From what state, which action, and why not.
    assert "cannot approve T-1" in line
    assert "it is queued" in line
    assert "approve applies to proposed or review tasks" in line
    assert "it is queued; release applies to held" in refused(base, "task", "release", "T-1")
    assert "requeue applies to review, failed or cancelled" in refused(base, "task", "requeue", "T-1")
    assert snapshot(base) == before
    engine_run(base, "T-1", State.REVIEW)
    ok(base, "task", "approve", "T-1")
    before = snapshot(base)
    assert "it is done, and a done task never changes" in refused(base, "task", "cancel", "T-1")
    assert snapshot(base) == before


def test_task_priority_absolute_and_relative(base) -> None:
    add(base, "t")
    assert ok(base, "task", "priority", "T-1", "5").stdout == "T-1: priority 0 → 5\n"
    assert ok(base, "task", "priority", "T-1", "+3").stdout == "T-1: priority 5 → 8\n"
    assert ok(base, "task", "priority", "T-1", "-10").stdout == "T-1: priority 8 → -2\n"
    assert ok_json(base, "task", "priority", "T-1", "-3")["priority"] == -5
    assert ok_json(base, "task", "priority", "T-1", "--json", "+1")["priority"] == -4
    assert ok(base, "task", "priority", "T-1", "--", "-1").stdout == "T-1: priority -4 → -5\n"
    notes = [e["note"] for e in ok_json(base, "log", "--task", "T-1", "--kind", "priority")]
    assert notes == [
        "priority 0 → 5", "priority 5 → 8", "priority 8 → -2", "priority -2 → -5",
        "priority -5 → -4", "priority -4 → -5",
    ]
    before = snapshot(base)
    assert "out of range" in refused(base, "task", "priority", "T-1", "100")
    assert "out of range" in refused(base, "task", "priority", "T-1", "+200")
    assert "whole number" in refused(base, "task", "priority", "T-1", "high")
    assert "whole number" in refused(base, "task", "priority", "T-1", "+x")
    assert snapshot(base) == before


def test_task_depend_and_cycles(base) -> None:
    for title in ("a", "b", "c"):
        add(base, title)
    assert ok(base, "task", "depend", "T-2", "T-1").stdout == "T-2 depends on T-1\n"
    data = ok_json(base, "task", "depend", "T-3", "T-2")
    assert data["depends_on"] == ["T-2"] and data["blocked_by"] == ["T-2"]
    before = snapshot(base)
    line = refused(base, "task", "depend", "T-1", "T-3")
    assert "dependency cycle refused" in line
    assert "T-1 → T-3 → T-2 → T-1" in line
    assert "T-2 → T-2" in refused(base, "task", "depend", "T-2", "T-2")
    assert "cycle" in refused(base, "task", "depend", "T-1", "T-2")
    assert snapshot(base) == before
    # Adding an existing dependency again is harmless and adds no event.
    ok(base, "task", "depend", "T-2", "T-1")
    assert snapshot(base) == before


TASK_COMMANDS = [
    ("plan", "show"),
    ("task", "approve"),
    ("task", "requeue"),
    ("task", "cancel"),
    ("task", "hold"),
    ("task", "release"),
]


@pytest.mark.parametrize("command", TASK_COMMANDS, ids=" ".join)
def test_unknown_and_malformed_ids(base, command) -> None:
    add(base, "the only task")
    before = snapshot(base)
    assert refused(base, *command, "T-99") == "factory: no such task: T-99"
    assert refused(base, *command, "X") == "factory: not a task id: 'X' (task ids look like T-12)"
    assert snapshot(base) == before


def test_unknown_and_malformed_ids_elsewhere(base) -> None:
    add(base, "the only task")
    before = snapshot(base)
    assert refused(base, "task", "priority", "T-99", "3") == "factory: no such task: T-99"
    assert "not a task id: 'X'" in refused(base, "task", "priority", "X", "3")
    assert refused(base, "task", "depend", "T-1", "T-99") == "factory: no such task: T-99"
    assert refused(base, "task", "depend", "T-99", "T-1") == "factory: no such task: T-99"
    assert "not a task id: 'T-'" in refused(base, "task", "depend", "T-1", "T-")
    assert refused(base, "log", "--task", "T-99") == "factory: no such task: T-99"
    assert "not a task id: 'x1'" in refused(base, "log", "--task", "x1")
    assert "Missing argument 'ID'" in refused(base, "plan", "show", code=2)
    assert snapshot(base) == before


# --- log and status ---------------------------------------------------------


@pytest.fixture
def busy_log(base: FactoryBase) -> FactoryBase:
    add(base, "one", "--state", "proposed")
    add(base, "two")
    ok(base, "task", "approve", "T-1", "--note", "yes")
    ok(base, "task", "hold", "T-2")
    ok(base, "task", "priority", "T-1", "3")
    ok(base, "task", "depend", "T-2", "T-1")
    return base


def test_log_plain_and_json(busy_log) -> None:
    lines = ok(busy_log, "log").stdout.splitlines()
    assert len(lines) == 6
    assert [line.split()[3] for line in lines] == [
        "created", "created", "approved", "held", "priority", "depends",
    ]
    assert lines[2].split()[2] == "T-1"
    assert "proposed → queued" in lines[2] and lines[2].endswith("yes")
    events = ok_json(busy_log, "log")
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [e["kind"] for e in events] == [
        "created", "created", "approved", "held", "priority", "depends",
    ]
    assert set(events[0]) == {"id", "at", "task", "kind", "actor", "from", "to", "note", "data"}


def test_log_filters(busy_log) -> None:
    assert [e["kind"] for e in ok_json(busy_log, "log", "--task", "T-2")] == [
        "created", "held", "depends",
    ]
    assert [e["task"] for e in ok_json(busy_log, "log", "--kind", "created")] == ["T-1", "T-2"]
    both = ok_json(busy_log, "log", "--kind", "held", "--kind", "approved")
    assert [e["kind"] for e in both] == ["approved", "held"]
    assert [e["kind"] for e in ok_json(busy_log, "log", "--last", "2")] == ["priority", "depends"]
    assert [e["kind"] for e in ok_json(busy_log, "log", "-n", "1", "--task", "T-1")] == ["priority"]
    assert len(ok(busy_log, "log", "--last", "3").stdout.splitlines()) == 3
    assert ok(busy_log, "log", "--kind", "expired").stdout == ""
    assert ok_json(busy_log, "log", "--kind", "expired") == []
    line = refused(busy_log, "log", "--kind", "bogus")
    assert "unknown event kind 'bogus'" in line and "created" in line
    assert "0 is not in the range" in refused(busy_log, "log", "--last", "0", code=2)


def test_status_plain_and_json(busy_log) -> None:
    data = ok_json(busy_log, "status")
    assert data["name"] == "repo"
    assert data["base"] == str(busy_log.root)
    assert data["base_branch"] == "main"
    assert list(data["counts"]) == [s.value for s in STATE_ORDER]
    assert data["counts"]["queued"] == 1 and data["counts"]["held"] == 1
    assert sum(data["counts"].values()) == data["total"] == 2
    assert data["last_event"]["kind"] == "depends"
    out = ok(busy_log, "status").stdout.splitlines()
    assert out[0].startswith("repo  ") and str(busy_log.root) in out[0]
    assert "queued    1" in out[1] and "held      1" in out[1]
    assert out[2] == "engine: none (start one: factory run)"
    assert out[3].startswith("log: ") and f"{data['log']['events']} events since " in out[3]
    assert out[4].startswith("last event: ") and "depends" in out[4]


def test_status_of_an_empty_base(base) -> None:
    data = ok_json(base, "status")
    assert data["total"] == 0 and data["last_event"] is None
    lines = ok(base, "status").stdout.splitlines()
    # Name, counts, engine, the log; no "last event" line when there is none.
    assert len(lines) == 4 and lines[2] == "engine: none (start one: factory run)"
    assert lines[3].endswith(" MB, 0 events (progress kept for ever)")
    assert data["log"]["events"] == 0 and data["log"]["oldest_event_at"] is None
    assert data["engine"] is None


# --- finding the base ---------------------------------------------------------


def test_base_is_found_from_a_subdirectory(base, monkeypatch) -> None:
    deep = base.root / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert add(None, "found upward") == "T-1"
    assert ok_json(None, "status")["base"] == str(base.root)
    monkeypatch.chdir(base.dir / "mailbox" / "inbox")
    assert ok_json(None, "status")["base"] == str(base.root)


def test_base_named_with_option_or_environment(base, outside, monkeypatch) -> None:
    monkeypatch.chdir(outside)
    add(base, "via --base")
    assert ok_json(base.dir, "status")["base"] == str(base.root)  # .factory itself
    assert ok_json(base.root / ".factory" / "qa", "status")["total"] == 1
    env = {"FACTORY_BASE": str(base.root)}
    assert ok_json(None, "plan", "list", env=env)[0]["title"] == "via --base"
    assert ok(None, "plan", "add", "via env", env=env).stdout == "T-2\n"
    # --base wins over the environment.
    line = refused(outside, "status", env=env)
    assert "no factory base at" in line


def test_commands_outside_any_base(outside, monkeypatch) -> None:
    monkeypatch.chdir(outside)
    for args in (["status"], ["plan", "list"], ["plan", "add", "x"], ["log"], ["task", "approve", "T-1"]):
        line = refused(None, *args)
        assert line == (
            f"factory: no factory base at {outside.resolve()} or above it "
            "(run `factory init` in a git repository)"
        )
    assert "no such directory" in refused(outside / "nope", "status")
    assert list(outside.iterdir()) == []


# --- --json everywhere -----------------------------------------------------------


DATA_COMMANDS = [
    ["status"],
    ["plan", "list"],
    ["plan", "list", "--state", "queued"],
    ["plan", "show", "T-1"],
    ["plan", "add", "another"],
    ["log"],
    ["log", "--task", "T-1", "--last", "1"],
    ["task", "priority", "T-1", "+1"],
    ["task", "depend", "T-2", "T-1"],
    ["task", "hold", "T-1"],
    ["init"],
]


@pytest.mark.parametrize("args", DATA_COMMANDS, ids=" ".join)
def test_every_data_command_prints_valid_json(base, args) -> None:
    add(base, "first")
    add(base, "second")
    if args == ["init"]:
        args = ["init", str(base.root)]
    data = ok_json(base, *args)
    assert isinstance(data, dict | list)
    assert data != [] and data != {}


def test_plan_import_prints_valid_json(base, tmp_path: Path) -> None:
    plan = tmp_path / "p.md"
    plan.write_text("- [ ] a\n")
    assert ok_json(base, "plan", "import", str(plan))["imported"][0]["title"] == "a"


# --- hostile text -------------------------------------------------------------


def test_empty_and_blank_titles_are_refused(base) -> None:
    before = snapshot(base)
    assert refused(base, "plan", "add", "") == (
        "factory: a task needs a title; the one given is empty"
    )
    assert "empty" in refused(base, "plan", "add", "   \t ")
    assert snapshot(base) == before


def test_a_ten_thousand_character_title_is_stored_whole(base) -> None:
    title = ("0123456789" * 1000)[:9999] + "!"
    assert len(title) == 10_000
    task = ok_json(base, "plan", "add", title)
    assert task["title"] == title
    assert show(base, task["id"])["title"] == title
    assert ok_json(base, "plan", "list")[0]["title"] == title
    assert title in ok(base, "plan", "show", task["id"]).stdout
    # The plan table and the log cut it to one readable line.
    row = ok(base, "plan", "list").stdout.splitlines()[1]
    assert len(row) < 300 and row.endswith("…")
    assert len(ok(base, "log").stdout.splitlines()[0]) < 400


HOSTILE_TITLES = [
    "[bold]x[/]",
    "[/]",
    "[link=file:///etc/passwd]click[/link]",
    f"{ESC}[31mred{ESC}[0m",
    f"lone {ESC} escape",
    "bell\x07 and \x9b C1 CSI and \u202e bidi",
    "two\nlines",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_are_stored_verbatim(base, title) -> None:
    task = ok_json(base, "plan", "add", title)
    assert task["title"] == title
    assert show(base, task["id"])["title"] == title
    assert ok_json(base, "log", "--kind", "created")[0]["note"] == title
    # JSON output escapes control characters: no raw ESC there either.
    assert ESC not in ok(base, "plan", "show", task["id"], "--json").stdout


def test_markup_and_escapes_are_shown_literally(base) -> None:
    ok(base, "plan", "add", "[bold]x[/]")
    ok(base, "plan", "add", "[/]")
    ok(base, "plan", "add", f"{ESC}[31mred{ESC}[0m")
    ok(base, "plan", "add", f"lone {ESC} escape")
    ok(base, "plan", "add", "two\nlines")
    ok(base, "task", "hold", "T-3", "--note", f"because {ESC}[2J")
    outputs = {
        "list": ok(base, "plan", "list").stdout,
        "show": ok(base, "plan", "show", "T-3").stdout,
        "log": ok(base, "log").stdout,
    }
    for name, out in outputs.items():
        assert ESC not in out, name
        assert "␛[31mred␛[0m" in out, name
    assert "[bold]x[/]" in outputs["list"]
    assert "[/]" in outputs["list"]
    assert "lone ␛ escape" in outputs["list"]
    assert "two⏎lines" in outputs["list"]
    assert "because ␛[2J" in outputs["log"]
    assert ok(base, "plan", "show", "T-1").stdout.startswith("T-1  [bold]x[/]\n")
    assert outputs["show"].splitlines()[0] == "T-3  ␛[31mred␛[0m"
    assert ok(base, "plan", "show", "T-4").stdout.startswith("T-4  lone ␛ escape\n")
    # Even with colour forced on, the title's own escape is never emitted:
    # the only escapes are the command's own styling.
    coloured = run(base, "plan", "list", color=True).stdout
    assert f"{ESC}[31mred" not in coloured
    assert "␛[31mred␛[0m" in coloured


# Characters that take no room on screen (zero-width space, joiners, word
# joiner, invisible operators, byte order mark, soft hyphen, Mongolian vowel
# separator, line and paragraph separators).
INVISIBLE = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u2028\u2029"


def test_invisible_characters_are_shown_as_escapes(base) -> None:
    title = "pay\u200bpal\ufeff"
    ok(base, "plan", "add", title, "--body", "the body\u2060hides" + INVISIBLE)
    ok(base, "note", "--task", "T-1", "a note\u200d\u2028with a break")
    outputs = {
        "list": ok(base, "plan", "list").stdout,
        "show": ok(base, "plan", "show", "T-1").stdout,
        "log": ok(base, "log").stdout,
        "json": ok(base, "plan", "show", "T-1", "--json").stdout,
    }
    for name, out in outputs.items():
        assert not any(char in out for char in INVISIBLE), name
        assert "pay\\u200bpal\\ufeff" in out, name
    assert "the body\\u2060hides" + "".join(f"\\u{ord(c):04x}" for c in INVISIBLE) in outputs["show"]
    assert "a note\\u200d\\u2028with a break" in outputs["log"]
    # Stored as given: only the showing changes.
    assert show(base, "T-1")["title"] == title


def test_raw_stdout_bytes_hold_no_escape(tmp_path: Path, git_repo: Path) -> None:
    """Through a real process: stdout is exactly what a terminal would get."""
    assert run_bin("init", cwd=git_repo).returncode == 0
    title = f"{ESC}[31mred{ESC}[0m [bold]x[/] [/]"
    added = run_bin("plan", "add", title, cwd=git_repo)
    assert added.returncode == 0 and added.stdout == b"T-1\n"
    for argv in (["plan", "list"], ["plan", "show", "T-1"], ["log"], ["status"]):
        result = run_bin(*argv, cwd=git_repo)
        assert result.returncode == 0, result.stderr
        assert b"\x1b" not in result.stdout, argv
    shown = run_bin("plan", "show", "T-1", cwd=git_repo).stdout.decode()
    assert shown.startswith("T-1  ␛[31mred␛[0m [bold]x[/] [/]\n")


def test_undecodable_command_line_bytes_are_refused(base, git_repo: Path) -> None:
    """Undecodable argv bytes arrive as lone surrogates; they must be refused
    with one line, not fail half-way through a write with a traceback."""
    add(base, "t")
    before = snapshot(base)
    bad = os.fsdecode(b"caf\xe9")
    assert refused(base, "plan", "add", bad) == "factory: the title is not valid UTF-8 text"
    assert "--body is not valid UTF-8" in refused(base, "plan", "add", "x", "--body", bad)
    assert "--profile is not valid UTF-8" in refused(base, "plan", "add", "x", "--profile", bad)
    assert "--note is not valid UTF-8" in refused(base, "task", "hold", "T-1", "--note", bad)
    assert snapshot(base) == before
    # Through a real process with real bytes: no traceback, one line.
    result = subprocess.run(
        [os.fsencode(FACTORY_BIN), b"--base", os.fsencode(git_repo), b"plan", b"add", b"caf\xe9"],
        capture_output=True, env=subprocess_env(), timeout=60,
    )
    assert_one_line_error(result.returncode, result.stdout.decode(), result.stderr.decode())
    assert snapshot(base) == before


def test_init_refuses_an_undecodable_name(git_repo: Path) -> None:
    line = refused(None, "init", str(git_repo), "--name", os.fsdecode(b"caf\xe9"))
    assert line == "factory: the name is not valid UTF-8 text"
    assert not (git_repo / ".factory").exists()


# --- a log that cannot be used ------------------------------------------------


def factory_files(base: FactoryBase) -> dict[str, bytes]:
    return {
        str(path.relative_to(base.dir)): path.read_bytes()
        for path in sorted(base.dir.rglob("*"))
        if path.is_file()
    }


READ_AND_WRITE = [
    ["status"],
    ["plan", "list"],
    ["plan", "show", "T-1"],
    ["log"],
    ["plan", "add", "new"],
    ["task", "approve", "T-1"],
]


def test_corrupt_log_is_refused_and_left_alone(base) -> None:
    add(base, "will be lost to corruption")
    base.log_path.write_text("this is not a database, just text\n" * 200)
    before = factory_files(base)
    for args in READ_AND_WRITE:
        line = refused(base, *args)
        assert "is not a readable SQLite database" in line, args
        assert str(base.log_path) in line
    assert factory_files(base) == before


def test_log_from_a_newer_schema_is_refused_and_left_alone(base) -> None:
    add(base, "t", "--state", "proposed")
    conn = sqlite3.connect(base.log_path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = factory_files(base)
    for args in READ_AND_WRITE:
        line = refused(base, *args)
        assert "schema version 99" in line, args
        assert "upgrade factory-tui" in line
        assert "not changed" in line
    assert factory_files(base) == before


def test_locked_log_gives_a_clear_message(base) -> None:
    add(base, "t", "--state", "proposed")
    before = snapshot(base)
    holder = sqlite3.connect(base.log_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        env = {"FACTORY_BUSY_TIMEOUT_MS": "200"}
        for args in (["plan", "add", "blocked"], ["task", "approve", "T-1"], ["task", "priority", "T-1", "4"]):
            started = time.monotonic()
            line = refused(base, *args, env=env)
            assert time.monotonic() - started < 3, "the busy timeout was not honoured"
            assert "is locked by another writer" in line
            assert "try again" in line
        # Readers are not blocked by a writer (WAL).
        assert ok_json(base, "plan", "list", env=env)[0]["id"] == "T-1"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert snapshot(base) == before
    ok(base, "task", "approve", "T-1")


def test_locked_log_in_a_subprocess(base) -> None:
    """The lock is held by this process, the command runs in another."""
    holder = sqlite3.connect(base.log_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = run_bin(
            "--base", str(base.root), "plan", "add", "blocked", FACTORY_BUSY_TIMEOUT_MS="200"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = assert_one_line_error(result.returncode, result.stdout.decode(), result.stderr.decode())
    assert "locked" in line
    assert snapshot(base)["tasks"] == []


# --- process-level behaviour ------------------------------------------------------


def test_python_dash_m_factory_tui(base) -> None:
    add(base, "via -m")
    result = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), "status", "--json"],
        capture_output=True, env=subprocess_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 1
    bad = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), "plan", "show", "T-9"],
        capture_output=True, env=subprocess_env(), timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr == b"factory: no such task: T-9\n"


NO_TEXTUAL = textwrap.dedent(
    """
    import sys
    from factory_tui.cli import main
    code = main({argv!r}, standalone_mode=False)
    print("RESULT", code, "textual" in sys.modules,
          any(name.startswith("textual.") for name in sys.modules))
    """
)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["status"], ["plan", "list", "--json"], ["log"], ["plan", "add", "light"]],
    ids=" ".join,
)
def test_cli_commands_do_not_import_textual(base, argv) -> None:
    full = ["--base", str(base.root), *argv]
    result = subprocess.run(
        [sys.executable, "-c", NO_TEXTUAL.format(argv=full)],
        capture_output=True, text=True, env=subprocess_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last in ("RESULT None False False", "RESULT 0 False False"), result.stdout


def test_help_and_version(base) -> None:
    out = ok(None, "--help").stdout
    for command in ("init", "plan", "task", "log", "status", "console", "demo"):
        assert command in out
    assert "Set ID's priority" in ok(None, "task", "priority", "--help").stdout
    assert ok(None, "--version").stdout.startswith("factory, version ")
    # A group without a command shows its help (click's convention, exit 2).
    result = run(None, "plan")
    assert result.exit_code == 2 and "Commands:" in result.output


def test_unknown_options_and_commands_get_one_line(base) -> None:
    line = refused(base, "--bogus", "status", code=2)
    assert "No such option '--bogus'" in line and "(see `factory --help`)" in line
    assert "No such command 'frobnicate'" in refused(base, "frobnicate", code=2)
    assert "No such option" in refused(base, "plan", "list", "--nope", code=2)


def test_listing_lines_make_each_page_literal_however_it_is_read() -> None:
    from factory_tui.cli import LISTED_TITLE, listing_lines, state_cells

    line = "T-%-3d  %s  %3d  %5d  %-14s  %s"
    plain = [(1, "queued", 0, 0, None, "plain"), (2, "held", 1, 2, "T-1,T-22,T-333,T-4444", "also plain")]
    hostile = [*plain, (3, "review", 0, 1, None, "\x1b[31mred\x1b[0m\n[bold]x[/]"), (4, "done", 0, 0, None, "y" * 500)]
    cells = state_cells(False)
    # A page with nothing to make literal is written as it is read.
    assert listing_lines(plain, line, cells) == [
        "T-1    queued       0      0                  plain",
        "T-2    held         1      2  T-1,T-22,T-33…  also plain",
    ]
    # One title that needs it in a page: every title goes through the same rule.
    lines = listing_lines(hostile, line, cells)
    assert lines[:2] == listing_lines(plain, line, cells)
    assert lines[2].endswith("␛[31mred␛[0m⏎[bold]x[/]") and "\x1b" not in lines[2]
    assert lines[3].endswith("y" * (LISTED_TITLE - 1) + "…")
    # Coloured cells only when asked for (a terminal).
    assert "\x1b[" in listing_lines(plain, line, state_cells(True))[0]
