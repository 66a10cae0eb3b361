"""Running ``test`` and ``verify`` scenarios (backends/qa_runner.py), really:
real git repositories, real detached checkouts, real commands (a real
``pytest`` run among them), real processes killed and looked for in /proc.

A command counts its own runs by appending to a file outside the checkout
(named through the environment), so that a test can tell what ran where
without asking the runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.qa_runner import (
    BaseResults,
    CleanCheckout,
    check_test_scenario,
    judge_against_base,
    run_command_scenario,
    sweep_checkouts,
)
from factory_tui.qa_model import Gate, QaKind, QaResult, Scenario, Verdict
from tests.engine_helpers import alive, git, wait_for


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", *files], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True)
    return git(repo, "rev-parse", "HEAD").strip()


def scenario(*run: str, kind: QaKind = QaKind.TEST, **fields) -> Scenario:
    return Scenario(
        name=fields.pop("name", "check"), path=".factory/qa/check.md", kind=kind, gate=Gate.REQUIRED,
        body="", version=fields.pop("version", "v1"), run=run, **fields,
    )


def python(code: str) -> tuple[str, ...]:
    return ("{python}", "-c", textwrap.dedent(code))


def run(base: FactoryBase, check: Scenario, commit: str, *, base_commit: str | None = None,
        out: str = "out", env: dict | None = None, cancel: threading.Event | None = None) -> QaResult:
    return run_command_scenario(
        check, repo_root=base.root, commit=commit, base_commit=base_commit,
        out_dir=base.qa_run_dir(None, 1, "0", out), work_dir=base.qa_work_dir, env=env, cancel=cancel,
    )


def registered_worktrees(repo: Path) -> list[str]:
    return [line.split(" ", 1)[1] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


# --- the clean checkout -------------------------------------------------------------


def test_checkout_holds_the_commit_and_nothing_the_agent_left_uncommitted(base: FactoryBase) -> None:
    repo = base.root
    start = head(repo)
    # The agent's own worktree, on its task branch: one commit, then work
    # it never committed (a changed file, a staged file, a new file).
    agent = repo / ".factory" / "worktrees" / "T-1"
    git(repo, "worktree", "add", "-q", "-b", "factory/T-1", str(agent), start)
    commit = commit_files(agent, {"app.py": "VERSION = 1\n"}, "the agent's work")
    (agent / "app.py").write_text("VERSION = 'uncommitted'\n")
    (agent / "staged.py").write_text("staged = True\n")
    git(agent, "add", "staged.py")
    (agent / "scratch.txt").write_text("left lying around\n")
    status_before = git(agent, "status", "--porcelain")
    branches_before = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")

    with CleanCheckout(repo, commit, base.qa_work_dir) as folder:
        assert folder.parent == base.qa_work_dir / "checkouts"
        assert (folder / "app.py").read_text() == "VERSION = 1\n"
        assert not (folder / "staged.py").exists()
        assert not (folder / "scratch.txt").exists()
        assert head(folder) == commit
        assert git(folder, "status", "--porcelain") == ""
        # Detached: no branch is checked out there.
        assert git(folder, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
        (folder / "made-by-the-test.txt").write_text("QA's own mess\n")

    assert not folder.exists()
    assert str(folder) not in registered_worktrees(repo)
    assert git(agent, "status", "--porcelain") == status_before
    assert git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads") == branches_before
    assert head(repo) == start


def test_checkout_is_removed_when_the_check_raises(base: FactoryBase) -> None:
    with pytest.raises(RuntimeError), CleanCheckout(base.root, head(base.root), base.qa_work_dir) as folder:
        assert folder.is_dir()
        raise RuntimeError("the check broke")
    assert not folder.exists()
    assert registered_worktrees(base.root) == [str(base.root)]
    assert os.listdir(base.qa_work_dir / "checkouts") == []


def test_an_unknown_commit_is_an_error_not_a_crash(base: FactoryBase) -> None:
    result = run(base, scenario(*python("pass")), "0" * 40)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("cannot check out 000000000000 for QA:")
    assert "\n" not in result.reason
    assert os.listdir(base.qa_work_dir / "checkouts") == []


HOLDER = """
import sys, time
from pathlib import Path
from factory_tui.backends.qa_runner import CleanCheckout
with CleanCheckout(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])) as folder:
    print(folder, flush=True)
    time.sleep(120)
