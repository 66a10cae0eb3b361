"""The QA gate hardened (issue 8 §2): a judge run on demand gets the same
material as the gate's, the operator lock is not held while a merge is
checked again, checks take their own slots, engine shutdown stops what QA
runs, clean checkouts and agent worktrees made at once, and hostile
scenarios. Real bases, real git, real subprocesses; waits have deadlines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import State
from tests.engine_helpers import add, git
from tests.test_cli import ok

# A judge that says whether its prompt held the agent's last words.
ECHO_JUDGE = r"""
import sys
prompt = open(sys.argv[1], encoding="utf-8").read()
saw = "the-agents-closing-remark" in prompt
print("saw last words:", "yes" if saw else "no")
print("VERDICT: PASS" if saw else "VERDICT: FAIL")
"""


def add_profile(base: FactoryBase, name: str, argv: list[str], *, timeout: float = 60) -> None:
    text = base.config_path.read_text(encoding="utf-8")
    text += (f"\n[agents.{name}]\nargv = {json.dumps(argv)}\noutput = \"text\"\n"
             f"timeout = {timeout}\nenv = {{}}\n")
    base.config_path.write_text(text, encoding="utf-8")


def write_scenario(base: FactoryBase, name: str, front: dict, body: str = "Judge the work.\n") -> None:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in front.items()] + ["---", "", body]
    (base.qa_dir / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")


def task_in_review(base: FactoryBase, title: str, files: dict[str, str], *, summary: str = "") -> str:
    """A task whose run finished in review with ``summary`` as its last words."""
    from tests.test_review_cli import worktrees

    with ExecutionLog.open(base.log_path) as log:
        task_id = add(base, title)
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task_id
        prepared = worktrees(base).prepare_for(task_id, owned=False)
        log.record_branch_start(task_id, prepared.start)
        for name, text in files.items():
            (prepared.path / name).write_text(text)
        assert worktrees(base).commit_all(task_id, f"work on {task_id}")
        log.finish(claim.token, State.REVIEW, data={"summary": summary} if summary else None)
    return task_id


def checking_without_lease(base: FactoryBase, task_id: str) -> bool:
    import sqlite3

    with sqlite3.connect(base.log_path) as conn:
        state, token = conn.execute("SELECT state, lease_token FROM tasks WHERE seq = ?", (int(task_id.split("-")[1]),)).fetchone()
    return state == "checking" and token is None


# --- 5. a judge run on demand gets the agent's last words -------------------------------


def test_a_judge_run_on_demand_is_given_the_agents_last_words(base: FactoryBase, tmp_path: Path) -> None:
    script = tmp_path / "echo_judge.py"
    script.write_text(ECHO_JUDGE)
    add_profile(base, "echo-judge", ["{python}", str(script), "{prompt_file}"])
    write_scenario(base, "heard", {"kind": "eval", "judge": "echo-judge"})
    task_id = task_in_review(base, "Say something", {"x.txt": "x\n"},
                             summary="Done. the-agents-closing-remark")

    out = ok(base, "qa", "run", "--task", task_id).stdout

    assert out.startswith("PASS heard (eval, required)"), out
    with ExecutionLog.open(base.log_path) as log:
        [row] = log.qa_runs(task_id=task_id)
    answer = (base.root / row.result.output / "answer-1.txt").read_text()
    assert "saw last words: yes" in answer


# --- 4. the operator lock is not held while a merge is checked again ----------------------

# Passes unless a.txt and b.txt both say "on"; while HOLD exists it marks
# STARTED and waits (with a deadline) for RELEASE: a test run that lasts
# as long as the test wants.
HELD_CHECK = """import pathlib, sys, time
hold, started, release = (pathlib.Path(p) for p in sys.argv[1:4])
if hold.exists():
    started.touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
