"""The living documents ``factory init`` starts a base with:
``conventions.md`` and ``start-sequence.md``, drawn from the repository
(its README's first lines and sections, and the build, test and lint
commands its files declare), each marked at its top as a start for the
operator to edit.

``survey`` reads the repository (a few files, each with a size limit and
never through a link that leads out of it); ``starting_documents`` is
pure: what was found in, the documents' text out. ``write_starting``
writes them, never over a document that exists.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from factory_tui.front_matter import read_limited

# What is read of any one file, at most.
FILE_LIMIT = 256 * 1024
# README: the first lines that are its introduction, and its section
# headings, at most.
INTRO_CHARS = 1_200
MAX_SECTIONS = 12
# Commands named per source file, at most (a Makefile of 200 targets).
MAX_COMMANDS_PER_SOURCE = 12
README_NAMES = ("README.md", "README.rst", "README.txt", "README", "readme.md", "Readme.md")
MARK = ("> **Written by `factory init`** from what it found in this repository: a start, for the "
        "operator to edit (this line too). Every agent's prompt includes this document.")
# Make targets that say what they do, by kind.
_KINDS = {
    "install": ("install", "deps", "setup", "bootstrap", "init"),
    "build": ("build", "all", "compile", "dist", "bundle"),
    "test": ("test", "tests", "check", "spec", "e2e", "unit", "integration"),
    "lint": ("lint", "fmt", "format", "typecheck", "vet", "style", "mypy", "ruff"),
    "run": ("run", "start", "serve", "dev", "watch"),
}
KIND_ORDER = ("install", "build", "test", "lint", "run", "other")


@dataclass(frozen=True, slots=True)
class Command:
    """A command the repository declares: what kind (install, build, test,
    lint, run, other), the command line, and the file it was found in."""

    kind: str
    command: str
    source: str


@dataclass(frozen=True, slots=True)
class RepositoryFacts:
    """What ``survey`` found: the project's name, its README (file name,
    first lines, section headings) and its commands."""

    name: str
    readme: str | None = None
    intro: str = ""
    sections: tuple[str, ...] = ()
    commands: tuple[Command, ...] = ()


# --- the text (pure) ----------------------------------------------------------------


def starting_documents(facts: RepositoryFacts) -> dict[str, str]:
    """File name → text of each starting document."""
    return {"conventions.md": _conventions(facts), "start-sequence.md": _start_sequence(facts)}


def _front(title: str) -> str:
    return f"---\ntitle: {title}\n---\n{MARK}\n\n"


def _conventions(facts: RepositoryFacts) -> str:
    lines = [f"# Conventions of {_inline(facts.name)}", ""]
    if facts.intro:
        # Quoted: the README's own headings stay inside the quote.
        quoted = "\n".join(f"> {line}" if line else ">" for line in facts.intro.splitlines())
        lines += [f"## The project (from {facts.readme})", "", quoted, ""]
    else:
        lines += ["## The project", "", "(No README was found: say here what the project is and who it is for.)", ""]
    lines += ["## Commands", ""]
    if facts.commands:
        for kind in KIND_ORDER:
            for command in (item for item in facts.commands if item.kind == kind):
                lines.append(f"- {kind.capitalize()}: `{command.command}` ({command.source})")
    else:
        lines.append("- (No build or test command was found: name the ones to use here.)")
    lines += [
        "",
        "## How work is done here",
        "",
        "- Keep each change to what its task asks; propose a follow-up task for the rest.",
        "- Add or update tests with every change, and run them before each commit.",
        "- Follow the style of the code around the change; run the linters named above.",
        "- Commit in small steps with messages that say what changed and why.",
        "",
    ]
    return _front("Conventions") + "\n".join(lines)


def _start_sequence(facts: RepositoryFacts) -> str:
    steps = [
        "Read the task, then `git log` of this branch: a later attempt goes on from the work of earlier ones.",
    ]
    if facts.readme:
        read = f"Read {facts.readme}"
        if facts.sections:
            read += " (sections: " + ", ".join(_inline(section) for section in facts.sections) + ")"
        steps.append(read + ".")
    for kind, what in (("install", "Install what the project needs"), ("build", "Build it")):
        found = [item for item in facts.commands if item.kind == kind][:3]
        if found:
            steps.append(f"{what}: " + ", ".join(f"`{item.command}`" for item in found) + ".")
    tests = [item for item in facts.commands if item.kind == "test"][:3]
    if tests:
        steps.append("Run the tests before changing anything, so that a failure you did not cause is known: "
                     + ", ".join(f"`{item.command}`" for item in tests) + ".")
    else:
        steps.append("Find out how the tests run (no test command was found) and run them before changing anything.")
    linters = [f"`{item.command}`" for item in facts.commands if item.kind == "lint"][:3]
    checks = "the tests" + (f" and the linters ({', '.join(linters)})" if linters else "")
    steps.append(f"Make the change with its tests; run {checks} again; commit.")
    lines = ["# Start sequence", "", "What an agent does first, in this order, when it starts on a task:", ""]
    lines += [f"{number}. {step}" for number, step in enumerate(steps, 1)]
    return _front("Start sequence") + "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    return " ".join(text.split())


# --- reading the repository ------------------------------------------------------------


def survey(root: Path) -> RepositoryFacts:
    """What the repository at ``root`` says of itself (nothing raises)."""
    readme_name, intro, sections = _readme(root)
    commands: list[Command] = []
    for reader in (_pyproject, _package_json, _makefile, _cargo, _go, _others):
        commands += reader(root)
    seen: set[str] = set()
    unique = []
    for command in commands:
        if command.command not in seen:
            seen.add(command.command)
            unique.append(command)
    return RepositoryFacts(name=root.name, readme=readme_name, intro=intro, sections=sections, commands=tuple(unique))


def _read(root: Path, name: str) -> str | None:
    path = root / name
    if not path.exists() and not path.is_symlink():
        return None
    data, _ = read_limited(path, inside=root, limit=FILE_LIMIT, what=name)
    if data is None:
        return None
    return data.decode("utf-8", errors="replace")


def readme_intro(text: str) -> tuple[str, tuple[str, ...]]:
    """A README's introduction (its title line and the paragraphs before
    its first section, within ``INTRO_CHARS``) and its section headings."""
    intro: list[str] = []
    sections: list[str] = []
    in_code = title_seen = intro_done = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        heading = None if in_code else re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        if heading:
            if len(heading.group(1)) == 1 and not title_seen and not intro_done:
                title_seen = True
                intro.append(line)  # the title belongs to the introduction
                continue
            intro_done = True
            if len(heading.group(1)) <= 3 and len(sections) < MAX_SECTIONS:
                sections.append(heading.group(2).strip())
            continue
        if intro_done:
            continue
        if line.strip().startswith(("[![", "![", "<img", "<p", "</p", "<a ", "<div", "</div")):
            continue  # badges and logos say nothing to an agent
        intro.append(line)
    text_intro = "\n".join(intro).strip()
    text_intro = re.sub(r"\n{3,}", "\n\n", text_intro)
    if len(text_intro) > INTRO_CHARS:
        cut = text_intro[:INTRO_CHARS]
        text_intro = cut[: cut.rfind("\n")] if "\n" in cut[INTRO_CHARS // 2 :] else cut
        text_intro = text_intro.rstrip() + "\n\n(… the README goes on)"
    return text_intro, tuple(sections)


def _readme(root: Path) -> tuple[str | None, str, tuple[str, ...]]:
    for name in README_NAMES:
        text = _read(root, name)
        if text is not None:
            intro, sections = readme_intro(text)
            return name, intro, sections
    return None, "", ()


def _kind(name: str) -> str:
    lowered = name.lower()
    for kind, words in _KINDS.items():
        if lowered in words or any(lowered.startswith(word + sep) for word in words for sep in ("-", "_", ":")):
            return kind
    return "other"


def _pyproject(root: Path) -> list[Command]:
    text = _read(root, "pyproject.toml")
    if text is None:
        return []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    source = "pyproject.toml"
    tool = data.get("tool", {}) if isinstance(data.get("tool"), dict) else {}
    project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
    extras = project.get("optional-dependencies", {}) if isinstance(project.get("optional-dependencies"), dict) else {}
    wanted = [name for name in ("test", "tests", "dev") if name in extras][:1]
    found = [Command("install", f"pip install -e '.[{wanted[0]}]'" if wanted else "pip install -e .", source)]
    everything = json.dumps(extras) + json.dumps(project.get("dependencies", []))
    if "pytest" in tool or "pytest" in everything:
        found.append(Command("test", "python -m pytest", source))
    if "ruff" in tool:
        found.append(Command("lint", "ruff check .", source))
    if "mypy" in tool:
        found.append(Command("lint", "mypy .", source))
    if "importlinter" in tool:
        found.append(Command("lint", "lint-imports", source))
    return found


def _package_json(root: Path) -> list[Command]:
    text = _read(root, "package.json")
    if text is None:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    runner = "pnpm" if (root / "pnpm-lock.yaml").exists() else "yarn" if (root / "yarn.lock").exists() else "npm"
    found = [Command("install", f"{runner} install", "package.json")]
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if isinstance(scripts, dict):
        for name in list(scripts)[:MAX_COMMANDS_PER_SOURCE]:
            if not isinstance(name, str) or not re.fullmatch(r"[\w:.-]{1,60}", name):
                continue
            command = f"{runner} test" if name == "test" else f"{runner} run {name}"
            found.append(Command(_kind(name.split(":")[0]), command, "package.json"))
    return found


def _makefile(root: Path) -> list[Command]:
    for name in ("Makefile", "makefile", "GNUmakefile"):
        text = _read(root, name)
        if text is not None:
            break
    else:
        return []
    targets: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", line)
        if match and match.group(1) not in targets:
            targets.append(match.group(1))
    return [Command(_kind(target), f"make {target}", name) for target in targets[:MAX_COMMANDS_PER_SOURCE]]


def _cargo(root: Path) -> list[Command]:
    if _read(root, "Cargo.toml") is None:
        return []
    return [Command("build", "cargo build", "Cargo.toml"), Command("test", "cargo test", "Cargo.toml"),
            Command("lint", "cargo clippy", "Cargo.toml")]


def _go(root: Path) -> list[Command]:
    if _read(root, "go.mod") is None:
        return []
    return [Command("build", "go build ./...", "go.mod"), Command("test", "go test ./...", "go.mod"),
            Command("lint", "go vet ./...", "go.mod")]


def _others(root: Path) -> list[Command]:
    found = []
    if _read(root, "tox.ini") is not None:
        found.append(Command("test", "tox", "tox.ini"))
    if _read(root, "requirements.txt") is not None and _read(root, "pyproject.toml") is None:
        found.append(Command("install", "pip install -r requirements.txt", "requirements.txt"))
    if _read(root, "Gemfile") is not None:
        found.append(Command("install", "bundle install", "Gemfile"))
    if _read(root, "CMakeLists.txt") is not None:
        found += [Command("build", "cmake -S . -B build && cmake --build build", "CMakeLists.txt"),
                  Command("test", "ctest --test-dir build", "CMakeLists.txt")]
    text = _read(root, "justfile") or _read(root, "Justfile")
    if text is not None:
        recipes = [match.group(1) for match in re.finditer(r"^([A-Za-z0-9][\w-]*)[^\n:=]*:(?!=)", text, re.MULTILINE)]
        found += [Command(_kind(recipe), f"just {recipe}", "justfile") for recipe in recipes[:MAX_COMMANDS_PER_SOURCE]]
    return found


# --- writing them ---------------------------------------------------------------------


def write_starting(artifacts: Path, documents: dict[str, str]) -> list[str]:
    """Write each document that is not there yet (whole or not at all);
    the names written."""
    from factory_tui.backends.new_file import write_new_file
    from factory_tui.errors import FactoryError

    written = []
    for name, text in documents.items():
        path = artifacts / name
        if path.exists() or path.is_symlink():
            continue
        try:
            write_new_file(path, text, shown=f".factory/artifacts/{name}")
        except FactoryError:
            continue  # appeared meanwhile, or cannot be written: never over anything
        written.append(name)
    return written
