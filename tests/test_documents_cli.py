"""``factory artifacts list | show | history`` (issue 10 §3, the documents'
half): what each document is, its text, its git history and a version's
diff, with ``--json``; bad names and bad documents are one line each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.session import FactorySession
from factory_tui.errors import InvalidInput
from factory_tui.model import Action
from tests.engine_helpers import configure, factory, git
from tests.helpers import assert_one_line_error
from tests.test_landings import review_without_runs


def commit(base: FactoryBase, message: str) -> str:
    git(base.root, "add", ".factory/artifacts")
    git(base.root, "commit", "-q", "-m", message)
    return git(base.root, "rev-parse", "HEAD")


@pytest.fixture
def documents(base: FactoryBase) -> FactoryBase:
    configure(base, extra="[artifacts]\nstale_after = 2\nrefresh_every = 0\n")
    (base.artifacts_dir / "conventions.md").write_text("---\ntitle: Conventions\nbudget: 5000\n---\n# Conventions\n\nv1\n")
    (base.artifacts_dir / "api.md").write_text("---\nwhen: {paths: [src/api/**], labels: [api]}\n---\n# API\n")
    commit(base, "First documents")
    (base.artifacts_dir / "conventions.md").write_text("---\ntitle: Conventions\nbudget: 5000\n---\n# Conventions\n\nv2\n")
    commit(base, "Conventions: v2")
    return base


def test_list_tells_each_documents_title_change_size_prompts_staleness_and_problems(documents: FactoryBase) -> None:
    base = documents
    (base.artifacts_dir / "broken.md").write_text("---\ntitle: x\ninclude: sometimes\n---\n")
    with FactorySession(base) as session:
        for n in range(2):  # two landings since: stale (stale_after = 2)
            session.apply(review_without_runs(session.log, f"Task {n}"), Action.APPROVE, actor="cli:op")
    (base.artifacts_dir / "api.md").write_text("---\nwhen: [src/api/**, 'label:api']\n---\n# API\nchanged\n")  # uncommitted

    listed = factory(base, "artifacts", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    infos = {item["name"]: item for item in json.loads(listed.stdout)}
    assert sorted(infos) == ["api.md", "broken.md", "conventions.md", "history.md"]
    conventions = infos["conventions.md"]
    assert (conventions["title"], conventions["include"], conventions["budget"]) == ("Conventions", "always", 5000)
    assert conventions["updated"] == float(git(base.root, "log", "-1", "--format=%ct"))
    assert (conventions["landings_since"], conventions["stale"], conventions["problem"]) == (2, True, None)
    assert conventions["size"] == (base.artifacts_dir / "conventions.md").stat().st_size
    api = infos["api.md"]
    assert api["include"] == "when" and api["when"] == ["src/api/**", "label:api"]
    # Changed since its commit: its file's time, and nothing landed since.
    assert api["updated"] == (base.artifacts_dir / "api.md").stat().st_mtime and not api["stale"]
    assert infos["broken.md"]["problem"] == "line 3: include must be always, when or never, not 'sometimes'"
    history = infos["history.md"]
    assert history["generated"] and not history["stale"] and history["title"] == "Session history"

    text = factory(base, "artifacts", "list")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TITLE", "UPDATED", "SIZE", "PROMPTS", "SINCE", "INCLUDE"]
    conventions_line = next(line for line in lines if line.startswith("conventions.md"))
    assert conventions_line.rstrip().endswith("always  stale")
    assert "not in prompts: line 3: include must be always, when or never" in text.stdout


def test_show_prints_the_text_and_its_info(documents: FactoryBase) -> None:
    shown = factory(documents, "artifacts", "show", "conventions")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "---\ntitle: Conventions\nbudget: 5000\n---\n# Conventions\n\nv2\n"
    data = json.loads(factory(documents, "artifacts", "show", "conventions.md", "--json").stdout)
    assert data["text"] == shown.stdout and data["name"] == "conventions.md" and data["budget"] == 5000


def test_history_lists_the_commits_and_a_versions_diff(documents: FactoryBase) -> None:
    base = documents
    versions = json.loads(factory(base, "artifacts", "history", "conventions", "--json").stdout)
    assert [item["subject"] for item in versions] == ["Conventions: v2", "First documents"]
    newest = versions[0]["commit"]
    text = factory(base, "artifacts", "history", "conventions.md")
    assert text.stdout.splitlines()[0].startswith(f"{newest[:10]}  ")
    assert text.stdout.splitlines()[0].endswith("Conventions: v2")
    diff = factory(base, "artifacts", "history", "conventions", "--diff", newest[:8])
    assert diff.returncode == 0, diff.stderr
    assert "-v1\n+v2\n" in diff.stdout and "api.md" not in diff.stdout
    with FactorySession(base) as session:
        assert "-v1\n+v2\n" in session.document_diff("conventions.md", newest)
        assert [v.commit for v in session.document_history("conventions")] == [newest, versions[1]["commit"]]
    # A document never committed has no history yet.
    (base.artifacts_dir / "new.md").write_text("# New\n")
    assert factory(base, "artifacts", "history", "new", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "message"), [
    (("show", "nope"), "factory: no living document 'nope.md' in .factory/artifacts/ (`factory artifacts list` lists them)"),
    (("show", "../factory.toml"), "factory: not a document name: '../factory.toml'"),
    (("show", "/etc/passwd"), "factory: not a document name: '/etc/passwd'"),
    (("show", "[bold]x[/]"), "factory: not a document name: '[bold]x[/]'"),
    (("show", "[red]x"), "factory: no living document '[red]x.md'"),
    (("history", "x\x1b[31m"), "factory: no living document 'x\\x1b[31m.md'"),
    (("history", "conventions", "--diff", "zzz"), "factory: not a commit id: 'zzz'"),
    (("history", "conventions", "--diff", "0000000"), "factory: '0000000' is not a commit that changed conventions.md"),
])
def test_bad_names_and_commits_are_one_line(documents: FactoryBase, args: tuple[str, ...], message: str) -> None:
    done = factory(documents, "artifacts", *args)
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
    assert line.startswith(message), line
    assert "\x1b" not in line


def test_attacks_on_the_folder_list_them_and_never_show_what_they_lead_to(base: FactoryBase, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("SECRET-KEY-123\n")
    (base.artifacts_dir / "leak.md").symlink_to(secret)
    os.mkfifo(base.artifacts_dir / "pipe.md")
    with open(base.artifacts_dir / "huge.md", "wb") as handle:
        handle.truncate(10 * 1024 * 1024)
    (base.artifacts_dir / "latin1.md").write_bytes(b"# Caf\xe9\n")
    (base.artifacts_dir / "markup.md").write_text("---\ntitle: \"[bold red]Boom[/] \\e]0;pwned\\a\"\n---\nbody\n")

    listed = factory(base, "artifacts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "SECRET" not in listed.stdout and "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "[bold red]Boom[/]" in listed.stdout  # literal
    infos = {item["name"]: item for item in json.loads(factory(base, "artifacts", "list", "--json").stdout)}
    assert "outside the repository" in infos["leak.md"]["problem"]
    assert infos["pipe.md"]["problem"] == "not a regular file"
    assert "1024 KB at most" in infos["huge.md"]["problem"]
    assert infos["latin1.md"]["problem"] == "line 1: not UTF-8 text"
    assert infos["markup.md"]["problem"] is None
    for name in ("leak", "pipe", "huge"):
        done = factory(base, "artifacts", "show", name)
        line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
        assert "cannot be shown" in line and "SECRET" not in line
    shown = factory(base, "artifacts", "show", "latin1")
    assert shown.returncode == 0 and shown.stdout == "# Caf\ufffd\n"
    with FactorySession(base) as session:
        with pytest.raises(InvalidInput):
            session.document_text("../factory.toml")


def test_the_history_document_has_no_git_history_and_says_why(base: FactoryBase) -> None:
    with FactorySession(base) as session:
        session.apply(review_without_runs(session.log, "Land it"), Action.APPROVE, actor="cli:op")
    done = factory(base, "artifacts", "history", "history")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("history.md is written by the factory from its log and kept out of git")
    shown = factory(base, "artifacts", "show", "history.md")
    assert "## T-1: Land it" in shown.stdout
