"""The operator's actions under faults (issue 6 §6, §7): real ``factory``
processes acting on a real base at the same time, a real git hook holding an
approval in the middle of its merge, a real ``git worktree lock`` making the
tidy-up after a merge fail.

Timing is decided by the tests, never by luck: a ``reference-transaction``
hook holds the base branch's update until the test creates a gate file, and a
test waits for a second process to be *waiting* for the operator lock (it has
``.factory/operator.lock`` open) before it opens the gate."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import OperatorBusy, OperatorLock
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator, plan_owns_branch
from factory_tui.backends.worktrees import BranchCollision
from factory_tui.errors import FactoryError
from factory_tui.model import BRANCH_START_UNRECORDED, Action, State
from factory_tui.screens.dialogs import ConfirmDialog
from tests.console_helpers import move_to, ready, wait_until
from tests.engine_helpers import (
    ACTOR,
    add,
    configure,
    environment,
    events,
    factory,
    factory_argv,
    git,
    has_branch,
    task,
    wait_for,
)
from tests.test_locks import has_open

# Holds an update of refs/heads/main (the landing of a merge) until the gate
# file named by $HOOK_GATE exists; marks that it is holding in $HOOK_HELD.
# Without $HOOK_GATE (every other git command of the test) it does nothing.
GATE_HOOK = """#!/bin/sh
[ -n "$HOOK_GATE" ] || exit 0
[ "$1" = prepared ] || exit 0
grep -q " refs/heads/main$" || exit 0
touch "$HOOK_HELD"
n=0
while [ ! -e "$HOOK_GATE" ] && [ $n -lt 6000 ]; do sleep 0.02; n=$((n+1)); done
exit 0
"""


def install_hook(base: FactoryBase, name: str, text: str) -> None:
    hook = base.root / ".git" / "hooks" / name
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(text)
    hook.chmod(0o755)


def in_review(base: FactoryBase, *titles: str, merge: str = "ff") -> list[str]:
    """Tasks taken through the engine and the demo agent to review."""
    configure(base, max_parallel=max(1, len(titles)))
    if merge != "ff":
        text = base.config_path.read_text().replace('merge = "ff"', f'merge = "{merge}"')
        base.config_path.write_text(text)
    ids = [add(base, title) for title in titles]
    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert all(task(base, task_id).state is State.REVIEW for task_id in ids)
    return ids


def start(base: FactoryBase, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        factory_argv(base, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=environment(**env),
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    assert "Traceback" not in out + err, out + err
    return process.returncode, out, err


def waiting_or_done(process: subprocess.Popen, base: FactoryBase) -> bool:
    return process.poll() is not None or has_open(process.pid, base.dir / "operator.lock")


@pytest.fixture
def started():
    """Processes a test started: killed at the end if still running."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- §6(a): approve is all or nothing --------------------------------------------


def test_an_approval_holds_the_base_so_a_requeue_meanwhile_is_refused_before_git(
    base: FactoryBase, tmp_path: Path, started,
) -> None:
    [task_id] = in_review(base, "Write the notes")
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    install_hook(base, "reference-transaction", GATE_HOOK)
    gate, held = tmp_path / "gate", tmp_path / "held"

    approve = start(base, "task", "approve", task_id, HOOK_GATE=str(gate), HOOK_HELD=str(held))
    started.append(approve)
    wait_for(held.exists, "the approval to reach the landing of its merge")

    # A re-queue that will not wait long is refused, naming who is in the way.
    impatient = factory(base, "task", "requeue", task_id, "--note", "again",
                        env=environment(FACTORY_LOCK_TIMEOUT="0.3"))
    assert impatient.returncode == 1
    assert impatient.stdout == ""
    assert impatient.stderr.count("\n") == 1, impatient.stderr
    assert impatient.stderr.startswith(
        f"factory: another action holds this base (approve {task_id}: pid {approve.pid} on {socket.gethostname()}, for "
    ), impatient.stderr
    assert impatient.stderr.rstrip().endswith("gave up after waiting 0.3 s, try again when it is done")

    # A patient one waits for the approval, which wins; then it is refused.
    patient = start(base, "task", "requeue", task_id, "--note", "again")
    started.append(patient)
    wait_for(lambda: waiting_or_done(patient, base), "the re-queue to wait for the operator lock")
    gate.touch()

    status, out, err = finish(approve)
    assert status == 0, out + err
    assert out.startswith(f"{task_id}: review → done, merged into main at ")
    status, out, err = finish(patient)
    assert status == 1 and out == ""
    assert err == f"factory: cannot requeue {task_id}: it is done, and a done task never changes\n", err
    assert task(base, task_id).state is State.DONE
    assert git(base.root, "merge-base", "--is-ancestor", branch, "main") == ""
    assert not events(base, task_id, "requeued")
    assert len(events(base, task_id, "approved")) == 1