on = [n for n in ("a.txt", "b.txt") if pathlib.Path(n).read_text().strip() == "on"]
sys.exit(1 if len(on) == 2 else 0)
"""


def held_unit(base: FactoryBase, tmp_path: Path) -> tuple[Path, Path, Path]:
    from tests.test_qa_approve import commit_on_main

    hold, started, release = tmp_path / "hold", tmp_path / "started", tmp_path / "release"
    commit_on_main(base, {"check.py": HELD_CHECK, "a.txt": "off\n", "b.txt": "off\n"}, "the switches")
    write_scenario(base, "unit", {"kind": "test", "run": ["{python}", "check.py", str(hold), str(started),
                                                          str(release)]})
    return hold, started, release


def test_a_merge_checked_again_does_not_hold_the_operator_lock_nor_land_on_a_base_moved_meanwhile(
    base: FactoryBase, tmp_path: Path, tidy,
) -> None:
    from tests.engine_helpers import environment, factory, factory_argv, wait_for
    from tests.test_qa_approve import branch_head, commit_on_main, main_head, pass_qa

    hold, started, release = held_unit(base, tmp_path)
    task_id = task_in_review(base, "switch a on", {"a.txt": "on\n"})
    other = task_in_review(base, "something else", {"o.txt": "o\n"})
    pass_qa(base, task_id)
    commit_on_main(base, {"c.txt": "unrelated\n"}, "main moves on")
    hold.touch()
    approve = subprocess.Popen(factory_argv(base, "task", "approve", task_id), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment())
    tidy.append(approve)
    wait_for(started.exists, "the merge's tests to start")

    # Another operator action is not kept waiting by the test run.
    cancelled = factory(base, "task", "cancel", other, env=environment(FACTORY_LOCK_TIMEOUT="5"))
    assert cancelled.returncode == 0, cancelled.stderr
    with ExecutionLog.open(base.log_path) as log:
        assert log.get_task(other).state is State.CANCELLED
    # Main moves while the merge is tested, to where the merge fails.
    moved = commit_on_main(base, {"b.txt": "on\n"}, "switch b on")
    release.touch()

    out, err = approve.communicate(timeout=120)
    assert approve.returncode == 1, out + err
    assert "it fails unit" in err and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert main_head(base) == moved  # never landed over untested
    with ExecutionLog.open(base.log_path) as log:
        assert log.get_task(task_id).state is State.REVIEW
        rows = log.qa_runs(task_id=task_id)
    # Checked on the first base (passed), then on the moved one (failed).
    parents = [git(base.root, "rev-list", "--parents", "-n", "1", row.result.commit).split()[1]
               for row in rows[:2]]
    assert [str(row.result.verdict) for row in rows[:2]] == ["FAIL", "PASS"]
    assert parents[0] == moved and branch_head(base, task_id) in git(
        base.root, "rev-list", "--parents", "-n", "1", rows[0].result.commit)


def test_the_merge_that_lands_is_the_commit_that_was_tested(base: FactoryBase, tmp_path: Path) -> None:
    from tests.test_cli import ok_json
    from tests.test_qa_approve import commit_on_main, pass_qa

    held_unit(base, tmp_path)
    task_id = task_in_review(base, "switch a on", {"a.txt": "on\n"})
    pass_qa(base, task_id)
    moved = commit_on_main(base, {"c.txt": "unrelated\n"}, "main moves on")

    done = ok_json(base, "task", "approve", task_id)

    assert done["state"] == "done"
    assert git(base.root, "rev-parse", "main^1") == moved
    with ExecutionLog.open(base.log_path) as log:
        [latest, _] = log.qa_runs(task_id=task_id)
    assert (latest.result.commit, str(latest.result.verdict)) == (done["merge_commit"], "PASS")


# --- 1. engine shutdown stops a judge, and a test command --------------------------------

# The first time: records its pid and a child's (same process group), then
# waits (with a deadline) for a release that never comes; then it passes.
FIRST_HANGS = r"""
import os, pathlib, subprocess, sys, time
marks = pathlib.Path(sys.argv[-1])
first = not marks.with_suffix(".runs").exists()
with open(marks.with_suffix(".runs"), "a") as handle:
    handle.write("run\n")
