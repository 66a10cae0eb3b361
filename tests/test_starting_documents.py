"""``factory init`` starts a base with living documents drawn from the
repository (issue 10 §1): the README's first lines and sections, the
build and test commands found, each marked for the operator to edit;
never over a document that is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from factory_tui.backends.documents import parse_document
from factory_tui.backends.starting_documents import (
    MARK,
    Command,
    RepositoryFacts,
    readme_intro,
    starting_documents,
    survey,
)
from tests.engine_helpers import environment, git

FACTS = RepositoryFacts(
    name="shop", readme="README.md", intro="# Shop\n\nA small web shop.", sections=("Install", "Usage"),
    commands=(Command("test", "python -m pytest", "pyproject.toml"), Command("install", "npm install", "package.json"),
              Command("lint", "ruff check .", "pyproject.toml"), Command("build", "make build", "Makefile")),
)


def test_the_documents_from_what_was_found() -> None:
    documents = starting_documents(FACTS)
    assert sorted(documents) == ["conventions.md", "start-sequence.md"]
    for name, text in documents.items():
        document = parse_document(name, text.encode())
        assert document.usable and document.include.value == "always"
        assert document.body.startswith(MARK)  # marked at its top for the operator to edit
    conventions = documents["conventions.md"]
    assert "> # Shop\n>\n> A small web shop." in conventions  # the README quoted
    commands = [line for line in conventions.splitlines() if line.startswith("- ") and "`" in line][:4]
    assert commands == [  # install, build, test, lint: the order work is done in
        "- Install: `npm install` (package.json)",
        "- Build: `make build` (Makefile)",
        "- Test: `python -m pytest` (pyproject.toml)",
        "- Lint: `ruff check .` (pyproject.toml)",
    ]
    sequence = documents["start-sequence.md"]
    assert "2. Read README.md (sections: Install, Usage)." in sequence
    assert "3. Install what the project needs: `npm install`." in sequence
    assert "5. Run the tests before changing anything" in sequence and "`python -m pytest`" in sequence


def test_with_nothing_found_they_say_what_to_write() -> None:
    documents = starting_documents(RepositoryFacts(name="bare"))
    assert "No README was found" in documents["conventions.md"]
    assert "No build or test command was found" in documents["conventions.md"]
    assert "no test command was found" in documents["start-sequence.md"]


def test_a_readmes_introduction_and_sections() -> None:
    intro, sections = readme_intro(
        "# Shop\n\n[![ci](b.svg)](x)\n\nA small web shop.\n\n## Install\n\npip install\n\n```sh\n# a comment\n```\n"
        "## Usage\n\n### Details\n\n#### Deep\n")
    assert intro == "# Shop\n\nA small web shop."
    assert sections == ("Install", "Usage", "Details")
    long_intro, _ = readme_intro("# Big\n\n" + "word " * 2000)
    assert len(long_intro) < 1_400 and long_intro.endswith("(… the README goes on)")


def test_survey_finds_the_commands_of_each_kind_of_project(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("# Repo\n\nDoes things.\n")
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n[project.optional-dependencies]\ntest = ["pytest"]\n'
                                         "[tool.ruff]\n[tool.mypy]\n")
    (root / "package.json").write_text(json.dumps({"scripts": {"test": "jest", "build": "tsc", "lint:fix": "x",
                                                               "$(rm -rf /)": "y"}}))
    (root / "yarn.lock").write_text("")
    (root / "Makefile").write_text("VAR := 1\n.PHONY: test\ntest: build\n\tpytest\nbuild:\n\tcc\n%.o: %.c\n")
    (root / "Cargo.toml").write_text("[package]\n")
    (root / "go.mod").write_text("module x\n")
    facts = survey(root)
    commands = {(command.kind, command.command) for command in facts.commands}
    assert {("install", "pip install -e '.[test]'"), ("test", "python -m pytest"), ("lint", "ruff check ."),
            ("lint", "mypy ."), ("install", "yarn install"), ("test", "yarn test"), ("build", "yarn run build"),
            ("lint", "yarn run lint:fix"), ("test", "make test"), ("build", "make build"), ("test", "cargo test"),
            ("test", "go test ./..."), ("build", "go build ./...")} <= commands
    assert not any("rm -rf" in command for _, command in commands)
    assert (facts.readme, facts.intro) == ("README.md", "# Repo\n\nDoes things.")


def test_a_readme_that_links_out_of_the_repository_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET\n")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").symlink_to(secret)
    assert survey(root).readme is None


def test_factory_init_writes_them_to_a_real_repository_and_never_over_one(tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Shop\n\nSells socks.\n\n## Develop\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "shop"\ndependencies = ["pytest"]\n')
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")

    def init(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "factory_tui", "init", str(repo), *args], capture_output=True,
                              text=True, env=environment(), timeout=60, check=False)
        assert "Traceback" not in done.stdout + done.stderr
        return done

    done = init()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Initialised a factory base in {repo.resolve() / '.factory'} (starting documents to edit: "
        "conventions.md, start-sequence.md in .factory/artifacts/)"]
    conventions = (repo / ".factory" / "artifacts" / "conventions.md").read_text()
    assert "> Sells socks." in conventions and "`python -m pytest` (pyproject.toml)" in conventions
    assert "Read README.md (sections: Develop)" in (repo / ".factory" / "artifacts" / "start-sequence.md").read_text()
    assert git(repo, "status", "--porcelain") == "?? .factory/"  # the user's files untouched

    # Edited by the operator, and init again: nothing is written over it.
    (repo / ".factory" / "artifacts" / "conventions.md").write_text("mine\n")
    (repo / ".factory" / "artifacts" / "start-sequence.md").unlink()
    again = init("--json")
    assert json.loads(again.stdout)["documents_written"] == []
    assert (repo / ".factory" / "artifacts" / "conventions.md").read_text() == "mine\n"
