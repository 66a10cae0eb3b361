"""The layering the brief asks for: the base (backends, model, config and
the pure helpers) works without Textual, so the engine, the CLI and agents
never pay for the console's import, and nothing below the UI can reach it."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import factory_tui.backends

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

PURE_MODULES = [
    "factory_tui.model",
    "factory_tui.config",
    "factory_tui.plan_file",
    "factory_tui.plan_formats.records",
    "factory_tui.plan_formats.beads",
    "factory_tui.plan_formats.backlog",
    "factory_tui.plan_formats.taskmaster",
    "factory_tui.plan_formats.vocabulary",
    "factory_tui.plan_formats.export",
    "factory_tui.dependency_graph",
    "factory_tui.filters",
    "factory_tui.text",
    "factory_tui.errors",
    "factory_tui.actors",
    "factory_tui.worktree_shell",
    "factory_tui.times",
    "factory_tui.qa_model",
    "factory_tui.qa_marks",
    "factory_tui.qa_scenarios",
    "factory_tui.qa_verdict",
    "factory_tui.demo_judge",
    "factory_tui.demo_planner",
    "factory_tui.draft_model",
    "factory_tui.plan_prompt",
]


def backend_modules() -> list[str]:
    found = [
        info.name
        for info in pkgutil.walk_packages(
            factory_tui.backends.__path__, prefix="factory_tui.backends."
        )
    ]
    assert found, "no modules found under factory_tui.backends"
    return ["factory_tui.backends", *found]


def test_the_base_layers_import_without_textual() -> None:
    modules = backend_modules() + PURE_MODULES
    # Every backend module the brief names is really in the list.
    for name in ("base", "log", "schema", "plan_import"):
        assert f"factory_tui.backends.{name}" in modules
    script = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
        missing = [m for m in {modules!r} if m not in sys.modules]
        print("LEAKED", leaked)
        print("MISSING", missing)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")},
    )
    assert result.returncode == 0, result.stderr
    assert "LEAKED []" in result.stdout.splitlines(), result.stdout
    assert "MISSING []" in result.stdout.splitlines(), result.stdout


def run_lint_imports(*config: str) -> subprocess.CompletedProcess:
    # --no-cache: the check must not write a cache folder into the project.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *config],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_pass() -> None:
    result = run_lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
