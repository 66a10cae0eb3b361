"""``factory init --spec SPEC.md`` (issue 10 §4): an empty folder, or a
repository with no commit yet, becomes a repository whose first commit
holds the spec and the base, and the plan is drafted; anything it would
clobber is refused in one line, with nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import State
from tests.engine_helpers import environment, git
from tests.helpers import assert_one_line_error

SPEC = "# Timer\n\n## Core\n- Start a timer\n- Stop it\n\n## Looks\n- A progress bar\n"


def init(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """``factory init`` with a home of its own (no git config of the
    machine's: the default branch is main)."""
    done = subprocess.run([sys.executable, "-m", "factory_tui", "init", *args], cwd=cwd, capture_output=True,
                          text=True, env=environment(HOME=str(home)), timeout=120, check=False)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "notes" / "timer-spec.md"
    path.parent.mkdir()
    path.write_text(SPEC)
    return path


def committed(root: Path) -> list[str]:
    return sorted(git(root, "ls-tree", "-r", "--name-only", "HEAD").splitlines())


def test_an_empty_folder_becomes_a_repository_with_the_spec_and_a_drafted_plan(
    tmp_path: Path, home: Path, spec: Path,
) -> None:
    project = tmp_path / "timer"  # not there yet
    done = init(str(project), "--spec", str(spec), cwd=tmp_path, home=home)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Made a git repository in {project} (branch main)."
    assert lines[1] == f"Copied the spec {spec} to {project / 'timer-spec.md'}."
    assert lines[2].startswith(f"Initialised a factory base in {project / '.factory'}; first commit ")
    assert lines[3] == "Drafted timer-spec.md with demo-planner: 3 tasks (T-1…T-3), all proposed."
    assert (project / "timer-spec.md").read_text() == SPEC
    files = committed(project)
    assert "timer-spec.md" in files and ".factory/factory.toml" in files and ".factory/.gitignore" in files
    assert all(name == "timer-spec.md" or name.startswith(".factory/") for name in files)
    assert git(project, "rev-list", "--count", "HEAD") == "1"
    assert git(project, "status", "--porcelain") == ""  # the log and the runs are ignored
    with ExecutionLog.open(FactoryBase(project).log_path) as log:
        made = log.list_tasks()
    assert [(t.title, t.state, t.source) for t in made] == [
        ("Start a timer", State.PROPOSED, "draft:timer-spec.md"), ("Stop it", State.PROPOSED, "draft:timer-spec.md"),
        ("A progress bar", State.PROPOSED, "draft:timer-spec.md")]


def test_a_folder_holding_only_the_spec_and_json(tmp_path: Path, home: Path) -> None:
    project = tmp_path / "timer"
    project.mkdir()
    (project / "SPEC.md").write_text(SPEC)
    done = init("--spec", "SPEC.md", "--json", cwd=project, home=home)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["repository_made"], data["copied_from"], data["branch"]) == (True, None, "main")
    assert data["commit"] == git(project, "rev-parse", "HEAD")
    assert [t["title"] for t in data["draft"]["imported"]] == ["Start a timer", "Stop it", "A progress bar"]
    assert committed(project)[-1] == "SPEC.md"


def test_a_repository_with_no_commit_keeps_the_users_files_out_of_the_first_commit(
    tmp_path: Path, home: Path, spec: Path,
) -> None:
    project = tmp_path / "timer"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(project)], check=True)
    (project / "scratch.txt").write_text("mine\n")
    done = init("--spec", str(spec), cwd=project, home=home)
    assert done.returncode == 0, done.stderr
    assert "Made a git repository" not in done.stdout
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "trunk"
    assert "scratch.txt" not in committed(project)
    assert git(project, "status", "--porcelain") == "?? scratch.txt"
    assert 'base_branch = "trunk"' in (project / ".factory" / "factory.toml").read_text()


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b"<dir>"
            for path in sorted(folder.rglob("*"))}