"""


def test_a_checkout_left_by_a_killed_process_is_swept_and_a_live_one_is_not(base: FactoryBase) -> None:
    repo = base.root
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo), head(repo), str(base.qa_work_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        folder = Path(holder.stdout.readline().strip())
        assert folder.is_dir()
        # Its owner is alive: another user's sweep leaves it alone.
        assert sweep_checkouts(base.qa_work_dir, repo) == []
        assert folder.is_dir()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert folder.is_dir() and str(folder) in registered_worktrees(repo)

    # The next check sweeps it before making its own.
    with CleanCheckout(repo, head(repo), base.qa_work_dir) as mine:
        assert not folder.exists()
        assert registered_worktrees(repo) == [str(repo), str(mine)]
    assert os.listdir(base.qa_work_dir / "checkouts") == []


# --- test: a real pytest run, and the base branch ----------------------------------

CONFTEST = """
import os
def pytest_sessionstart(session):
    # Which commit this run checked, for the test to count.
    with open(os.environ["RUNS_LOG"], "a") as log:
        log.write(os.environ["FACTORY_QA_COMMIT"] + "\\n")
"""
CALC = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a + b  # wrong on the base branch\n"
TESTS = (
    "from calc import add, sub\n\n"
    "def test_add():\n    assert add(2, 2) == 4\n\n"
    "def test_sub():\n    assert sub(5, 3) == 2\n"
)
# The plugins of this suite's own environment are not the tiny project's.
FAST_PYTEST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
PYTEST = scenario("{python}", "-m", "pytest", "-q", "--junitxml={junit}", "-p", "no:cacheprovider", name="unit")


def test_a_real_pytest_run_blames_the_task_only_for_what_it_broke(base: FactoryBase, tmp_path: Path) -> None:
    repo = base.root
    base_commit = commit_files(repo, {"calc.py": CALC, "test_calc.py": TESTS, "conftest.py": CONFTEST}, "calc")
    runs_log = tmp_path / "runs.log"
    env = {"RUNS_LOG": str(runs_log), **FAST_PYTEST}
    # Task 1 breaks add (and still has sub wrong, as the base does).
    git(repo, "checkout", "-q", "-b", "factory/T-1")
    broken = commit_files(repo, {"calc.py": CALC.replace("return a + b\n\ndef", "return a - b\n\ndef")}, "T-1")
    # Task 2, on the same base, touches only the docs.
    git(repo, "checkout", "-q", "-b", "factory/T-2", base_commit)
    harmless = commit_files(repo, {"NOTES.md": "notes\n"}, "T-2")
    git(repo, "checkout", "-q", "main")

    first = check_test_scenario(
        PYTEST, repo_root=repo, commit=broken, base_commit=base_commit,
        out_dir=base.qa_run_dir("T-1", 1, "1", "unit"), work_dir=base.qa_work_dir, env=env,
    )
    assert first.verdict is Verdict.FAIL
    assert first.tests == {"test_calc::test_add": "FAIL", "test_calc::test_sub": "FAIL"}
    assert first.reason == (
        "1 test failed: test_calc::test_add (already failing on the base branch: test_calc::test_sub)"
    )
    assert first.base_commit == base_commit and first.commit == broken
    assert first.output == ".factory/runs/T-1/1/qa/1-unit"
    log_text = (repo / first.output / "output.log").read_text()
    assert "2 failed" in log_text
    assert runs_log.read_text().splitlines() == [broken, base_commit]
    cached = BaseResults(base.qa_work_dir).get(base_commit, PYTEST)
    assert cached is not None and cached.verdict is Verdict.FAIL
    assert cached.tests == {"test_calc::test_add": "PASS", "test_calc::test_sub": "FAIL"}

    second = check_test_scenario(
        PYTEST, repo_root=repo, commit=harmless, base_commit=base_commit,
        out_dir=base.qa_run_dir("T-2", 1, "2", "unit"), work_dir=base.qa_work_dir, env=env,
    )
    assert second.verdict is Verdict.PASS
    assert second.reason == "passes but for tests already failing on the base branch: test_calc::test_sub"
    # The base commit's tests were not run again for the second task.
    assert runs_log.read_text().splitlines() == [broken, base_commit, harmless]


def test_pass_needs_exit_zero_and_names_how_many_tests_passed(base: FactoryBase) -> None:
    repo = base.root
    commit = commit_files(repo, {"test_ok.py": "def test_ok():\n    pass\n"}, "a passing test")
    result = run(base, PYTEST, commit, env=FAST_PYTEST)
    assert (result.verdict, result.reason, result.tests) == (Verdict.PASS, "passed (1 test)", {"test_ok::test_ok": "PASS"})


# --- judging against the base, without per-test results ------------------------------


def result(verdict: Verdict, tests: dict | None = None, commit: str = "head") -> QaResult:
    return QaResult(scenario="unit", version="v1", kind=QaKind.TEST, gate=Gate.REQUIRED, verdict=verdict,
                    reason=f"exited {0 if verdict is Verdict.PASS else 1}", commit=commit, tests=tests or {})


def test_a_failure_on_both_commits_without_per_test_results_cannot_be_judged() -> None:
    # A command that cannot even start fails on both commits: never a quiet
    # pass. ERROR blocks a required gate and says what to do.
    judged = judge_against_base(result(Verdict.FAIL), result(Verdict.FAIL, commit="base"))
    assert judged.verdict is Verdict.ERROR and judged.blocks
    assert judged.reason == (
        "fails on the base branch too and reports no per-test results, so the task cannot be "
        "judged: have the command write JUnit to {junit} (exited 1)"
    )
    assert judged.base_commit == "base"
    # Per-test results on the head only: the base's failure cannot set any aside.
    only_head = judge_against_base(result(Verdict.FAIL, {"t::a": "FAIL"}), result(Verdict.FAIL))
    assert only_head.verdict is Verdict.ERROR
    assert judge_against_base(result(Verdict.FAIL), result(Verdict.PASS)).verdict is Verdict.FAIL


def test_a_new_test_that_fails_is_blamed_and_a_base_that_could_not_run_blames_nothing_away() -> None:
    head_result = result(Verdict.FAIL, {"t::old": "PASS", "t::new": "FAIL"})
    judged = judge_against_base(head_result, result(Verdict.PASS, {"t::old": "PASS"}))
    assert (judged.verdict, judged.reason) == (Verdict.FAIL, "1 test failed: t::new")
    unknown = judge_against_base(result(Verdict.FAIL), replace(result(Verdict.ERROR), reason="did not finish within 5 s"))
    assert unknown.verdict is Verdict.FAIL
    assert unknown.reason == "exited 1 (the base branch could not be checked: did not finish within 5 s)"


# --- retries, timeouts, cancel, bad commands ------------------------------------------

COUNTER = """
import os, sys
from pathlib import Path
counter = Path(os.environ["COUNTER"])
runs = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(runs))
print(f"run {runs}")
sys.exit(0 if runs >= int(os.environ["PASS_FROM"]) else 1)
"""


def test_a_failure_that_passes_on_retry_is_flaky_not_hidden(base: FactoryBase, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    check = scenario(*python(COUNTER), retries=1)
    flaky = run(base, check, head(base.root), env={"COUNTER": str(counter), "PASS_FROM": "2"})
    assert (flaky.verdict, flaky.attempts) == (Verdict.FLAKY, 2)
    assert flaky.reason == "failed on attempt 1 (exited 1: run 1), passed on attempt 2"
    log_text = (base.root / flaky.output / "output.log").read_text()
    assert "── try 1 of at most 2" in log_text and "── try 2 of at most 2" in log_text and "run 1" in log_text and "run 2" in log_text

    counter.unlink()
    failing = run(base, check, head(base.root), env={"COUNTER": str(counter), "PASS_FROM": "9"})
    assert (failing.verdict, failing.attempts) == (Verdict.FAIL, 2)
    assert failing.reason == "exited 1: run 2 (all 2 attempts failed)"


SPAWNER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["PIDS"], "w") as pids:
    pids.write(f"{os.getpid()} {child.pid}")
time.sleep(120)
"""


