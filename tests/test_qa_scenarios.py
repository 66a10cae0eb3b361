"""Scenario files (.factory/qa/NAME.md) read from real files in a temporary
folder: every valid key, every way a file can be wrong (with its line), the
steps warning, which files of the folder are scenarios, when a scenario
applies to a change, and the templates ``factory qa new`` writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory_tui.qa_model import MAX_SCENARIO_STEPS, Gate, InvalidScenario, QaKind, Scenario
from factory_tui.qa_scenarios import (
    MAX_FILE_BYTES,
    applies,
    count_steps,
    glob_matches,
    load_scenarios,
    read_scenario,
    template,
    valid_name,
)

PROFILES = {"demo", "claude"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / ".factory" / "qa").mkdir(parents=True)
    return tmp_path


def write(root: Path, text: str | bytes, name: str = "check") -> Path:
    path = root / ".factory" / "qa" / f"{name}.md"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def read(root: Path, text: str | bytes, name: str = "check") -> Scenario | InvalidScenario:
    return read_scenario(write(root, text, name), root=root, profiles=PROFILES)


def valid(root: Path, text: str) -> Scenario:
    found = read(root, text)
    assert isinstance(found, Scenario), found
    return found


def invalid(root: Path, text: str | bytes) -> InvalidScenario:
    found = read(root, text)
    assert isinstance(found, InvalidScenario), found
    assert "\n" not in found.reason
    return found


# --- valid files ----------------------------------------------------------------


def test_a_test_with_its_defaults(root: Path) -> None:
    text = "---\nkind: test\nrun: python -m pytest -q 'tests/a b.py'\n---\nThe suite passes.\n"
    found = valid(root, text)
    assert found.name == "check"
    assert found.path == ".factory/qa/check.md"
    assert found.kind is QaKind.TEST and found.gate is Gate.REQUIRED
    # A string is split like a shell would, never given to one.
    assert found.run == ("python", "-m", "pytest", "-q", "tests/a b.py")
    assert found.timeout == 600.0 and found.retries == 1 and found.votes == 1
    assert found.judge is None and found.when_paths == () and found.when_labels == ()
    assert found.body == "The suite passes."
    assert found.version == hashlib.sha256(text.encode()).hexdigest()[:12]


def test_every_key_of_a_verify(root: Path) -> None:
    found = valid(root, (
        "---\nkind: verify\nrun: [curl, -s, 8080]\ngate: advisory\ntimeout: 2.5\nretries: 2\n"
        "expect: ok\nexpect_not: [Traceback, 'error: .*']\nwhen: {paths: ['src/**'], labels: [api]}\n---\n"
    ))
    assert found.kind is QaKind.VERIFY and found.gate is Gate.ADVISORY
    assert found.run == ("curl", "-s", "8080")
    assert found.timeout == 2.5 and found.retries == 2
    assert found.expect == ("ok",) and found.expect_not == ("Traceback", "error: .*")
    assert found.when_paths == ("src/**",) and found.when_labels == ("api",)


def test_a_judged_kind_names_a_known_profile_and_odd_votes(root: Path) -> None:
    found = valid(root, "---\nkind: eval\njudge: claude\nvotes: 3\nwhen: ['*.py']\n---\n1. Tests come with the change.\n")
    assert (found.judge, found.votes, found.timeout, found.retries) == ("claude", 3, 900.0, 0)
    assert found.run == () and found.when_paths == ("*.py",)
    assert "odd" in invalid(root, "---\nkind: eval\njudge: demo\nvotes: 2\n---\nrubric\n").reason


def test_a_byte_order_mark_and_blank_lines_before_the_front_matter_are_read(root: Path) -> None:
    found = valid(root, "\ufeff\n\n---\nkind: test\nrun: ['true']\n---\n")
    assert found.run == ("true",)
    # Unquoted, YAML reads true as a truth value: the reason says to quote it.
    assert "quote" in invalid(root, "---\nkind: test\nrun: [true]\n---\n").reason
    # Lines are still counted from the top of the file.
    assert invalid(root, "\n\n---\nkind: test\nrun: ['true']\ntimout: 3\n---\n").line == 6


# --- invalid files: one line, and the line it is on -------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("just a body\n", 1, "no front matter"),
        ("", None, "no front matter"),
        ("---\nkind: test\nrun: ['true']\n", 1, "no closing ---"),
        ("---\nkind: test\nrun: [a, b\n---\n", 4, "YAML:"),
        ("---\nkind: test\n  run: x\n---\n", 3, "YAML:"),
        ("---\n- kind\n- test\n---\n", 2, "must be keys and values"),
        ("---\n---\nbody\n", 2, "front matter is empty"),
        ("---\n# only a comment\n---\nbody\n", 2, "front matter is empty"),
        ("---\nkind: tset\nrun: ['true']\n---\n", 2, "unknown kind 'tset'; did you mean test?"),
        ("---\nrun: ['true']\n---\n", None, "kind is required"),
        ("---\nkind: test\nrun: ['true']\ntimout: 3\n---\n", 4, "unknown key timout; did you mean timeout?"),
        ("---\nkind: test\nrun: ['true']\nwhen: {path: [a]}\n---\n", 4, "when: unknown key path; did you mean paths?"),
        ("---\nkind: eval\njudge: gpt\n---\nrubric\n", 3, "unknown judge profile 'gpt'"),
        ("---\nkind: eval\n---\nrubric\n", None, "judge is required"),
        ("---\nkind: test\n---\n", None, "run is required"),
        ("---\nkind: verify\nexpect: ok\n---\n", None, "run is required"),
        ("---\nkind: test\nrun: []\n---\n", 3, "run is empty"),
        ("---\nkind: test\nrun: \"a 'b\"\n---\n", 3, "run: No closing quotation"),
        ("---\nkind: test\nrun: {a: b}\n---\n", 3, "run must be a command"),
        ("---\nkind: eval\njudge: demo\nrun: ['true']\n---\nrubric\n", 4, "run is for test and verify"),
        ("---\nkind: test\nrun: ['true']\njudge: demo\n---\n", 4, "judge is for eval and scenario"),
        ("---\nkind: test\nrun: ['true']\nexpect: ok\n---\n", 4, "expect is for verify"),
        ("---\nkind: test\nrun: ['true']\nvotes: 3\n---\n", 4, "votes is for eval and scenario"),
        ("---\nkind: verify\nrun: ['true']\n---\n", None, "without them it is a test"),
        ("---\nkind: verify\nrun: ['true']\nexpect: ['(']\n---\n", 4, "expect: bad regular expression '('"),
        ("---\nkind: verify\nrun: ['true']\nexpect_not: 'a{2,1}'\n---\n", 4, "expect_not: bad regular expression"),
        ("---\nkind: test\nrun: ['true']\ntimeout: .nan\n---\n", 4, "positive, finite"),
        ("---\nkind: test\nrun: ['true']\ntimeout: .inf\n---\n", 4, "positive, finite"),
        ("---\nkind: test\nrun: ['true']\ntimeout: -5\n---\n", 4, "positive, finite"),
        ("---\nkind: test\nrun: ['true']\ntimeout: 0\n---\n", 4, "positive, finite"),
        ("---\nkind: test\nrun: ['true']\ntimeout: nan\n---\n", 4, "timeout must be a number of seconds, not 'nan'"),
        ("---\nkind: test\nrun: ['true']\ntimeout: ten minutes\n---\n", 4, "timeout must be a number"),
        ("---\nkind: test\nrun: ['true']\ntimeout: true\n---\n", 4, "timeout must be a number"),
        ("---\nkind: test\nrun: ['true']\ntimeout: 1.0e+308\n---\n", 4, "timeout may be 86400 seconds (a day) at most"),
        ("---\nkind: test\nrun: ['true']\nretries: 1000000\n---\n", 4, "retries must be a whole number from 0 to 5"),
        ("---\nkind: eval\njudge: demo\nvotes: 1000\n---\nrubric\n", 4, "votes must be a whole number from 1 to 9"),
        ("---\nkind: verify\nrun: ['true']\nexpect: [" + ", ".join(["a"] * 5000) + "]\n---\n", 4,
         "expect has 5,000 patterns: 100 at most"),
        ("---\nkind: test\nrun: ['true']\nretries: -1\n---\n", 4, "retries must be a whole number"),
        ("---\nkind: test\nrun: ['true']\nretries: 1.5\n---\n", 4, "retries must be a whole number"),
        ("---\nkind: test\nrun: ['true']\nretries: 6\n---\n", 4, "retries must be a whole number from 0 to 5"),
        ("---\nkind: eval\njudge: demo\nvotes: 11\n---\nrubric\n", 4, "votes must be a whole number from 1 to 9"),
        ("---\nkind: test\nrun: ['true']\ngate: maybe\n---\n", 4, "gate must be required or advisory"),
        ("---\nkind: test\nrun: ['true']\nwhen: []\n---\n", 4, "would never run"),
        ("---\nkind: test\nrun: ['true']\nwhen: [/etc/*]\n---\n", 4, "relative to the repository"),
        ("---\nkind: test\nrun: ['true']\nwhen: 3\n---\n", 4, "when must be"),
        ("---\nkind: test\nrun: ['true']\nd: 2026-13-40\n---\n", None, "YAML: month must be in 1..12"),
        ("---\nkind: eval\njudge: demo\n---\n", None, "an eval's judge needs a rubric"),
        ("---\nkind: scenario\njudge: demo\n---\n  \n\n", None, "a scenario's judge needs the steps"),
    ],
)
def test_an_invalid_file_says_why_and_where(root: Path, text: str, line: int | None, reason: str) -> None:
    found = invalid(root, text)
    assert reason in found.reason, found.reason
    assert found.line == line, found
    assert (found.name, found.path) == ("check", ".factory/qa/check.md")


def test_a_file_that_is_not_utf8_is_invalid_at_its_line(root: Path) -> None:
    found = invalid(root, b"---\nkind: test\nrun: [caf\xe9]\n---\n")
    assert (found.reason, found.line) == ("not UTF-8 text", 3)


def test_a_file_over_the_limit_is_refused_unread(root: Path) -> None:
    body = "x" * (MAX_FILE_BYTES + 1)
    found = invalid(root, f"---\nkind: test\nrun: ['true']\n---\n{body}\n")
    assert "256 KB at most" in found.reason
    # At the limit it is read.
    at_limit = "---\nkind: test\nrun: ['true']\n---\n"
    assert isinstance(read(root, at_limit + "y" * (MAX_FILE_BYTES - len(at_limit))), Scenario)


def test_a_link_out_of_the_repository_is_refused(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.md"
    outside.write_text("---\nkind: test\nrun: [cat, /etc/shadow]\n---\n")
    link = root / ".factory" / "qa" / "sneaky.md"
    link.symlink_to(outside)
    found = read_scenario(link, root=root, profiles=PROFILES)
    assert isinstance(found, InvalidScenario) and "outside the repository" in found.reason
    # A link inside the repository is fine.
    (root / "shared.md").write_text("---\nkind: test\nrun: ['true']\n---\n")
    inside = root / ".factory" / "qa" / "shared.md"
    inside.symlink_to(root / "shared.md")
    assert isinstance(read_scenario(inside, root=root, profiles=PROFILES), Scenario)
    # A dangling one is listed, not raised.
    dangling = root / ".factory" / "qa" / "gone.md"
    dangling.symlink_to(root / "nowhere.md")
    gone = read_scenario(dangling, root=root, profiles=PROFILES)
    assert isinstance(gone, InvalidScenario) and "cannot be read" in gone.reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_not_read(root: Path) -> None:
    # Reading it would wait for a writer for ever.
    pipe = root / ".factory" / "qa" / "pipe.md"
    os.mkfifo(pipe)
    found = read_scenario(pipe, root=root, profiles=PROFILES)
    assert isinstance(found, InvalidScenario) and found.reason == "not a regular file"


# --- steps ------------------------------------------------------------------------


def test_steps_are_the_top_level_list_items() -> None:
    body = (
        "# Buy a thing\n\n1. Open the shop.\n2. Add a thing.\n   - a detail, not a step\n"
        "* Pay.\n- Check the receipt.\n\n```\n1. not a step, code\n- nor this\n```\n\n> - quoted, not a step\n"
    )
    assert count_steps(body) == 4
    assert count_steps("No list at all.\n---\n") == 0


def test_a_scenario_with_too_many_steps_is_told_to_split(root: Path) -> None:
    steps = "".join(f"{n}. Step {n}.\n" for n in range(1, MAX_SCENARIO_STEPS + 2))
    found = valid(root, f"---\nkind: scenario\njudge: demo\n---\n{steps}")
    assert found.steps == 8
    assert found.warnings == ("8 steps: split it into scenarios of 7 or fewer",)
    seven = "".join(f"- Step {n}.\n" for n in range(1, MAX_SCENARIO_STEPS + 1))
    assert valid(root, f"---\nkind: scenario\njudge: demo\n---\n{seven}").warnings == ()
    # An eval's rubric may have as many points as it likes.
    assert valid(root, f"---\nkind: eval\njudge: demo\n---\n{steps}").warnings == ()


# --- the folder -------------------------------------------------------------------


def test_load_scenarios_reads_the_folder_sorted_without_readme_or_judge_prompt(root: Path) -> None:
    qa = root / ".factory" / "qa"
    write(root, "---\nkind: test\nrun: ['true']\n---\n", "b-tests")
    write(root, "---\nkind: bogus\n---\n", "a-broken")
    write(root, "# About these files\n", "README")
    write(root, "You are a judge.\n", "judge-prompt")
    (qa / "notes.txt").write_text("not markdown")
    (qa / "sub").mkdir()
    write(root, "---\nkind: test\nrun: ['true']\n---\n", "sub/nested")
    found = load_scenarios(qa, root=root, profiles=PROFILES)
    assert [(s.name, type(s).__name__) for s in found] == [("a-broken", "InvalidScenario"), ("b-tests", "Scenario")]
    assert load_scenarios(root / "missing", root=root, profiles=PROFILES) == []


# --- when -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("*.py", "app.py", True),
        ("*.py", "src/deep/app.py", True),  # no slash: a file name in any folder
        ("*.py", "app.pyc", False),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/sub/app.py", False),  # * stays in one folder
        ("src/**/*.py", "src/app.py", True),  # ** may be no folder at all
        ("src/**/*.py", "src/a/b/app.py", True),
        ("src/**", "src/a/b/c.txt", True),
        ("src/**", "srcs/a.txt", False),
        ("docs/", "docs/guide/index.md", True),
        ("**/test_*.py", "tests/unit/test_a.py", True),
        ("te?t/*", "test/a", True),
        ("te?t/*", "te/t/a", False),
        ("[ab].txt", "a.txt", True),
        ("[!ab].txt", "c.txt", True),
        ("[!ab].txt", "a.txt", False),
        ("a+b(c).md", "a+b(c).md", True),  # regex characters are literal
        ("./README.md", "README.md", True),
    ],
)
def test_path_globs(glob: str, path: str, matches: bool) -> None:
    assert glob_matches(glob, path) is matches


def test_applies_by_paths_labels_or_either(root: Path) -> None:
    always = valid(root, "---\nkind: test\nrun: ['true']\n---\n")
    assert applies(always, [], []) is True
    by_path = valid(root, "---\nkind: test\nrun: ['true']\nwhen: ['src/**/*.py']\n---\n")
    assert applies(by_path, ["README.md", "src/a/b.py"], []) is True
    assert applies(by_path, ["README.md"], ["backend"]) is False
    by_label = valid(root, "---\nkind: test\nrun: ['true']\nwhen: {labels: [backend]}\n---\n")
    assert applies(by_label, ["src/a.py"], ["backend", "ui"]) is True
    assert applies(by_label, ["src/a.py"], []) is False
    both = valid(root, "---\nkind: test\nrun: ['true']\nwhen: {paths: ['*.css'], labels: [ui]}\n---\n")
    assert applies(both, ["site.css"], []) is True
    assert applies(both, ["a.py"], ["ui"]) is True
    assert applies(both, ["a.py"], ["backend"]) is False


# --- templates --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(QaKind))
def test_each_template_reads_back_as_its_kind(root: Path, kind: QaKind) -> None:
    text = template(kind, "smoke")
    found = valid(root, text)
    assert found.kind is kind and found.warnings == ()
    assert "# smoke" in found.body
    # Every key is explained in a comment.
    for key in ("kind", "gate", "timeout", "when"):
        assert f"# {key}:" in text
    if kind in (QaKind.EVAL, QaKind.SCENARIO):
        assert found.judge == "demo"
        assert valid(root, template(kind, "smoke", judge="claude")).judge == "claude"
    if kind is QaKind.SCENARIO:
        assert 1 <= found.steps <= MAX_SCENARIO_STEPS
        assert "`VERDICT: PASS`" in found.body and "`VERDICT: FAIL <reason>`" in found.body
    if kind is QaKind.VERIFY:
        assert found.expect and found.expect_not


def test_names_a_scenario_may_have() -> None:
    assert all(valid_name(name) for name in ("smoke", "api-v2", "A.b_c", "0day"))
    assert not any(valid_name(name) for name in ("", "-x", ".hidden", "a/b", "../x", "a b", "README", "readme", "judge-prompt", "é"))


# --- anything at all --------------------------------------------------------------


FRONT_KEYS = st.sampled_from(["kind", "run", "judge", "gate", "timeout", "when", "retries", "votes", "expect", "expect_not", "x"])
VALUES = st.one_of(
    st.sampled_from(["test", "verify", "eval", "scenario", "demo", "[a, b]", ".nan", "'('", "{paths: [a]}", "[", "3", "-1", "&a x", "*a"]),
    st.text(max_size=20),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.tuples(FRONT_KEYS, VALUES), max_size=6).map(
        lambda pairs: ("---\n" + "".join(f"{k}: {v}\n" for k, v in pairs) + "---\n1. step\n").encode("utf-8", "surrogatepass")
    ),
))
def test_any_file_is_a_scenario_or_invalid_never_an_exception(root: Path, data: bytes) -> None:
    found = read(root, data)
    assert isinstance(found, Scenario | InvalidScenario)
    if isinstance(found, InvalidScenario):
        assert found.reason and "\n" not in found.reason


def test_reading_scenarios_imports_no_textual_sqlite_or_git() -> None:
    import subprocess
    import sys

    script = (
        "import sys, factory_tui.qa_scenarios\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'sqlite3', 'git', 'sqlite_utils')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
