"""The demo's QA: four valid scenarios, and a test the demo agent fails on
its first try and passes once its prompt's feedback names what is missing.
Real git, the real demo agent, the real runner in a clean checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory_tui.backends.demo_qa import write_demo_qa
from factory_tui.backends.prompt import assemble_prompt
from factory_tui.backends.qa_runner import check_test_scenario
from factory_tui.qa_model import QaKind, Scenario, Verdict
from factory_tui.qa_scenarios import load_scenarios
from tests.test_demo_agent import LOGIN, git, package_repo, run_agent  # noqa: F401 (a fixture)

PROFILES = {"demo", "demo-judge", "claude"}


@pytest.mark.parametrize("use_pytest", [True, False])
def test_the_demo_ships_one_valid_scenario_of_each_kind(git_repo: Path, use_pytest: bool) -> None:
    write_demo_qa(git_repo, use_pytest=use_pytest)
    found = load_scenarios(git_repo / ".factory" / "qa", root=git_repo, profiles=PROFILES)
    assert all(isinstance(s, Scenario) for s in found), found
    kinds = {s.kind for s in found if isinstance(s, Scenario)}
    assert kinds == set(QaKind)
    unit = next(s for s in found if s.name == "unit-tests")
    assert isinstance(unit, Scenario)
    assert ("pytest" if use_pytest else "unittest") in unit.run


def _prompt(tmp_path: Path, feedback: str | None, attempt: int) -> Path:
    path = tmp_path / f"prompt-{attempt}.md"
    path.write_text(assemble_prompt(LOGIN, attempt=attempt, branch="main", dependencies=[], feedback=feedback,
                                    documents=[]))
    return path


@pytest.mark.parametrize("use_pytest", [True, False])
def test_the_demo_agent_fails_the_demo_test_then_passes_with_its_report(
    package_repo: Path, tmp_path: Path, use_pytest: bool  # noqa: F811
) -> None:
    # As in the demo base: tests/ is a folder of test files, not a package.
    git(package_repo, "rm", "-q", "tests/__init__.py")
    write_demo_qa(package_repo, use_pytest=use_pytest)
    git(package_repo, "add", ".")
    git(package_repo, "commit", "-q", "-m", "QA")
    base_commit = git(package_repo, "rev-parse", "HEAD")
    [unit] = [s for s in load_scenarios(package_repo / ".factory" / "qa", root=package_repo, profiles=PROFILES)
              if isinstance(s, Scenario) and s.name == "unit-tests"]

    def check(commit: str, n: int):
        return check_test_scenario(unit, repo_root=package_repo, commit=commit, base_commit=base_commit,
                                   out_dir=tmp_path / f"out-{n}", work_dir=tmp_path / "work")

    first = run_agent(package_repo, "--prompt-file", str(_prompt(tmp_path, None, 1)))
    assert first.returncode == 0, first.stderr
    failed = check(git(package_repo, "rev-parse", "HEAD"), 1)
    assert failed.verdict is Verdict.FAIL, failed.reason
    report = (tmp_path / "out-1" / "output.log").read_text()
    assert "has no __all__" in report
    # The report comes back as feedback; the agent's second try adds it.
    second = run_agent(package_repo, "--prompt-file", str(_prompt(tmp_path, f"QA failed:\n{report[-2000:]}", 2)))
    assert second.returncode == 0, second.stderr
    passed = check(git(package_repo, "rev-parse", "HEAD"), 2)
    assert passed.verdict is Verdict.PASS, passed.reason