if first:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    marks.write_text(f"{os.getpid()} {child.pid}")
    time.sleep(60)
print("VERDICT: PASS")
"""


def test_engine_shutdown_stops_a_judge_and_a_qa_command_and_the_next_engine_checks_once(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    import signal

    from tests.engine_helpers import alive, events, factory, start_factory, task, wait_for
    from tests.test_qa_gate import qa_config

    script = tmp_path / "first_hangs.py"
    script.write_text(FIRST_HANGS)
    qa_config(base, agent)
    add_profile(base, "hang-judge", ["{python}", str(script), "{prompt_file}", str(tmp_path / "judge.pids")])
    write_scenario(base, "judged", {"kind": "eval", "judge": "hang-judge", "timeout": 120})
    write_scenario(base, "tested", {"kind": "test", "timeout": 120,
                                    "run": ["{python}", str(script), str(tmp_path / "test.pids")]})
    task_id = add(base, "Do some work")

    for pids in (tmp_path / "judge.pids", tmp_path / "test.pids"):
        engine = start_factory(base, "run", output=tmp_path / f"{pids.stem}.out")
        tidy.append(engine)
        text = wait_for(lambda pids=pids: pids.exists() and pids.read_text(), f"{pids.stem} to start")
        started = [int(pid) for pid in text.split()]
        tidy.extend(started)
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
        # Stopped, the process and its child, and left for the next engine.
        wait_for(lambda started=started: not any(alive(pid) for pid in started), f"{pids.stem} to be stopped",
                 limit=10)
        assert checking_without_lease(base, task_id)
        assert "Traceback" not in (tmp_path / f"{pids.stem}.out").read_text()

    done = factory(base, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    with ExecutionLog.open(base.log_path) as log:
        rows = log.qa_runs(task_id=task_id)
    assert sorted((row.result.scenario, str(row.result.verdict)) for row in rows) == [
        ("judged", "PASS"), ("tested", "PASS")]  # counted once
    assert len(events(base, task_id, "finished", "checking")) == 1  # the agent ran once


# --- 2. [qa] max_parallel: slots of their own, or the engine's ------------------------------

# A QA command that says in the record when it begins and ends for its task
# (named by the agent's file in the checkout), and holds on until released.
SLOT_QA = r"""
import pathlib, sys, time
record, release = sys.argv[1:3]
task = sorted(p.name for p in pathlib.Path(".").glob("work-*.txt"))[0][5:-4]
def mark(what):
    with open(record, "a") as handle:
        handle.write(f"{what} {task}\n")
mark("qa-begin")
deadline = time.monotonic() + 60
while not pathlib.Path(release).exists() and time.monotonic() < deadline:
    time.sleep(0.02)