def test_every_operator_action_takes_the_operator_lock(base: FactoryBase, monkeypatch) -> None:
    queued = add(base, "Queued")
    lock = OperatorLock(base.dir)
    holding = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        with lock.held("approve T-99"):
            holding.set()
            let_go.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        monkeypatch.setenv("FACTORY_LOCK_TIMEOUT", "0.1")
        with ExecutionLog.open(base.log_path) as log:
            operator = Operator(base, log)
            for action in (Action.HOLD, Action.RELEASE, Action.CANCEL):
                with pytest.raises(OperatorBusy) as busy:
                    operator.apply(queued, action, actor=ACTOR)
                assert f"approve T-99: pid {os.getpid()}" in str(busy.value)
            with pytest.raises(OperatorBusy):
                operator.clean(queued)
        assert task(base, queued).state is State.QUEUED  # nothing happened
    finally:
        let_go.set()
        holder.join(30)
    with ExecutionLog.open(base.log_path) as log:
        assert Operator(base, log).apply(queued, Action.HOLD, actor=ACTOR).task.state is State.HELD


# --- §6(b): a worktree that cannot be removed after the merge -----------------------


def test_a_worktree_that_cannot_be_removed_after_the_merge_is_a_warning_and_cleaned_later(
    base: FactoryBase,
) -> None:
    [task_id] = in_review(base, "Write the notes")
    worktree = base.worktrees_dir / task_id
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    git(base.root, "worktree", "lock", "--reason", "kept for a look", str(worktree))

    approved = factory(base, "task", "approve", task_id)

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert approved.stderr == ""
    line = approved.stdout.strip()
    assert line.startswith(f"{task_id}: review → done, merged into main at "), line
    assert f"its worktree stays at {worktree}" in line and "locked" in line
    assert "`factory worktrees clean` removes it" in line
    assert task(base, task_id).state is State.DONE
    assert git(base.root, "rev-parse", "main") == branch
    [warning] = events(base, task_id, "warning")
    assert "locked" in warning.note and str(worktree) in warning.note
    assert warning.data["worktree"] == str(worktree)
    assert worktree.is_dir()
    # The history was written while git tried the removal: both are there.
    history = (base.artifacts_dir / "history.md").read_text(encoding="utf-8")
    assert f"## {task_id}: Write the notes" in history and f"commit `{branch[:10]}`" in history

    # While it is locked, cleaning is refused in one line and can be retried.
    refused = factory(base, "worktrees", "clean", "--yes")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"factory: cannot remove the worktree of {task_id}: ")
    assert refused.stderr.count("\n") == 1
    assert worktree.is_dir()

    git(base.root, "worktree", "unlock", str(worktree))
    cleaned = factory(base, "worktrees", "clean", "--yes")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not worktree.exists()
    assert not has_branch(base.root, f"factory/{task_id}")  # merged, so it goes too
    assert git(base.root, "rev-parse", "main") == branch


