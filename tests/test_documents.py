"""Living documents on disk (issue 10 §1): front matter read into what a
prompt needs, the git blob id computed as git does, and every file that
cannot be used listed with its line and reason instead of read: links out
of the repository, FIFOs, huge files, bad UTF-8, bad front matter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from factory_tui.artifacts_model import Include
from factory_tui.backends.documents import (
    MAX_DOCUMENT_BYTES,
    blob_id,
    file_name,
    parse_document,
    read_documents,
)


def parse(text: str, name: str = "doc.md"):
    return parse_document(name, text.encode("utf-8"))


# --- front matter ---------------------------------------------------------------------


def test_a_document_without_front_matter_goes_in_always_titled_by_its_heading() -> None:
    doc = parse("# Coding rules\n\nWrite tests first.\n", "rules.md")
    assert doc.usable
    assert (doc.title, doc.include, doc.when, doc.budget, doc.generated) == ("Coding rules", Include.ALWAYS, (), None, False)
    assert doc.body == "# Coding rules\n\nWrite tests first.\n"
    # Without a heading, its name is its title.
    assert parse("just text\n", "notes.md").title == "notes"


def test_every_key_is_read() -> None:
    doc = parse("---\ntitle: API rules\ninclude: when\nwhen: [src/api/**, 'label:api', '*.sql']\nbudget: 4000\n---\n"
                "# API\n\nUse JSON.\n")
    assert doc.usable, doc.problem
    assert doc.title == "API rules"
    assert doc.include is Include.WHEN
    assert doc.when_paths == ("src/api/**", "*.sql") and doc.when_labels == ("api",)
    assert doc.when == ("src/api/**", "*.sql", "label:api")
    assert doc.budget == 4000
    assert doc.body == "# API\n\nUse JSON.\n"  # the front matter is the factory's, not the prompt's


def test_when_as_a_mapping_like_a_qa_scenarios_and_include_defaults_to_when() -> None:
    doc = parse("---\nwhen: {paths: [docs/**], labels: [docs, 'label:writing']}\n---\nbody\n")
    assert doc.usable, doc.problem
    assert doc.include is Include.WHEN
    assert doc.when_paths == ("docs/**",) and doc.when_labels == ("docs", "writing")


def test_json_front_matter_is_read_too() -> None:
    doc = parse('---json\n{\n  "title": "From JSON",\n  "include": "never"\n}\n---\nbody\n')
    assert (doc.title, doc.include) == ("From JSON", Include.NEVER)


@pytest.mark.parametrize(("front", "line", "reason"), [
    ("---\ntitle: [unclosed\n---\n", 3, "front matter: YAML"),
    ("---\ntitle: x\n", 1, "no closing --- line"),
    ("---\ntitel: x\n---\n", 2, "unknown key 'titel'"),
    ("---\ntitle: x\ninclude: sometimes\n---\n", 3, "include must be always, when or never, not 'sometimes'"),
    ("---\ninclude: when\n---\n", 2, "include: when needs a when"),
    ("---\ninclude: always\nwhen: [src/**]\n---\n", 2, "include: always with a when"),
    ("---\nwhen: []\n---\n", 2, "when names no path or label"),
    ("---\nwhen: [/etc/**]\n---\n", 2, "path globs are relative to the repository"),
    ("---\nwhen: {paths: [a], files: [b]}\n---\n", 2, "when: unknown key files (known: paths, labels)"),
    ("---\nbudget: 10\n---\n", 2, "budget must be a whole number of bytes, at least 100"),
    ("---\nbudget: lots\n---\n", 2, "budget must be a whole number"),
    ("---\ngenerated: maybe\n---\n", 2, "generated must be true or false"),
    ("---\n- a list\n---\n", 2, "must be keys and values"),
])
def test_front_matter_that_does_not_parse_is_a_problem_with_its_line(front: str, line: int, reason: str) -> None:
    doc = parse(front + "# Body\n")
    assert not doc.usable
    assert reason in doc.problem, doc.problem
    assert doc.line == line
    assert "\n" not in doc.problem


def test_the_blob_id_is_gits(tmp_path: Path) -> None:
    for data in (b"", b"hello\n", "ünïcode ✓\n".encode(), os.urandom(3000)):
        path = tmp_path / "file"
        path.write_bytes(data)
        expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
        assert blob_id(data) == expected


def test_a_title_with_markup_or_escapes_is_kept_as_text_on_one_line() -> None:
    doc = parse("---\ntitle: \"[bold]x[/] \\e[31mred\\nsecond\"\n---\nbody\n")
    assert doc.usable
    assert doc.title == "[bold]x[/] \x1b[31mred second"  # shown literally by whoever shows it


@pytest.mark.parametrize(("given", "expected"), [
    ("conventions", "conventions.md"), ("conventions.md", "conventions.md"), ("[bold]x", "[bold]x.md"),
    ("[bold]x[/]", None),  # a slash: no file name at all
    ("../x", None), ("/etc/passwd", None), ("a/b.md", None), ("..", None), ("", None), (".hidden", None),
])
def test_a_document_name_is_a_file_name_never_a_path(given: str, expected: str | None) -> None:
    assert file_name(given) == expected


# --- the folder: what is never read -----------------------------------------------------


def test_files_that_cannot_be_used_are_listed_with_why(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    folder = root / ".factory" / "artifacts"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.md"
    secret.write_text("SECRET-KEY-123\n")
    (folder / "leak.md").symlink_to(secret)
    os.mkfifo(folder / "pipe.md")  # opened, it would block for ever
    with open(folder / "huge.md", "wb") as handle:
        handle.truncate(10 * 1024 * 1024)
    (folder / "latin1.md").write_bytes(b"# Caf\xe9\nline two\n")
    (folder / "fine.md").write_text("# Fine\n")
    (folder / ".fine.md.123.tmp").write_text("half written")
    (folder / "sub.md").mkdir()
    found = {doc.name: doc for doc in read_documents(folder, root=root)}
    assert sorted(found) == ["fine.md", "huge.md", "latin1.md", "leak.md", "pipe.md"]
    assert found["fine.md"].usable
    assert "outside the repository" in found["leak.md"].problem
    assert found["leak.md"].body == "" and found["leak.md"].text == ""
    assert found["pipe.md"].problem == "not a regular file"
    assert f"{MAX_DOCUMENT_BYTES // 1024} KB at most" in found["huge.md"].problem
    assert (found["latin1.md"].problem, found["latin1.md"].line) == ("not UTF-8 text", 1)
    assert all("SECRET" not in doc.body + doc.text for doc in found.values())


def test_a_link_inside_the_repository_is_read(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    folder = root / ".factory" / "artifacts"
    folder.mkdir(parents=True)
    (root / "STYLE.md").write_text("# Style\n")
    (folder / "style.md").symlink_to(root / "STYLE.md")
    [doc] = read_documents(folder, root=root)
    assert doc.usable and doc.title == "Style"


def test_an_unchanged_document_is_not_parsed_again_and_a_changed_one_is(tmp_path: Path, monkeypatch) -> None:
    from factory_tui.backends import documents

    root = tmp_path / "repo"
    folder = root / "artifacts"
    folder.mkdir(parents=True)
    (folder / "rules.md").write_text("# Rules\n\nold\n")
    # Just written: within the racy window, so read again every time.
    first = read_documents(folder, root=root)[0]
    assert read_documents(folder, root=root)[0] is not first
    # Older than the window (the clock moved on): kept as parsed.
    later = documents.time.time() + 60
    monkeypatch.setattr(documents.time, "time", lambda: later)
    kept = read_documents(folder, root=root)[0]
    assert read_documents(folder, root=root)[0] is kept
    # Replaced (as an editor or git writes a file): read again.
    replacement = folder / ".rules.md.new"
    replacement.write_text("# Rules\n\nnew\n")
    os.replace(replacement, folder / "rules.md")
    assert read_documents(folder, root=root)[0].body == "# Rules\n\nnew\n"