def pids_in(path: Path) -> list[int] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return [int(pid) for pid in text.split()] if len(text.split()) == 2 else None


def test_a_timeout_kills_the_commands_whole_process_group(base: FactoryBase, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    check = scenario(*python(SPAWNER), timeout=1.0, retries=1)
    result = run(base, check, head(base.root), env={"PIDS": str(pids)})
    assert (result.verdict, result.reason, result.attempts) == (Verdict.ERROR, "did not finish within 1 s", 1)
    leader, child = pids_in(pids)
    wait_for(lambda: not alive(leader) and not alive(child), "the command and its child to be gone", 10)
    assert "stopped (timed out)" in (base.root / result.output / "output.log").read_text()


def test_cancel_stops_the_command_and_skips(base: FactoryBase, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cancel = threading.Event()
    outcome: list[QaResult] = []
    worker = threading.Thread(target=lambda: outcome.append(
        run(base, scenario(*python(SPAWNER)), head(base.root), env={"PIDS": str(pids)}, cancel=cancel)))
    worker.start()
    leader, child = wait_for(lambda: pids_in(pids), "the command to start", 10)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert (outcome[0].verdict, outcome[0].reason) == (Verdict.SKIP, "cancelled")
    wait_for(lambda: not alive(leader) and not alive(child), "the command and its child to be gone", 10)


ESCAPER = """
import os, subprocess, sys
# A daemon that leaves the group and keeps the command's output open.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
open(os.environ["PIDS"], "w").write(f"{os.getpid()} {child.pid}")
print("done")
"""


def test_a_process_that_left_the_group_holding_the_output_is_stopped(base: FactoryBase, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = run(base, scenario(*python(ESCAPER)), head(base.root), env={"PIDS": str(pids)})
    assert (result.verdict, result.reason) == (Verdict.PASS, "exited 0")
    _, child = pids_in(pids)
    wait_for(lambda: not alive(child), "the escaped child to be gone", 10)


def test_a_command_that_is_not_there_is_one_line_of_error(base: FactoryBase) -> None:
    result = run(base, scenario("no-such-program-for-qa", "--version"), head(base.root))
    assert (result.verdict, result.reason) == (Verdict.ERROR, "command not found: no-such-program-for-qa")


def test_junit_with_a_doctype_is_refused_unread(base: FactoryBase) -> None:
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        '<testsuite><testcase classname="t" name="&lol2;"><failure/></testcase></testsuite>'
    )
    code = f"import os, sys\nopen(sys.argv[1], 'w').write({hostile!r})\nsys.exit(1)"
    result = run(base, scenario("{python}", "-c", code, "{junit}"), head(base.root))
    assert (result.verdict, result.tests) == (Verdict.ERROR, {})
    assert result.reason == "JUnit XML refused: it declares a DOCTYPE or entities"


def test_output_is_capped_keeping_its_head_and_tail(base: FactoryBase) -> None:
    code = "import sys\nsys.stdout.write('FIRST\\n' + 'x' * 3_000_000 + '\\nLAST\\n')"
    result = run(base, scenario("{python}", "-c", code), head(base.root))
    assert result.verdict is Verdict.PASS
    log_text = (base.root / result.output / "output.log").read_text()
    assert len(log_text) < 2_100_000
    assert "FIRST" in log_text and "LAST" in log_text
    assert "bytes of output cut here" in log_text


# --- verify ------------------------------------------------------------------------


def test_verify_is_decided_by_its_patterns_and_reports_the_exit_status(base: FactoryBase) -> None:
    commit = head(base.root)
    # Braces other than the known placeholders stay as written.
    code = "import sys\nprint({'status': 'ready'})\nprint('served 3 pages')\nsys.exit(3)"
    verify = scenario("{python}", "-c", code, kind=QaKind.VERIFY,
                      expect=(r"^served \d+ pages$", "'status': 'ready'"), expect_not=("Traceback",))
    passed = run(base, verify, commit, out="a")
    assert (passed.verdict, passed.reason) == (Verdict.PASS, "exited 3; all 3 expectations met")

    missing = run(base, replace(verify, expect=("all green",)), commit, out="b")
    assert (missing.verdict, missing.reason) == (Verdict.FAIL, "exited 3; expected 'all green' not found")
    found = run(base, replace(verify, expect_not=(r"served \d+",)), commit, out="c")
    assert (found.verdict, found.reason) == (Verdict.FAIL, "exited 3; 'served \\\\d+' found")

    no_patterns = run(base, replace(verify, expect=(), expect_not=()), commit, out="d")
    assert (no_patterns.verdict, no_patterns.reason) == (Verdict.FAIL, "exited 3: served 3 pages")


# --- two processes, one base -------------------------------------------------------

RACER = """
import json, sys
from pathlib import Path
from factory_tui.backends.qa_runner import check_test_scenario
from factory_tui.qa_model import Gate, QaKind, Scenario
repo, commit, base_commit, out, work, runs_log = sys.argv[1:]
code = (
    "import os, sys, time\\n"
    "open(os.environ['RUNS_LOG'], 'a').write(os.environ['FACTORY_QA_COMMIT'] + '\\\\n')\\n"
    # Long enough for the other process to ask for the base meanwhile.
    "time.sleep(0.5)\\n"
    "sys.exit(1)\\n"
)
scenario = Scenario("unit", ".factory/qa/unit.md", QaKind.TEST, Gate.REQUIRED, "", "v1", run=("{python}", "-c", code))
result = check_test_scenario(scenario, repo_root=Path(repo), commit=commit, base_commit=base_commit,
                             out_dir=Path(out), work_dir=Path(work), env={"RUNS_LOG": runs_log})
print(json.dumps(result.to_json()))
"""


def test_two_processes_needing_the_same_base_run_it_once(base: FactoryBase, tmp_path: Path) -> None:
    repo = base.root
    base_commit = head(repo)
    tasks = [commit_files(repo, {f"t{n}.txt": "x\n"}, f"task {n}") for n in (1, 2)]
    git(repo, "checkout", "-q", "--detach", base_commit)
    runs_log = tmp_path / "runs.log"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(repo), commit, base_commit,
             str(base.qa_run_dir(f"T-{n}", 1, "1", "unit")), str(base.qa_work_dir), str(runs_log)],
            stdout=subprocess.PIPE, text=True,
        )
        for n, commit in enumerate(tasks, 1)
    ]
    results = []
    for racer in racers:
        out, _ = racer.communicate(timeout=60)
        assert racer.returncode == 0
        results.append(json.loads(out))
    runs = runs_log.read_text().splitlines()
    assert sorted(runs) == sorted([*tasks, base_commit]), runs
    for found in results:
        assert found["verdict"] == "ERROR"
        assert found["reason"].startswith("fails on the base branch too and reports no per-test results")
        assert found["base_commit"] == base_commit
    assert BaseResults(base.qa_work_dir).get(base_commit, replace(PYTEST, version="v1")) is not None
    assert not [name for name in os.listdir(base.qa_work_dir / "base") if name.endswith(".tmp")]


