"""The prompt an agent gets (factory_tui.backends.prompt): its exact text for
a small task, which sections appear when, and the size budget that keeps a
huge body or a pile of documents from swamping it."""

from __future__ import annotations

from factory_tui.backends.prompt import (
    MIN_DOCUMENT_SHOWN,
    PROMPT_BUDGET,
    DependencyOutcome,
    assemble_prompt,
    cut_to_bytes,
    fence_for,
    utf8_len,
)
from factory_tui.model import State, Task

LOGIN = Task(
    id="T-3",
    title="Write the login endpoint",
    state=State.RUNNING,
    body="Add `POST /login`.\n\n- Passwords are checked with **argon2**.\n",
)
DATABASE = Task(id="T-1", title="Set up the database", state=State.DONE)
COOKIES = Task(id="T-2", title="Session cookies", state=State.DONE)

EXPECTED = """\
# T-3: Write the login endpoint

Add `POST /login`.

- Passwords are checked with **argon2**.

## What earlier tasks produced

This task builds on these tasks. What each one reported when it finished:

- **T-1: Set up the database** (done)
  Tables users and sessions.
  Migrations live in db/.
- **T-2: Session cookies** (done)
  No summary was recorded.

## Feedback from the operator

This is attempt 2. The operator sent the task back after attempt 1 with this feedback; address it first:

Compare passwords in constant time.

## Living documents

The project's shared knowledge: follow its practices, and keep these documents in mind as you work.

### best-practices.md

```markdown
# Best practices

Write the test first.
```

## How to work here

- You are in a git worktree of the project, on branch `factory/T-3`. Stay on it: do not switch branches, and do not push.
- This is attempt 2: the branch already holds the work of earlier attempts. Read `git log` before you start.
- Commit your work as you go, in small commits with clear messages. Anything left uncommitted when you finish is committed for you.
- `factory note "…"` logs a note for the operator: what you found, what you decided, what needs their attention.
- `factory plan add --after T-3 "title"` proposes a follow-up task for work that does not belong in this one.
- When the task is done, stop. The operator reviews the branch and either merges it or sends it back with feedback.
"""


def small_prompt(**changes) -> str:
    arguments = {
        "attempt": 2,
        "branch": "factory/T-3",
        "dependencies": [
            DependencyOutcome(DATABASE, "Tables users and sessions.\nMigrations live in db/.\n"),
            DependencyOutcome(COOKIES, None),
        ],
        "feedback": "  Compare passwords in constant time.\n",
        "documents": [("best-practices.md", "# Best practices\n\nWrite the test first.\n")],
    }
    arguments.update(changes)
    return assemble_prompt(LOGIN, **arguments)


def test_a_small_prompt_reads_exactly_so() -> None:
    assert small_prompt() == EXPECTED
    # Pure: the same inputs give the same text.
    assert small_prompt() == small_prompt()


def test_a_first_attempt_has_only_what_it_needs() -> None:
    prompt = small_prompt(attempt=1, dependencies=[], feedback=None, documents=[])
    assert prompt.startswith("# T-3: Write the login endpoint\n\nAdd `POST /login`.")
    for absent in ("What earlier tasks produced", "Feedback from the operator", "Living documents", "attempt"):
        assert absent not in prompt
    assert "## How to work here" in prompt
    assert "on branch `factory/T-3`" in prompt
    assert 'factory plan add --after T-3 "title"' in prompt
    assert "do not push" in prompt


def test_blank_feedback_is_no_feedback_and_an_empty_body_is_said() -> None:
    empty = Task(id="T-9", title="Tidy up", state=State.RUNNING)
    prompt = assemble_prompt(
        empty, attempt=3, branch="factory/T-9", dependencies=[], feedback=" \n ", documents=[]
    )
    assert "Feedback from the operator" not in prompt
    assert "(The task has no description beyond its title.)" in prompt
    assert "This is attempt 3" in prompt


def test_a_document_cannot_close_its_own_fence() -> None:
    tricky = "Use\n````python\nprint()\n````\nthen\n## Not a prompt heading"
    prompt = small_prompt(documents=[("notes.txt", tricky)])
    assert "### notes.txt\n\n`````\n" + tricky + "\n`````" in prompt
    assert fence_for("no backticks") == "```"
    assert fence_for("a `` b") == "```"
    assert fence_for("``````") == "```````"


