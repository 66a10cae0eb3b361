"""The session history rendered (issue 10 §1): newest first, the newest
that fit in its budget and the rest counted, marked as generated; a log of
10,000 landings renders no more of them than fit."""

from __future__ import annotations

from factory_tui.artifacts_model import Landing, QaVerdict
from factory_tui.backends.documents import parse_document
from factory_tui.backends.history import HISTORY_BUDGET, render_body, render_entry, render_history
from factory_tui.backends.landings import command_name, history_text
from factory_tui.backends.log import ExecutionLog


def landing(n: int, **extra) -> Landing:
    return Landing(task_id=f"T-{n}", title=f"Task number {n}", at=1_790_000_000.0 + n * 60, actor="cli:alice",
                   profile="demo", agent="factory_tui.demo_agent", attempts=1, commit=f"{n:040x}", **extra)


def test_an_entry_says_what_landed_when_by_whom_and_at_what_cost() -> None:
    entry = render_entry(landing(
        3, qa=(QaVerdict("tests", "passed", "required"), QaVerdict("look", "failed", "advisory")),
        cost_usd=0.0123, input_tokens=1234, output_tokens=567, last_words="Done:\nadded the form.",
    ))
    assert entry.splitlines() == [
        "## T-3: Task number 3",
        "",
        "- Landed 2026-09-21 14:16 UTC, approved by cli:alice; commit `0000000000`",
        "- Agent: demo (`factory_tui.demo_agent`), 1 attempt",
        "- QA: tests passed (required); look failed (advisory)",
        "- Cost: $0.0123; 1,234 tokens in, 567 out",
        "- Last words: Done: added the form.",
    ]


def test_a_landing_with_no_runs_says_so() -> None:
    bare = Landing(task_id="T-9", title="Nothing ran", at=1_790_000_000.0, actor="console:bob")
    assert render_entry(bare).splitlines()[2:] == [
        "- Landed 2026-09-21 14:13 UTC, approved by console:bob; nothing to merge",
        "- Agent: no agent run, 0 attempts",
        "- QA: none ran",
        "- Cost: not reported",
    ]


def test_the_document_is_generated_newest_first_and_within_its_budget() -> None:
    landings = [landing(n) for n in range(500, 0, -1)]  # newest first, as the log gives them
    text = render_history(landings, total=500)
    document = parse_document("history.md", text.encode())
    assert document.usable and document.generated and document.budget == HISTORY_BUDGET
    assert "rewritten each time, so edits made here are lost" in document.body
    assert len(document.body.encode()) <= HISTORY_BUDGET
    headings = [line for line in document.body.splitlines() if line.startswith("## ")]
    assert headings[0] == "## T-500: Task number 500" and len(headings) < 500
    assert headings == [f"## T-{n}: Task number {n}" for n in range(500, 500 - len(headings), -1)]
    assert document.body.rstrip().endswith(f"… and {500 - len(headings):,} earlier landings, kept in the factory's execution log.")
    assert "No task has landed yet." in render_body([], 0)


def test_rendering_reads_only_as_many_landings_as_it_shows() -> None:
    consumed = 0

    def landings():
        nonlocal consumed
        for n in range(10_000, 0, -1):
            consumed += 1
            yield landing(n)

    render_history(landings(), total=10_000)
    assert consumed < 100  # the newest that fit, and one more: never all 10,000


def test_history_from_a_log_of_ten_thousand_landings(log: ExecutionLog) -> None:
    with log._write() as conn:
        for n in range(1, 10_001):
            log._insert_landing(conn, 1_790_000_000.0 + n, landing(n))
    text = history_text(log)
    assert "## T-10000: Task number 10000" in text and "## T-1: " not in text
    assert "earlier landings, kept in the factory's execution log." in text
    assert log.landing_count() == 10_000 and log.landing_count(since=1_790_000_000.0 + 9_990) == 10


def test_an_agents_command_is_named_without_its_arguments() -> None:
    assert command_name(["claude", "-p", "the whole prompt", "--verbose"]) == "claude"
    assert command_name(["/usr/local/bin/codex", "exec", "{prompt}"]) == "codex"
    assert command_name(["{python}", "-m", "factory_tui.demo_agent", "--prompt-file", "x"]) == "factory_tui.demo_agent"
    assert command_name(["/usr/bin/python3.11", "-m", "factory_tui.demo_agent"]) == "factory_tui.demo_agent"
    assert command_name([]) is None
