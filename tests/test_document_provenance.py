"""What did the agent know? (issue 10 §1): every prompt records which
living documents it included, which version (the blob id git gives the
file) and how much of each; the log answers per attempt and per
document. Real runs of a scripted agent by the real engine."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.session import FactorySession
from factory_tui.model import Action, State
from tests.engine_helpers import add, agent_profile, apply, configure, factory, run_dir, task


def hash_object(path: Path) -> str:
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def write(base: FactoryBase, name: str, text: str) -> Path:
    path = base.artifacts_dir / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_prompt_records_what_it_included_and_each_attempt_its_own(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    conventions = write(base, "conventions.md", "# Conventions\n\nSmall commits.\n")
    api = write(base, "api.md", "---\nwhen: [src/api/**]\nbudget: 1000\n---\n# API\n" + "Return JSON, always.\n" * 200)
    write(base, "ui.md", "---\nwhen: ['label:ui']\n---\n# UI\n")
    write(base, "secret.md", "---\ninclude: never\n---\nNEVER-IN-A-PROMPT\n")
    # Only on a later attempt: the agent's own changes (work-T-1.txt) name it.
    write(base, "work.md", "---\nwhen: ['work-*.txt']\n---\n# Work files\n")
    task_id = add(base, "Fix src/api/users.py")

    assert factory(base, "run", "--once").returncode == 0
    with FactorySession(base) as session:
        first = session.prompt_documents(task_id, 1)
    assert [(item.name, item.whole) for item in first] == [("api.md", False), ("conventions.md", True)]
    by_name = {item.name: item for item in first}
    assert by_name["conventions.md"].blob == hash_object(conventions)
    assert by_name["api.md"].blob == hash_object(api)
    assert by_name["api.md"].shown <= 1000 < by_name["api.md"].size
    prompt = (run_dir(base, task_id) / "prompt.md").read_text()
    assert prompt.index("### api.md") < prompt.index("### conventions.md")
    assert "NEVER-IN-A-PROMPT" not in prompt and "### ui.md" not in prompt and "### work.md" not in prompt

    # The document changes, and the task runs again: attempt 2 read the new version.
    conventions.write_text("# Conventions\n\nSmall commits. Tests first.\n")
    apply(base, task_id, Action.REQUEUE, note="once more")
    assert factory(base, "run", "--once").returncode == 0
    assert task(base, task_id).state is State.REVIEW
    with FactorySession(base) as session:
        second = {item.name: item for item in session.prompt_documents(task_id, 2)}
        again = {item.name: item for item in session.prompt_documents(task_id, 1)}
        every = session.prompt_documents(task_id)
        listed = {info.name: info.prompts for info in session.documents()}
    assert "work.md" in second  # its branch changed work-T-1.txt by then
    assert second["conventions.md"].blob == hash_object(conventions) != by_name["conventions.md"].blob
    assert again == by_name  # attempt 1's record stands
    assert [item.attempt for item in every] == [1, 1, 2, 2, 2]
    assert listed == {"api.md": 2, "conventions.md": 2, "work.md": 1, "ui.md": 0, "secret.md": 0}


def test_both_questions_are_answered_by_an_index(base: FactoryBase) -> None:
    conn = sqlite3.connect(base.log_path)
    per_attempt = " ".join(row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM prompt_documents WHERE task_id = 'T-3' AND attempt = 2"))
    per_document = " ".join(row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT count(*) FROM prompt_documents WHERE name = 'conventions.md'"))
    assert "USING PRIMARY KEY" in per_attempt
    assert "USING COVERING INDEX idx_prompt_documents_name" in per_document


def test_run_info_names_what_each_attempts_prompt_read(base: FactoryBase, agent: Path) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(agent)})
    rules = write(base, "rules.md", "# Rules\n")
    task_id = add(base, "Follow the rules")
    assert factory(base, "run", "--once").returncode == 0
    with FactorySession(base) as session:
        [run] = session.runs_of(task_id)
    assert run.documents == (("rules.md", hash_object(rules)),)
    shown = factory(base, "run-info", task_id)
    assert shown.returncode == 0, shown.stderr
    assert f"  read: rules.md ({hash_object(rules)[:7]})" in shown.stdout.splitlines()
