"""QA's overhead per task beyond the command itself, and the base-commit cache.

Run it as ``python benchmarks/bench_qa.py`` (``--help`` for options). It prints
figures; it is not a test and asserts nothing about time.

Target (issue 8 §6): "QA overhead per task beyond the commands themselves
(clean checkout, bookkeeping) against running the same commands directly, in
one run: at most 1.2×; the base-commit cache: the second task on the same base
does not run the base tests again (printed)."

Set-up (not timed): a repository with a small Python project (a module and a
test file of 20 tests), and N task commits on top of its base commit, each
changing one file.

* direct: the command run N times with ``subprocess.run`` in one existing
  checkout (the repository's own), as an engineer would run it by hand;
* ours: ``run_command_scenario`` once per task commit: a clean detached
  checkout of that commit, the command under a process group with a timeout,
  its output captured to ``output.log``, JUnit read, the checkout removed.

Two commands: a trivial one (``python -c pass``: nearly all of "ours" is then
overhead, so a ratio near 1.2 is out of reach and the absolute overhead in ms
is the figure that says something) and a realistic one (that small pytest
run, with ``--junitxml``). The two sides alternate from round to round; each
figure is the median over rounds of the mean per task.

Base cache: a test failing on the base commit and on two tasks made on it;
``check_test_scenario`` for the first task runs the base too, for the second
it reads the cached base result. The project's conftest counts the runs on
each commit, and the figures printed are those counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factory_tui.backends.qa_runner import check_test_scenario, run_command_scenario
from factory_tui.qa_model import Gate, QaKind, Scenario, Verdict

TESTS = 20
CONFTEST = """
import os
def pytest_sessionstart(session):
    log = os.environ.get("RUNS_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(os.environ.get("FACTORY_QA_COMMIT", "direct") + "\\n")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(folder: Path, tasks: int, *, failing_on_base: bool = False) -> tuple[Path, str, list[str]]:
    repo = folder / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.invalid")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    lines = ["from calc import add\n"]
    for n in range(TESTS):
        expected = n + n + (1 if failing_on_base and n == 0 else 0)
        lines.append(f"def test_add_{n}():\n    assert add({n}, {n}) == {expected}\n")
    (repo / "test_calc.py").write_text("\n".join(lines))
    (repo / "conftest.py").write_text(CONFTEST)
    (repo / "README.md").write_text("# bench\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base_commit = git(repo, "rev-parse", "HEAD")
    commits = []
    for n in range(tasks):
        git(repo, "checkout", "-q", "--detach", base_commit)
        (repo / "README.md").write_text(f"# bench\n\ntask {n}\n")
        git(repo, "commit", "-q", "-am", f"task {n}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    git(repo, "checkout", "-q", "main")
    return repo, base_commit, commits


def scenario(run: tuple[str, ...], name: str) -> Scenario:
    return Scenario(name, f".factory/qa/{name}.md", QaKind.TEST, Gate.REQUIRED, "", "v1", run=run, timeout=120)


def direct(repo: Path, argv: list[str], times: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(times):
        subprocess.run(argv, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
    return (time.perf_counter() - started) / times


def ours(repo: Path, check: Scenario, commits: list[str], work: Path, env: dict[str, str], round_: int) -> float:
    started = time.perf_counter()
    for n, commit in enumerate(commits):
        result = run_command_scenario(
            check, repo_root=repo, commit=commit, base_commit=None,
            out_dir=work / "runs" / f"{round_}-{n}", work_dir=work, env=env,
        )
        if result.verdict is not Verdict.PASS:
            raise SystemExit(f"unexpected {result.verdict}: {result.reason}")
    return (time.perf_counter() - started) / len(commits)


def compare(label: str, repo: Path, commits: list[str], work: Path, run: tuple[str, ...], rounds: int) -> None:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    check = scenario(run, label)
    junit = work / "direct-junit.xml"
    argv = [arg.replace("{python}", sys.executable).replace("{junit}", str(junit)) for arg in run]
    mine, theirs = [], []
    for round_ in range(rounds):
        if round_ % 2:
            theirs.append(direct(repo, argv, len(commits), env))
            mine.append(ours(repo, check, commits, work, env, round_))
        else:
            mine.append(ours(repo, check, commits, work, env, round_))
            theirs.append(direct(repo, argv, len(commits), env))
    ours_ms, direct_ms = statistics.median(mine) * 1000, statistics.median(theirs) * 1000
    print(f"{label:<10} direct {direct_ms:8.1f} ms/task   QA {ours_ms:8.1f} ms/task   "
          f"ratio {ours_ms / direct_ms:5.2f}x   overhead {ours_ms - direct_ms:6.1f} ms/task")


def base_cache(folder: Path, rounds_dir: Path) -> None:
    repo, base_commit, commits = make_repo(folder, 2, failing_on_base=True)
    runs_log = folder / "runs.log"
    env = {"RUNS_LOG": str(runs_log), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    check = scenario(("{python}", "-m", "pytest", "-q", "--junitxml={junit}", "-p", "no:cacheprovider"), "unit")
    work = repo / ".factory" / "qa-work"
    for n, commit in enumerate(commits, 1):
        started = time.perf_counter()
        result = check_test_scenario(
            check, repo_root=repo, commit=commit, base_commit=base_commit,
            out_dir=rounds_dir / f"task-{n}", work_dir=work, env=env,
        )
        took = (time.perf_counter() - started) * 1000
        runs = runs_log.read_text().splitlines()
        print(f"task {n}: {result.verdict} ({result.reason}); {took:.0f} ms; "
              f"base tests run {runs.count(base_commit)} time(s) so far, task's {runs.count(commit)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20, help="task commits checked per round (20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median counts (3)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-qa-") as temporary:
        folder = Path(temporary)
        repo, _, commits = make_repo(folder, options.tasks)
        work = repo / ".factory" / "qa-work"
        print(f"{options.tasks} tasks, {options.rounds} rounds, git {git(repo, 'version').split()[-1]}")
        compare("trivial", repo, commits, work, ("{python}", "-c", "pass"), options.rounds)
        compare("pytest", repo, commits, work,
                ("{python}", "-m", "pytest", "-q", "--junitxml={junit}", "-p", "no:cacheprovider"), options.rounds)
        print("target: ratio at most 1.2x with a realistic command")
        cache_dir = folder / "cache"
        cache_dir.mkdir()
        print("base cache (a test failing on the base branch, two tasks on it):")
        base_cache(cache_dir, cache_dir / "runs")


if __name__ == "__main__":
    main()