def test_cancel_with_a_worktree_that_cannot_be_removed_is_a_warning(base: FactoryBase) -> None:
    [task_id] = in_review(base, "Write the notes")
    worktree = base.worktrees_dir / task_id
    git(base.root, "worktree", "lock", str(worktree))

    outcome = factory(base, "task", "cancel", task_id)

    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert f"its worktree stays at {worktree}" in outcome.stdout
    assert task(base, task_id).state is State.CANCELLED
    assert events(base, task_id, "warning")
    git(base.root, "worktree", "unlock", str(worktree))
    assert factory(base, "worktrees", "clean", "--yes").returncode == 0
    assert not worktree.exists()
    assert has_branch(base.root, f"factory/{task_id}")  # a cancelled task's branch is kept


def test_clean_leaves_a_worktree_its_task_needs_again(base: FactoryBase) -> None:
    [task_id] = in_review(base, "Write the notes")
    with ExecutionLog.open(base.log_path) as log:
        operator = Operator(base, log)
        with pytest.raises(FactoryError) as refused:
            operator.clean(task_id)
        assert str(refused.value) == f"{task_id} is review now and needs its worktree; it was left as it is"
    assert (base.worktrees_dir / task_id).is_dir()


def test_approving_a_task_whose_worktree_has_an_initialised_submodule(base: FactoryBase, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("the library\n")
    git(lib, "add", "lib.txt")
    git(lib, "commit", "-q", "-m", "lib")
    git(base.root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(base.root, "commit", "-q", "-m", "add lib")
    [task_id] = in_review(base, "Write the notes")
    worktree = base.worktrees_dir / task_id
    git(worktree, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "-q")

    approved = factory(base, "task", "approve", task_id)

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "worktree stays" not in approved.stdout
    assert not events(base, task_id, "warning")
    assert not worktree.exists()
    assert task(base, task_id).state is State.DONE


# --- §6: two approvals at once, and a base that moves under an approval -------------


@pytest.mark.parametrize("merge", ["ff", "merge"])
def test_two_approvals_at_once_both_land(base: FactoryBase, tmp_path: Path, started, merge: str) -> None:
    first, second = in_review(base, "Write the notes", "Write more notes", merge=merge)
    tips = {task_id: git(base.root, "rev-parse", f"factory/{task_id}") for task_id in (first, second)}
    install_hook(base, "reference-transaction", GATE_HOOK)
    gate, held = tmp_path / "gate", tmp_path / "held"

    one = start(base, "task", "approve", first, HOOK_GATE=str(gate), HOOK_HELD=str(held))
    started.append(one)
    wait_for(held.exists, "the first approval to reach its landing")
    two = start(base, "task", "approve", second)
    started.append(two)
    wait_for(lambda: waiting_or_done(two, base), "the second approval to wait for the first")
    gate.touch()

    for process in (one, two):
        status, out, err = finish(process)
        assert status == 0, out + err
        assert err == ""
    for task_id, tip in tips.items():
        assert task(base, task_id).state is State.DONE
        assert git(base.root, "merge-base", "--is-ancestor", tip, "main") == ""
        assert (base.root / "notes" / f"{task_id}.md").is_file()
        assert not (base.worktrees_dir / task_id).exists()
    assert git(base.root, "status", "--porcelain", "--untracked-files=no") == ""


# --- §7: a branch the plan did not make is never merged -------------------------------


def test_an_approval_the_log_cannot_record_keeps_the_branch_and_approving_again_records_it(
    base: FactoryBase,
) -> None:
    import sqlite3

    [task_id] = in_review(base, "Write the notes")
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    # The log refuses to record the landing (as a failing disk would).
    with sqlite3.connect(base.log_path) as connection:
        connection.execute("CREATE TRIGGER refuse BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'done' "
                           "BEGIN SELECT RAISE(ABORT, 'the disk said no'); END")

    with ExecutionLog.open(base.log_path) as log, pytest.raises(FactoryError, match="again to record it"):
        Operator(base, log).apply(task_id, Action.APPROVE, actor=ACTOR)

    assert git(base.root, "rev-parse", "main") == branch  # the merge stands
    assert has_branch(base.root, f"factory/{task_id}")  # and so does the branch, for the next try
    assert task(base, task_id).state is State.REVIEW
    with sqlite3.connect(base.log_path) as connection:
        connection.execute("DROP TRIGGER refuse")

    with ExecutionLog.open(base.log_path) as log:
        outcome = Operator(base, log).apply(task_id, Action.APPROVE, actor=ACTOR)

    assert outcome.task.state is State.DONE and outcome.merge_commit == branch
    [approved] = events(base, task_id, "approved")
    assert approved.data["merge_commit"] == branch
    assert not has_branch(base.root, f"factory/{task_id}")
    assert not (base.worktrees_dir / task_id).exists()


def test_approve_refuses_a_branch_the_plan_does_not_own(base: FactoryBase) -> None:
    [task_id] = in_review(base, "Write the notes")
    main = git(base.root, "rev-parse", "main")
    branch = git(base.root, "rev-parse", f"factory/{task_id}")
    with ExecutionLog.open(base.log_path) as log:
        operator = Operator(base, log, owns=lambda task: False)
        with pytest.raises(BranchCollision) as refused:
            operator.apply(task_id, Action.APPROVE, actor=ACTOR)
    message = str(refused.value)
    assert message == (
        f"cannot approve {task_id}: factory/{task_id} is not the branch this plan made for it "
        f"(an earlier plan's?); nothing merged. Rename it (`git branch -m factory/{task_id} old/{task_id}`) "
        f"or delete it, then re-queue {task_id}"
    )
    assert task(base, task_id).state is State.REVIEW
    assert git(base.root, "rev-parse", "main") == main
    assert git(base.root, "rev-parse", f"factory/{task_id}") == branch
    assert not events(base, task_id, "approved", "failed")


def test_a_plan_owns_a_branch_that_grows_from_the_start_it_recorded(base: FactoryBase) -> None:
    [task_id] = in_review(base, "Write the notes")
    with ExecutionLog.open(base.log_path) as log:
        worktrees = Operator(base, log).worktrees
    main = git(base.root, "rev-parse", "main")
    tip = git(base.root, "rev-parse", f"factory/{task_id}")
    assert plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start=main))
    assert plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start=tip))
    # Not recorded by this plan's log: not its branch.
    assert not plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start=None))
    # Recorded, but the branch was made again from elsewhere.
    other = git(base.root, "commit-tree", "-m", "someone else's start", f"{main}^{{tree}}")
    assert not plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start=other))
    assert not plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start="0" * 40))
    # A task that ran before the log kept this record: trusted.
    assert plan_owns_branch(worktrees, SimpleNamespace(id=task_id, branch_start=BRANCH_START_UNRECORDED))


# --- the console: the warning, and `c` to clean up later -------------------------------


async def test_the_console_warns_of_a_worktree_left_after_a_merge_and_c_cleans_it(demo_base: FactoryBase) -> None:
    worktree = demo_base.worktrees_dir / "T-3"
    git(demo_base.root, "worktree", "lock", str(worktree))
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("a")
        await wait_until(pilot, lambda: task(demo_base, "T-3").state is State.DONE, "T-3 done")
        await wait_until(
            pilot,
            lambda: any("its worktree stays" in n.message and n.severity == "warning" for n in app._notifications),
            "the warning",
        )
        git(demo_base.root, "worktree", "unlock", str(worktree))
        await pilot.press("2")
        table = app.worktree_table
        await wait_until(
            pilot, lambda: any(r.task_id == "T-3" and r.status == "orphaned" for r in table.rows), "T-3 orphaned",
        )
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: not worktree.exists(), "the worktree removed")
        # The folder goes first, then the branch: wait for both.
        await wait_until(pilot, lambda: not has_branch(demo_base.root, "factory/T-3"), "the branch removed")
    assert "shopfront/login.py" in git(demo_base.root, "ls-tree", "-r", "--name-only", "main")