def test_the_command_is_told_its_commit_and_junit_path_and_never_an_agents_identity(
    base: FactoryBase, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Run from inside an agent's run (an agent asking for QA): its token stays out.
    monkeypatch.setenv("FACTORY_TOKEN", "agent-secret")
    monkeypatch.setenv("FACTORY_RUN", "/somewhere/runs/T-1/1")
    code = (
        "import os, sys\n"
        "print('token', os.environ.get('FACTORY_TOKEN'), os.environ.get('FACTORY_RUN'))\n"
        "print('commit', os.environ['FACTORY_QA_COMMIT'], sys.argv[1])\n"
        "print('junit', os.environ['FACTORY_QA_JUNIT'] == sys.argv[2], os.path.basename(sys.argv[2]))\n"
        "print('cwd', os.getcwd() == sys.argv[3])\n"
    )
    commit = head(base.root)
    verify = scenario("{python}", "-c", code, "{commit}", "{junit}", "{checkout}", kind=QaKind.VERIFY,
                      expect=("^token None None$", f"^commit {commit} {commit}$", "^junit True junit-1.xml$",
                              "^cwd True$"))
    result = run(base, verify, commit)
    assert (result.verdict, result.reason) == (Verdict.PASS, "exited 0; all 4 expectations met")


def test_a_pattern_that_backtracks_without_end_is_stopped_within_the_timeout(base: FactoryBase) -> None:
    # 40 a's and a b: (a+)+$ takes 2**40 steps in Python's re.
    code = "print('a' * 40 + 'b')"
    verify = scenario("{python}", "-c", code, kind=QaKind.VERIFY, expect=("(a+)+$",), timeout=2.0, retries=1)
    result = run(base, verify, head(base.root))
    assert result.verdict is Verdict.ERROR, result
    assert result.attempts == 1  # an error is not retried
    assert result.reason.startswith("the patterns were not searched within "), result.reason
    assert "\n" not in result.reason


DAEMON = """
import os, sys, time
# The classic daemon: fork, setsid, fork again, let go of the output.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        open(os.environ["PIDS"], "w").write(f"{os.getpid()} {os.getsid(0)}")
        time.sleep(120)
        os._exit(0)
    os._exit(0)
deadline = time.monotonic() + 30
while not os.path.exists(os.environ["PIDS"]) and time.monotonic() < deadline:
    time.sleep(0.01)
print("started the daemon")
"""


def test_a_daemon_that_let_go_of_the_output_does_not_outlive_its_scenario(base: FactoryBase, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = run(base, scenario(*python(DAEMON)), head(base.root), env={"PIDS": str(pids)})
    assert (result.verdict, result.reason) == (Verdict.PASS, "exited 0")
    daemon, _ = pids_in(pids)
    # Stopped by the time the scenario's result is given: nothing holds the checkout.
    assert not alive(daemon)


# --- refs: the checkout is detached but shares the repository's refs --------------------


def task_branch(base: FactoryBase) -> tuple[str, str]:
    """A task's branch ``factory/T-1`` one commit ahead of main: (main, branch) heads."""
    main = head(base.root)
    git(base.root, "checkout", "-q", "-b", "factory/T-1")
    tip = commit_files(base.root, {"work.txt": "the task's work\n"}, "the task's work")
    git(base.root, "checkout", "-q", "main")
    return main, tip


def guarded(base: FactoryBase, code: str, commit: str, out: str) -> QaResult:
    return run_command_scenario(
        scenario(*python(code), retries=0), repo_root=base.root, commit=commit, base_commit=None,
        out_dir=base.qa_run_dir("T-1", 1, "0", out), work_dir=base.qa_work_dir,
        watch=("refs/heads/main", "refs/heads/factory/T-1"), restore=("refs/heads/factory/T-1",),
    )


def test_git_commands_in_the_checkout_move_neither_the_tasks_branch_nor_the_base(base: FactoryBase) -> None:
    main, tip = task_branch(base)
    code = """
        import subprocess
        def git(*args):
            subprocess.run(["git", *args], check=True, capture_output=True)
        git("-c", "user.name=qa", "-c", "user.email=qa@x", "commit", "-q", "--allow-empty", "-m", "made by QA")
        git("update-ref", "HEAD", "HEAD~1")
        git("checkout", "-q", "-b", "made-by-qa")
        git("-c", "user.name=qa", "-c", "user.email=qa@x", "commit", "-q", "--allow-empty", "-m", "again")
    """
    result = guarded(base, code, tip, "a")
    assert result.verdict is Verdict.PASS, result
    assert (head(base.root), git(base.root, "rev-parse", "factory/T-1").strip()) == (main, tip)


def test_a_scenario_that_rewinds_the_tasks_branch_is_an_error_and_the_branch_is_put_back(base: FactoryBase) -> None:
    main, tip = task_branch(base)
    code = """
        import subprocess
        subprocess.run(["git", "branch", "-f", "factory/T-1", "HEAD~1"], check=True)
        print("all good")
    """
    result = guarded(base, code, tip, "a")
    assert result.verdict is Verdict.ERROR, result
    assert result.reason == (f"the scenario moved refs/heads/factory/T-1 from {tip[:10]} to {main[:10]}; put back")
    assert git(base.root, "rev-parse", "factory/T-1").strip() == tip
    assert result.reason in (base.root / result.output / "output.log").read_text()

    # Deleting the base branch is named; the base branch is the operator's to put back.
    code = """
        import subprocess
        subprocess.run(["git", "update-ref", "-d", "refs/heads/main"], check=True)
    """
    git(base.root, "checkout", "-q", "--detach")
    result = guarded(base, code, tip, "b")
    assert (result.verdict, result.reason) == (Verdict.ERROR, f"the scenario deleted refs/heads/main (at {main[:10]})")