def test_a_spec_inside_a_repository_with_no_commit_is_committed_where_it_is(
    tmp_path: Path, home: Path,
) -> None:
    project = tmp_path / "timer"
    (project / "docs").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    (project / "docs" / "spec.md").write_text(SPEC)
    done = init("--spec", "docs/spec.md", cwd=project, home=home)
    assert done.returncode == 0, done.stderr
    assert "Copied" not in done.stdout
    assert "holds docs/spec.md and .factory." in done.stdout
    assert "Drafted docs/spec.md with demo-planner: 3 tasks" in done.stdout
    assert "docs/spec.md" in committed(project)
    assert not (project / "spec.md").exists()


def test_refused_where_it_would_clobber(tmp_path: Path, home: Path, spec: Path) -> None:
    def refused(folder: Path, *args: str, problem: str) -> None:
        before = snapshot(folder)
        done = init(str(folder), "--spec", str(spec), *args, cwd=tmp_path, home=home)
        assert assert_one_line_error(done.returncode, done.stdout, done.stderr) == f"factory: {problem}"
        assert snapshot(folder) == before

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "app.py").write_text("print('hi')\n")
    refused(busy, problem=f"{busy} is not empty (app.py) and not a git repository; use an empty folder "
                          "(or make it a repository with no commit yet: git init)")

    started = tmp_path / "started"
    started.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(started)], check=True)
    (started / "README.md").write_text("hi\n")
    git(started, "add", "README.md")
    refused(started, problem=f"{started.resolve()} has 1 file(s) staged for its first commit (README.md…); commit or "
                             "unstage them first: the first commit here holds the spec and .factory alone")
    git(started, "commit", "-q", "-m", "first")
    refused(started, problem=f"{started.resolve()} has commits already: make it a base with factory init, then draft "
                             "the plan with factory plan draft SPEC.md")
    inner = started / "sub"
    inner.mkdir()
    refused(inner, problem=f"{inner} is inside the git repository at {started.resolve()}; run factory init --spec at its top")

    taken = tmp_path / "taken"
    taken.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(taken)], check=True)
    (taken / spec.name).write_text("# another spec\n")
    refused(taken, problem=f"{taken.resolve() / spec.name} exists and is not {spec}; nothing was changed "
                           "(move one of them)")


@pytest.mark.parametrize(("make", "problem"), [
    (lambda path: None, "no such file: {spec}"),
    (lambda path: os.mkfifo(path), "{spec} is not a regular file (a FIFO or a device?); a spec is a markdown file"),
    (lambda path: path.write_bytes(b"\xff\xfe bad"), "{spec}:1: not UTF-8 text"),
])
def test_a_bad_spec_is_refused_before_anything_is_made(tmp_path: Path, home: Path, make, problem: str) -> None:
    bad = tmp_path / "bad.md"
    make(bad)
    project = tmp_path / "timer"
    done = init(str(project), "--spec", str(bad), cwd=tmp_path, home=home)
    assert assert_one_line_error(done.returncode, done.stdout, done.stderr) == "factory: " + problem.format(spec=bad)
    assert not project.exists()


def test_a_draft_that_fails_leaves_the_base_made_and_says_how_to_try_again(
    tmp_path: Path, home: Path, spec: Path,
) -> None:
    project = tmp_path / "timer"
    done = init(str(project), "--spec", str(spec), "--planner", "nope", cwd=tmp_path, home=home)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "factory: no agent profile 'nope' in factory.toml (profiles: claude, codex, aider, demo, demo-judge, "
        f"demo-planner) (the base is made; try the draft again: factory --base {project.resolve()} "
        f"plan draft {project.resolve() / 'timer-spec.md'})"]
    assert git(project, "rev-list", "--count", "HEAD") == "1"
    again = subprocess.run([sys.executable, "-m", "factory_tui", "--base", str(project), "plan", "draft",
                            str(project / "timer-spec.md")], capture_output=True, text=True,
                           env=environment(HOME=str(home)), timeout=120, check=False)
    assert again.returncode == 0, again.stderr


def test_planner_goes_with_spec(tmp_path: Path, home: Path) -> None:
    done = init(str(tmp_path), "--planner", "x", cwd=tmp_path, home=home)
    assert assert_one_line_error(done.returncode, done.stdout, done.stderr) == "factory: --planner goes with --spec"
