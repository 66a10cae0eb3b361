"""FAIL_TO_PASS: a test the task asked to have fixed is blamed while it
still fails, and credited when it passes (factory_tui/qa_asked.py, and
qa_runner.judge_against_base / check_test_scenario with a real pytest run)."""

from __future__ import annotations

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.qa_runner import check_test_scenario, judge_against_base
from factory_tui.qa_asked import asked_tests, short_name
from factory_tui.qa_model import Gate, QaKind, QaResult, Verdict
from tests.engine_helpers import git
from tests.test_qa_runner import CALC, CONFTEST, FAST_PYTEST, PYTEST, TESTS, commit_files

NAMES = ["tests.test_x.TestY::test_z", "tests/test_x.py::test_z2", "t::test_p[1-2]", "t::test_q"]


def test_a_test_is_asked_for_by_its_full_name_dotted_name_or_last_part_as_a_whole_word() -> None:
    assert asked_tests("Fix tests.test_x.TestY::test_z please", NAMES) == [NAMES[0]]
    assert asked_tests("fix tests.test_x.TestY.test_z", NAMES) == [NAMES[0]]
    assert asked_tests("make `test_z` pass", NAMES) == [NAMES[0]]
    assert asked_tests("make test_z2 pass", NAMES) == [NAMES[1]]
    # Parametrised: by its own id or its bare name.
    assert asked_tests("test_p[1-2] is red", NAMES) == [NAMES[2]]
    assert asked_tests("test_p is red", NAMES) == [NAMES[2]]
    # Not a whole word: not asked.
    assert asked_tests("my_test_z and test_zz and test_q2 and atest_q", NAMES) == []
    assert asked_tests("", NAMES) == [] and asked_tests("fix test_q", []) == []
    assert short_name(NAMES[0]) == "test_z" and short_name("plain") == "plain"


def result(verdict: Verdict, tests: dict, commit: str = "head") -> QaResult:
    return QaResult(scenario="unit", version="v1", kind=QaKind.TEST, gate=Gate.REQUIRED, verdict=verdict,
                    reason=f"exited {0 if verdict is Verdict.PASS else 1}", commit=commit, tests=tests)


def test_a_test_failing_on_both_is_blamed_only_when_the_task_asked_to_fix_it() -> None:
    head = result(Verdict.FAIL, {"t::test_a": "PASS", "t::test_z": "FAIL"})
    base = result(Verdict.FAIL, {"t::test_a": "PASS", "t::test_z": "FAIL"}, commit="base")
    # Not asked: as before, not the task's.
    assert judge_against_base(head, base).verdict is Verdict.PASS
    assert judge_against_base(head, base, "Tidy the docs").verdict is Verdict.PASS
    blamed = judge_against_base(head, base, "Fix test_z\n\nIt divides by zero.")
    assert (blamed.verdict, blamed.reason) == (Verdict.FAIL, "asked to fix, still failing: test_z")
    # Asked, and something else broken too: both said.
    broke = judge_against_base(
        result(Verdict.FAIL, {"t::test_a": "FAIL", "t::test_z": "FAIL"}), base, "fix t::test_z",
    )
    assert broke.reason == "1 test failed: t::test_a; asked to fix, still failing: test_z"


def test_a_test_fixed_as_asked_is_said_in_the_pass() -> None:
    base = result(Verdict.FAIL, {"t::test_a": "PASS", "t::test_z": "FAIL", "t::test_w": "FAIL"}, commit="base")
    fixed = judge_against_base(
        result(Verdict.PASS, {"t::test_a": "PASS", "t::test_z": "PASS", "t::test_w": "PASS"}), base, "fix test_z",
    )
    assert (fixed.verdict, fixed.reason) == (Verdict.PASS, "exited 0; fixed as asked: test_z")
    assert fixed.base_commit == "base"
    # Fixed as asked while another test still fails on both (not asked).
    partly = judge_against_base(
        result(Verdict.FAIL, {"t::test_a": "PASS", "t::test_z": "PASS", "t::test_w": "FAIL"}), base, "fix test_z",
    )
    assert partly.verdict is Verdict.PASS
    assert partly.reason == (
        "passes but for tests already failing on the base branch: t::test_w; fixed as asked: test_z"
    )


def test_a_real_pytest_run_judges_the_test_the_task_was_asked_to_fix(base: FactoryBase, tmp_path) -> None:
    repo = base.root
    base_commit = commit_files(repo, {"calc.py": CALC, "test_calc.py": TESTS, "conftest.py": CONFTEST}, "calc")
    env = {"RUNS_LOG": str(tmp_path / "runs.log"), **FAST_PYTEST}
    # T-1 was asked to fix test_sub and did not; T-2 fixed it.
    git(repo, "checkout", "-q", "-b", "factory/T-1")
    unfixed = commit_files(repo, {"NOTES.md": "looked at it\n"}, "T-1")
    git(repo, "checkout", "-q", "-b", "factory/T-2", base_commit)
    fixed = commit_files(repo, {"calc.py": CALC.replace("return a + b  # wrong", "return a - b  # right")}, "T-2")
    git(repo, "checkout", "-q", "main")
    asked = "Fix the failing test_sub\n\nsub() adds."

    def check(commit: str, task: str, asked: str):
        return check_test_scenario(
            PYTEST, repo_root=repo, commit=commit, base_commit=base_commit,
            out_dir=base.qa_run_dir(task, 1, task, "unit"), work_dir=base.qa_work_dir, env=env, asked=asked,
        )

    still = check(unfixed, "T-1", asked)
    assert (still.verdict, still.reason) == (Verdict.FAIL, "asked to fix, still failing: test_sub")
    assert still.blocks
    # Not asked: the same commit passes, the failure being the base's.
    assert check(unfixed, "T-3", "Write notes").verdict is Verdict.PASS
    done = check(fixed, "T-2", asked)
    assert (done.verdict, done.reason) == (Verdict.PASS, "passed (2 tests); fixed as asked: test_sub")
    assert done.base_commit == base_commit
    # The base ran once for all three (cached per base commit).
    runs = (tmp_path / "runs.log").read_text().splitlines()
    assert runs.count(base_commit) == 1, runs