def test_a_huge_body_is_cut_and_says_so() -> None:
    huge = Task(id="T-4", title="Big", state=State.RUNNING, body="line of the spec\n" * 20_000)
    prompt = assemble_prompt(huge, attempt=1, branch="b", dependencies=[], feedback=None, documents=[])
    assert utf8_len(prompt) < PROMPT_BUDGET
    assert "[the task's description was cut here:" in prompt
    assert "of 340.0 KB shown]" in prompt
    # Cut at a line break, not in the middle of a line.
    cut_at = prompt.index("\n\n[the task's description")
    assert prompt[:cut_at].endswith("line of the spec")
    assert prompt.rstrip().endswith("sends it back with feedback.")


def test_documents_share_the_budget_small_ones_whole() -> None:
    small = ("start-sequence.md", "1. Run the tests.\n2. Read the plan.\n")
    big_a = ("history.md", "- a session happened\n" * 10_000)  # 210 KB
    big_b = ("best-practices.md", "Prefer small commits.\n" * 10_000)  # 220 KB
    prompt = small_prompt(documents=[big_a, small, big_b])
    assert utf8_len(prompt) <= PROMPT_BUDGET
    # The small one is whole, the big ones are cut, each saying so; the
    # order given is kept.
    assert "1. Run the tests.\n2. Read the plan.\n```" in prompt
    assert "[`history.md` was cut here:" in prompt
    assert "[`best-practices.md` was cut here:" in prompt
    assert prompt.index("### history.md") < prompt.index("### start-sequence.md") < prompt.index(
        "### best-practices.md"
    )
    # Fairly: both big documents get a similar share, and most of the room.
    shown_a = prompt.count("- a session happened")
    shown_b = prompt.count("Prefer small commits.")
    assert abs(shown_a * 21 - shown_b * 22) < 2_000
    assert shown_a * 21 + shown_b * 22 > 0.6 * PROMPT_BUDGET


def test_everything_huge_at_once_stays_under_budget() -> None:
    huge = Task(id="T-5", title="T" * 5_000, state=State.RUNNING, body="ü" * 200_000)
    dependencies = [
        DependencyOutcome(Task(id=f"T-{n}", title=f"dep {n}", state=State.DONE), "done\n" * 2_000)
        for n in range(100, 400)
    ]
    documents = [(f"doc-{n}.md", "🚀" * 50_000) for n in range(30)] + [
        ("n" * 10_000, "content")
    ]
    prompt = assemble_prompt(
        huge, attempt=7, branch="factory/T-5", dependencies=dependencies,
        feedback="fix it " * 50_000, documents=documents,
    )
    assert utf8_len(prompt) <= PROMPT_BUDGET
    assert prompt.startswith("# T-5: " + "T" * 100)
    assert "more, left out to keep this prompt short" in prompt  # dependencies
    assert "[the feedback was cut here:" in prompt
    assert "## How to work here" in prompt
    # No multi-byte character was split: the text round-trips.
    assert prompt.encode("utf-8").decode("utf-8") == prompt


def test_many_documents_leave_the_last_ones_out_by_name() -> None:
    documents = [(f"doc-{n:03}.md", "x" * 5_000) for n in range(200)]
    prompt = small_prompt(documents=documents)
    assert utf8_len(prompt) <= PROMPT_BUDGET
    shown = [name for name, _ in documents if f"### {name}\n" in prompt]
    # The caller's order is the order of importance: the first ones stay.
    assert 5 <= len(shown) < 200
    assert shown == [name for name, _ in documents[: len(shown)]]
    # What is shown is shown at a useful length, not a few bytes each.
    contents = [block.split("\n```")[0] for block in prompt.split("```markdown\n")[1:]]
    assert all(len(content) >= MIN_DOCUMENT_SHOWN for content in contents)
    left_out = prompt.split("Left out to keep this prompt short")[1]
    first_left_out = documents[len(shown)][0]
    assert f"`{first_left_out}`" in left_out
    assert f"and {200 - len(shown) - 20} more" in left_out


def test_cut_to_bytes_never_splits_a_character() -> None:
    for limit in range(12):
        shown, was_cut = cut_to_bytes("aé🚀ü" * 3, limit)
        assert utf8_len(shown) <= limit
        assert was_cut
        assert ("aé🚀ü" * 3).startswith(shown)
    assert cut_to_bytes("short", 100) == ("short", False)
