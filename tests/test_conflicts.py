"""Merge conflicts in the review loop (issue 7 §2): a dry-run merge check
for every review row (``Worktrees.merge_check``, ``git merge-tree
--write-tree``), and a task that failed on a conflict re-queued: the base
branch merged into its branch before the next run, the markers left for the
agent, the prompt naming the files, and an agent that resolves them makes
the next approval land. Real git repositories and worktrees, the real
engine and ``factory`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.worktrees import MergeStatus, Worktrees
from factory_tui.model import Action, State
from tests.engine_helpers import (
    add,
    agent_profile,
    apply,
    configure,
    events,
    factory,
    git,
    run_dir,
    task,
)


def worktrees(base: FactoryBase) -> Worktrees:
    return Worktrees(base.root, base_branch="main")


def branch_with(base: FactoryBase, task_id: str, files: dict[str, str]) -> Path:
    """The task's worktree and branch, with ``files`` committed there."""
    path = worktrees(base).create_for(task_id)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    assert worktrees(base).commit_all(task_id, f"work on {task_id}")
    return path


def commit_on_main(base: FactoryBase, files: dict[str, str], message: str = "on main") -> str:
    for name, text in files.items():
        (base.root / name).parent.mkdir(parents=True, exist_ok=True)
        (base.root / name).write_text(text)
    git(base.root, "add", *files)
    git(base.root, "commit", "-q", "-m", message)
    return git(base.root, "rev-parse", "HEAD")


