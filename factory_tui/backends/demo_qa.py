"""The demo base's QA: one scenario of each kind, and a test the demo agent's
first try at a task fails, so that within a minute of ``factory demo`` the
operator sees the gate send a task back with its report and the agent pass
on its second try.

The test (``tests/test_task_modules.py``) asks every module an agent added
under ``shopfront/`` to say what it exports (``__all__``). The demo agent
leaves that out until its prompt's feedback names ``__all__``, as a real
agent would fix what a failing test told it. The test runs under pytest
when pytest is installed (JUnit XML: a verdict per test), else under
unittest (``pip install -e .`` alone brings no pytest); the scenario file
written says which.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_TEST = '''\
"""Every module an agent added to the package says what it exports."""

import importlib
import pathlib
import unittest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "shopfront"


class TaskModules(unittest.TestCase):
    def test_every_task_module_declares_its_exports(self):
        for path in sorted(PACKAGE.glob("t_*.py")):
            with self.subTest(module=path.name):
                module = importlib.import_module(f"shopfront.{path.stem}")
                self.assertTrue(
                    hasattr(module, "__all__"),
                    f"shopfront/{path.name} has no __all__: add __all__ = [\\"describe\\"]",
                )
'''

_PYTEST_RUN = '["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={junit}", "tests"]'
_UNITTEST_RUN = '["{python}", "-m", "unittest", "discover", "-s", "tests"]'


def _unit(run: str, runner: str) -> str:
    return f"""\
---
# The package's tests, on the task's commit in a clean checkout. Tests that
# already fail on the base branch are not blamed on the task.
kind: test
run: {run}   # {runner}
gate: required
timeout: 120
when: ["shopfront/**", "tests/**"]
---
The shopfront's own tests must pass.
"""


_IMPORTS = """\
---
# The package still imports, and says nothing alarming while it does.
kind: verify
run: ["{python}", "-c", "import shopfront, pkgutil; print(sorted(m.name for m in pkgutil.iter_modules(shopfront.__path__)))"]
expect: "'server'"
expect_not: ["Traceback", "(?i)deprecat"]
gate: required
timeout: 60
---
Importing the package lists its modules, the server among them.
"""

_REVIEW = """\
---
# A judge reads the task, its diff and its agent's last words against this
# rubric. The demo judge checks backticked words against the diff's added
# lines; a real one (judge: claude) reads it as a reviewer would.
kind: eval
judge: demo-judge
gate: advisory
---
- The diff adds a file under `shopfront/`.
- The new code has a `describe` function.
- It never uses `eval(`.
"""

_USER = """\
---
# A judge uses the software as a user would, in a clean checkout of the
# task's commit, and ends with its verdict.
kind: scenario
judge: demo-judge
gate: advisory
when: ["shopfront/**"]
---
1. Open a Python shell in the checkout and import the task's new module
   from the shopfront package.
2. Call its `describe` function.
3. It answers with the module's `TASK_ID` and `TITLE`.
"""


def pytest_available() -> bool:
    return importlib.util.find_spec("pytest") is not None


def write_demo_qa(root: Path, *, use_pytest: bool | None = None) -> list[Path]:
    """Write the demo's test and its four scenarios into the repository at
    ``root``; the paths written."""
    if use_pytest is None:
        use_pytest = pytest_available()
    run, runner = (_PYTEST_RUN, "pytest: a verdict per test") if use_pytest else (
        _UNITTEST_RUN, "unittest: pytest is not installed here")
    files = {
        root / "tests" / "test_task_modules.py": _TEST,
        root / ".factory" / "qa" / "unit-tests.md": _unit(run, runner),
        root / ".factory" / "qa" / "package-imports.md": _IMPORTS,
        root / ".factory" / "qa" / "code-review.md": _REVIEW,
        root / ".factory" / "qa" / "try-it.md": _USER,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