mark("qa-end")
"""


def slot_base(base: FactoryBase, agent: Path, tmp_path: Path, *, max_parallel: int, qa: str) -> tuple[Path, Path]:
    from tests.engine_helpers import agent_profile, configure

    record, release = tmp_path / "record.txt", tmp_path / "release"
    script = tmp_path / "slot_qa.py"
    script.write_text(SLOT_QA)
    configure(base, max_parallel=max_parallel, default_agent="steady",
              agents={"steady": agent_profile(agent, AGENT_RECORD=str(record))},
              extra=f"\n[qa]\n{qa}\n")
    write_scenario(base, "held", {"kind": "test", "retries": 0,
                                  "run": ["{python}", str(script), str(record), str(release)]})
    return record, release


def lines(record: Path) -> list[str]:
    return [" ".join(line.split()[:2]) for line in record.read_text().splitlines()] if record.exists() else []


def most_at_once(record: Path) -> int:
    running = most = 0
    for line in lines(record):
        running += line.startswith("qa-begin") - line.startswith("qa-end")
        most = max(most, running)
    return most


def test_qa_max_parallel_gives_checks_slots_of_their_own_and_caps_them(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    from tests.engine_helpers import start_factory, task, wait_for

    record, release = slot_base(base, agent, tmp_path, max_parallel=1, qa="max_parallel = 2")
    ids = [add(base, f"Task {n}") for n in range(3)]
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)

    # Two checks held at once, and meanwhile the third agent ran in the
    # engine's one slot.
    wait_for(lambda: sum(line.startswith("qa-begin") for line in lines(record)) == 2, "two checks at once")
    third = [task_id for task_id in ids if f"qa-begin {task_id}" not in lines(record)][0]
    wait_for(lambda: f"start {third}" in lines(record), "the third agent to run while two checks are held")
    # Its check waits for a QA slot (in checking, without a lease).
    wait_for(lambda: checking_without_lease(base, third) or f"qa-begin {third}" in lines(record),
             "the third task to finish its run")
    release.touch()

    assert engine.wait(timeout=120) == 0, (tmp_path / "engine.out").read_text()
    assert most_at_once(record) == 2, lines(record)
    assert all(task(base, task_id).state is State.REVIEW for task_id in ids)
    assert "Traceback" not in (tmp_path / "engine.out").read_text()


def test_without_qa_max_parallel_checks_take_the_engines_slots(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    from tests.engine_helpers import start_factory, task, wait_for

    record, release = slot_base(base, agent, tmp_path, max_parallel=2, qa="on_fail = \"requeue\"")
    ids = [add(base, f"Task {n}") for n in range(3)]
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)
    wait_for(lambda: sum(line.startswith("qa-begin") for line in lines(record)) == 2, "two checks at once")
    release.touch()

    assert engine.wait(timeout=120) == 0, (tmp_path / "engine.out").read_text()
    seen = lines(record)
    first_two = [line.split()[1] for line in seen if line.startswith("qa-begin")][:2]
    [third] = [task_id for task_id in ids if task_id not in first_two]
    # The third agent started only once a check had given its slot back.
    assert seen.index(f"start {third}") > seen.index(next(line for line in seen if line.startswith("qa-end")))
    assert all(task(base, task_id).state is State.REVIEW for task_id in ids)


# --- 3. clean checkouts and agent worktrees made at once ------------------------------------


def test_clean_checkouts_and_agent_worktrees_made_at_once_all_succeed_and_keep_each_other(
    base: FactoryBase,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from factory_tui.backends.qa_runner import CleanCheckout
    from tests.test_review_cli import worktrees

    commit = git(base.root, "rev-parse", "HEAD")
    ids = [add(base, f"Task {n}") for n in range(4)]

    def checkout(n: int) -> str:
        with CleanCheckout(base.root, commit, base.qa_work_dir) as folder:
            (folder / "mine.txt").write_text(str(n))
            # Another's prune must not have taken this one away meanwhile.
            assert git(folder, "rev-parse", "HEAD") == commit
            return (folder / "mine.txt").read_text()

    def agent_worktree(task_id: str) -> Path:
        return worktrees(base).prepare_for(task_id, owned=False).path

    with ThreadPoolExecutor(max_workers=8) as pool:
        checked = [pool.submit(checkout, n) for n in range(8)]
        made = [pool.submit(agent_worktree, task_id) for task_id in ids]
        assert [future.result(timeout=120) for future in checked] == [str(n) for n in range(8)]
        paths = [future.result(timeout=120) for future in made]

    listed = git(base.root, "worktree", "list", "--porcelain")
    for task_id, path in zip(ids, paths, strict=True):
        assert path.is_dir() and git(path, "rev-parse", "--abbrev-ref", "HEAD") == f"factory/{task_id}"
        assert f"worktree {path}" in listed
    checkouts = base.qa_work_dir / "checkouts"
    assert not checkouts.exists() or not [p for p in checkouts.iterdir() if p.is_dir()]