def state_of_git(base: FactoryBase) -> tuple[str, str, str]:
    return (
        git(base.root, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(base.root, "status", "--porcelain", "--untracked-files=all"),
        (base.root / ".git" / "index").read_bytes().hex()[:4096],
    )


# --- the dry-run merge check ------------------------------------------------------------


def test_a_branch_that_merges_cleanly(base) -> None:
    branch_with(base, "T-1", {"feature.txt": "new\n"})
    check = worktrees(base).merge_check("T-1")
    assert (check.status, check.fast_forward, check.text) == (MergeStatus.CLEAN, True, "merges cleanly (fast-forward)")
    assert check.base == git(base.root, "rev-parse", "main")
    assert check.head == git(base.root, "rev-parse", "factory/T-1")
    # The base moved on, elsewhere: still clean, no longer a fast-forward.
    commit_on_main(base, {"other.txt": "x\n"})
    check = worktrees(base).merge_check("T-1")
    assert (check.status, check.fast_forward) == (MergeStatus.CLEAN, False)
    assert check.text == "merges cleanly"


def test_a_branch_that_conflicts_names_the_files_and_changes_nothing(base) -> None:
    branch_with(base, "T-1", {"README.md": "# the task's title\n", "docs/a b.md": "task\n", "same.txt": "same\n"})
    commit_on_main(base, {"README.md": "# the user's title\n", "docs/a b.md": "user\n", "same.txt": "same\n"})
    before = state_of_git(base)
    wt = worktrees(base)
    check = wt.merge_check("T-1")
    assert check.status is MergeStatus.CONFLICTS
    assert check.files == ("README.md", "docs/a b.md")
    assert check.text == "conflicts in README.md, docs/a b.md"
    assert state_of_git(base) == before  # a dry run: no ref, index or file touched
    assert git(wt.path_for("T-1"), "status", "--porcelain") == ""
    # Asked again with nothing moved: the same answer (kept, not recomputed).
    assert wt.merge_check("T-1") == check
    assert check.to_json()["status"] == "conflicts"


def test_nothing_to_merge_and_errors(base) -> None:
    wt = worktrees(base)
    assert wt.merge_check("T-9").status is MergeStatus.NOTHING  # no branch at all
    branch_with(base, "T-1", {"f.txt": "f\n"})
    git(base.root, "merge", "-q", "--ff-only", "factory/T-1")
    merged = wt.merge_check("T-1")
    assert (merged.status, merged.text) == (MergeStatus.NOTHING, "nothing to merge")
    missing = Worktrees(base.root, base_branch="trunk").merge_check("T-1")
    assert missing.status is MergeStatus.ERROR and "trunk" in missing.message
    assert missing.text.startswith("cannot check: ")


def test_an_older_git_gives_unknown(base, tmp_path: Path) -> None:
    branch_with(base, "T-1", {"f.txt": "f\n"})
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    # A git that says it is 2.37 (before merge-tree --write-tree) and is
    # otherwise the real one.
    shim.write_text(f'#!/bin/sh\n[ "$1" = version ] && {{ echo "git version 2.37.1"; exit 0; }}\nexec {real_git} "$@"\n')
    shim.chmod(0o755)
    probe = (
        "from factory_tui.backends.worktrees import Worktrees; "
        f"print(Worktrees({str(base.root)!r}, base_branch='main').merge_check('T-1').status)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unknown"


# --- a task that failed on a conflict, re-queued ------------------------------------------

# An agent that resolves the conflicts its prompt names the way a developer
# would (both sides kept, the markers removed), then `git add` and `git
# commit`. It writes down what it found: its prompt, whether a merge was in
# progress, and each named file as it was.
RESOLVER = r'''
import json, re, subprocess, sys
from pathlib import Path

prompt = Path(sys.argv[1]).read_text()
files = re.findall(r"^- `([^`]+)`$", prompt, re.MULTILINE)
merge_head = subprocess.run(["git", "rev-parse", "--git-path", "MERGE_HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
seen = {"prompt": prompt, "merging": Path(merge_head).exists(), "files": {}}
marker = re.compile(r"^(<{7}|={7}|>{7})( |$)")
for name in files:
    text = Path(name).read_text()
    seen["files"][name] = text
    Path(name).write_text("".join(line for line in text.splitlines(keepends=True)
                                  if not marker.match(line.rstrip("\n"))))
Path(sys.argv[2]).write_text(json.dumps(seen))
subprocess.run(["git", "add", "-A"], check=True)
subprocess.run(["git", "commit", "-q", "-m", "resolve the conflicts with main"], check=True)
'''


def conflicted_in_failed(base: FactoryBase, agent: Path) -> str:
    """A task whose agent appended to README.md, in review; main appended
    to it too; approving fails on the conflict."""
    configure(base, default_agent="edits", agents={"edits": agent_profile(agent, AGENT_EDIT="README.md")})
    task_id = add(base, "Say something in the README")
    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert task(base, task_id).state is State.REVIEW
    commit_on_main(base, {"README.md": "# a project\nthe user's own line\n"})
    assert worktrees(base).merge_check(task_id).files == ("README.md",)
    refused = factory(base, "task", "approve", task_id)
    assert refused.returncode == 1
    assert "conflict with main in README.md" in refused.stderr
    assert task(base, task_id).state is State.FAILED
    return task_id


def resolver(tmp_path: Path) -> tuple[dict, Path]:
    script = tmp_path / "resolver.py"
    script.write_text(RESOLVER)
    seen = tmp_path / "seen.json"
    profile = {"argv": ["{python}", str(script), "{prompt_file}", str(seen)], "output": "text", "timeout": 120, "env": {}}
    return profile, seen


def test_a_requeued_conflict_is_merged_for_the_agent_and_then_lands(base, agent: Path, tmp_path: Path) -> None:
    task_id = conflicted_in_failed(base, agent)
    profile, seen_file = resolver(tmp_path)
    configure(base, default_agent="resolver", agents={"resolver": profile})
    apply(base, task_id, Action.REQUEUE)

    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen = json.loads(seen_file.read_text())
    # The agent found the merge in progress, with git's markers in the file…
    assert seen["merging"] is True
    assert list(seen["files"]) == ["README.md"]
    readme = seen["files"]["README.md"]
    assert "<<<<<<< " in readme and ">>>>>>> " in readme
    assert "the user's own line" in readme and f"a line from {task_id}" in readme
    # … because its prompt named the file and said what to do.
    prompt = (run_dir(base, task_id, 2) / "prompt.md").read_text()
    assert prompt == seen["prompt"]
    assert "## Merge conflicts to resolve first" in prompt
    assert "`main` has been merged into this branch for you" in prompt
    assert "- `README.md`" in prompt and "`git commit` to conclude the merge" in prompt
    [note] = [e for e in events(base, task_id, "note") if "conflicts" in e.data]
    assert note.data["conflicts"] == ["README.md"]
    assert task(base, task_id).state is State.REVIEW
    assert worktrees(base).merge_check(task_id).status is MergeStatus.CLEAN

    approved = factory(base, "task", "approve", task_id, "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["state"] == "done"
    landed = git(base.root, "show", "main:README.md")
    assert "the user's own line" in landed and f"a line from {task_id}" in landed
    assert "<<<<<<<" not in landed


def test_markers_left_unresolved_fail_the_run_and_are_named_again(base, agent: Path, tmp_path: Path) -> None:
    task_id = conflicted_in_failed(base, agent)
    # An agent that does its own work and ignores the conflicts.
    configure(base, default_agent="careless", agents={"careless": agent_profile(agent)})
    apply(base, task_id, Action.REQUEUE)
    ran = factory(base, "run", "--once")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failed = task(base, task_id)
    assert failed.state is State.FAILED
    [*_, last] = events(base, task_id, "failed")
    assert last.data["failure"] == "markers"
    assert last.data["conflicts"] == ["README.md"]
    assert last.data["reason"] == "conflict markers remain in README.md: the merge of main is not resolved"
    shown = json.loads(factory(base, "plan", "show", task_id, "--json").stdout)
    assert shown["failure"]["cause"] == "markers"
    # Its work (and the markers, in the concluded merge) are on the branch:
    # nothing was lost, and nothing of it reached main.
    assert "<<<<<<<" in git(base.root, "show", f"factory/{task_id}:README.md")
    assert "<<<<<<<" not in git(base.root, "show", "main:README.md")

    profile, seen_file = resolver(tmp_path)
    configure(base, default_agent="resolver", agents={"resolver": profile})
    apply(base, task_id, Action.REQUEUE)
    again = factory(base, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    seen = json.loads(seen_file.read_text())
    assert seen["merging"] is False and list(seen["files"]) == ["README.md"]
    assert "was concluded with git's conflict markers" in seen["prompt"]
    approved = factory(base, "task", "approve", task_id)
    assert approved.returncode == 0, approved.stderr
    assert "<<<<<<<" not in git(base.root, "show", "main:README.md")


def test_the_base_merged_into_a_branch_leaves_the_merge_for_a_commit_to_conclude(base) -> None:
    path = branch_with(base, "T-1", {"README.md": "# the task's title\n", "mine.txt": "task\n"})
    commit_on_main(base, {"README.md": "# the user's title\n", "theirs.txt": "user\n"})
    wt = worktrees(base)
    assert wt.merge_base_in("T-1", "Merge main into factory/T-1") == ["README.md"]
    assert wt.merging("T-1") and wt.unmerged_files("T-1") == ["README.md"]
    assert wt.files_with_markers("T-1", ["README.md", "mine.txt", "theirs.txt", "gone.txt", "../x"]) == ["README.md"]
    assert (path / "theirs.txt").read_text() == "user\n"  # what merged cleanly is there
    # Asked again while it is in progress: the same files, nothing new begun.
    assert wt.merge_base_in("T-1", "again") == ["README.md"]
    # Resolved by hand but not committed: the end-of-run commit concludes it.
    (path / "README.md").write_text("# both titles\n")
    assert wt.commit_all("T-1", "factory: work left by T-1's agent")
    assert not wt.merging("T-1")
    parents = git(base.root, "rev-list", "--parents", "-n", "1", "factory/T-1").split()
    assert parents[2] == git(base.root, "rev-parse", "main")  # a merge of main, two parents
    assert wt.merge_check("T-1").status is MergeStatus.CLEAN
    # A base that merges cleanly is merged and committed at once.
    commit_on_main(base, {"later.txt": "later\n"})
    assert wt.merge_base_in("T-1", "Merge main into factory/T-1") == []
    assert not wt.merging("T-1") and (path / "later.txt").is_file()


def test_plan_show_says_whether_a_task_in_review_still_merges(base, agent: Path) -> None:
    configure(base, default_agent="edits", agents={"edits": agent_profile(agent, AGENT_EDIT="README.md")})
    task_id = add(base, "Say something in the README")
    assert factory(base, "run", "--once").returncode == 0
    shown = json.loads(factory(base, "plan", "show", task_id, "--json").stdout)
    assert shown["merge_check"]["status"] == "clean"
    assert "into main:  merges cleanly (fast-forward)" in factory(base, "plan", "show", task_id).stdout
    commit_on_main(base, {"README.md": "# a project\nthe user's own line\n"})
    shown = json.loads(factory(base, "plan", "show", task_id, "--json").stdout)
    assert (shown["merge_check"]["status"], shown["merge_check"]["files"]) == ("conflicts", ["README.md"])
    assert "into main:  conflicts in README.md" in factory(base, "plan", "show", task_id).stdout
    queued = add(base, "not run yet")
    assert json.loads(factory(base, "plan", "show", queued, "--json").stdout)["merge_check"] is None
