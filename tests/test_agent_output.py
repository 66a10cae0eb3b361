"""Agent output into readable progress (factory_tui.backends.agent_output):
recorded-looking Claude stream-json and Codex JSONL streams, the older Codex
shape, plain text, and input that is broken in every way a stream can be."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_tui.backends.agent_output import (
    KINDS,
    MAX_TEXT,
    Progress,
    format_tokens,
    parser_for,
)
from factory_tui.errors import FactoryError

WORKTREE = "/home/dev/shop/.factory/worktrees/T-3"


def lines_of(*events: object) -> list[str]:
    return [e if isinstance(e, str) else json.dumps(e) for e in events]


def parse(output_format: str, lines: list[str]) -> list[Progress]:
    parser = parser_for(output_format)
    items: list[Progress] = []
    for line in lines:
        items += parser.feed(line + "\n")
    return items + parser.finish()


def shown(items: list[Progress]) -> list[tuple[str, str]]:
    return [(item.kind, item.text) for item in items]


# --- Claude Code stream-json ----------------------------------------------------------

CLAUDE_SESSION = lines_of(
    {
        "type": "system",
        "subtype": "init",
        "cwd": WORKTREE,
        "session_id": "4f1c",
        "model": "claude-sonnet-4-5",
        "tools": ["Bash", "Edit", "Read"],
    },
    {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "thinking", "thinking": "Let me plan this out…"},
                {"type": "text", "text": "I'll start by reading the README.\n\nThen the routes."},
            ],
            "usage": {"input_tokens": 10, "output_tokens": 20},
        },
    },
    {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": f"{WORKTREE}/README.md"}}
            ]
        },
    },
    {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "# shop\n…"}]},
    },
    {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "tool_use", "id": "t2", "name": "Edit",
                 "input": {"file_path": f"{WORKTREE}/src/app.py", "old_string": "a", "new_string": "b"}},
                {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"command": "pytest -q", "timeout": 60}},
            ]
        },
    },
    {
        "type": "user",
        "message": {
            "content": [
                {"type": "tool_result", "tool_use_id": "t2", "content": "ok", "is_error": False},
                {
                    "type": "tool_result",
                    "tool_use_id": "t3",
                    "content": [{"type": "text", "text": "1 failed, 3 passed\nFAILED test_app.py::test_login"}],
                    "is_error": True,
                },
            ]
        },
    },
    {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "t4", "name": "Grep", "input": {"pattern": "def login", "path": "src"}},
        {"type": "tool_use", "id": "t5", "name": "WebFetch", "input": {"url": "https://example.com/doc", "prompt": "x"}},
        {"type": "tool_use", "id": "t6", "name": "TodoWrite", "input": {"todos": [{"content": "fix", "status": "pending"}]}},
        {"type": "tool_use", "id": "t7", "name": "Mystery", "input": {}},
    ]}},
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "total_cost_usd": 0.0523,
        "duration_ms": 12_340,
        "num_turns": 4,
        "result": "Done: login works.",
        "session_id": "4f1c",
        "usage": {
            "input_tokens": 2_300,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 10_000,
            "output_tokens": 1_234,
        },
    },
)


def test_a_claude_session_reads_as_progress() -> None:
    items = parse("claude-stream-json", CLAUDE_SESSION)
    assert shown(items) == [
        ("system", "session started (model claude-sonnet-4-5)"),
        ("text", "I'll start by reading the README. Then the routes."),
        ("tool", "Read: README.md"),
        ("tool", "Edit: src/app.py"),
        ("tool", "Bash: pytest -q"),
        ("tool_result", "tool error: 1 failed, 3 passed FAILED test_app.py::test_login"),
        ("tool", "Grep: def login in src"),
        ("tool", "WebFetch: https://example.com/doc"),
        ("tool", 'TodoWrite: {"todos":[{"content":"fix","status":"pending"}]}'),
        ("tool", "Mystery"),
        ("result", "finished: success · 4 turns · 12.3s · $0.0523 · 12.3k (10.0k cached) in / 1.2k out tokens"),
    ]
    assert items[0].data == {"model": "claude-sonnet-4-5", "session_id": "4f1c"}
    assert items[5].data == {"tool": "Bash"}
    assert items[-1].data == {
        "subtype": "success",
        "cost_usd": 0.0523,
        "input_tokens": 12_300,
        "cached_input_tokens": 10_000,
        "output_tokens": 1_234,
        "turns": 4,
        "duration_ms": 12_340,
    }


def test_claude_error_results_and_older_cost_field() -> None:
    items = parse(
        "claude-stream-json",
        lines_of(
            {"type": "result", "subtype": "error_max_turns", "is_error": True, "cost_usd": 1.2,
             "num_turns": 30, "usage": {"input_tokens": 900, "output_tokens": 5}},
            {"type": "result", "subtype": "error_during_execution", "is_error": True,
             "errors": ["API Error: 529 overloaded"], "num_turns": 1},
            {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1},
        ),
    )
    assert shown(items) == [
        ("error", "failed: error_max_turns · 30 turns · $1.2000 · 900 in / 5 out tokens"),
        ("error", "failed: error_during_execution · 1 turn · API Error: 529 overloaded"),
        ("result", "finished: success · 1 turn"),
    ]
    assert items[0].data["cost_usd"] == 1.2
    assert items[0].data["subtype"] == "error_max_turns"


def test_claude_lines_that_are_not_progress_give_nothing() -> None:
    items = parse(
        "claude-stream-json",
        lines_of(
            {"type": "system", "subtype": "hook_response", "stdout": "…"},
            {"type": "stream_event", "event": {"type": "content_block_delta"}},
            {"type": "user", "message": {"content": [{"type": "text", "text": "operator says hi"}]}},
            {"type": "assistant", "message": {"content": [{"type": "thinking", "thinking": "hmm"}]}},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "  \n \n"}]}},
            {"type": "brand-new-event"},
            "",
            "   ",
        ),
    )
    assert items == []


def test_claude_malformed_lines_become_text_and_wrong_types_are_survived() -> None:
    items = parse(
        "claude-stream-json",
        lines_of(
            "Error: not logged in. Run `claude login`.",
            '{"type": "assistant", "message": {"content": [',  # cut off mid-line
            "[1, 2, 3]",
            "42",
            {"type": "assistant", "message": "not an object"},
            {"type": "assistant", "message": {"content": [None, 3, "x", {"type": "tool_use"}]}},
            {"type": "assistant", "message": {"content": "a bare string"}},
            {"type": "user", "message": {"content": [{"type": "tool_result", "is_error": True, "content": 7}]}},
            {"type": "result", "is_error": "yes", "total_cost_usd": "free", "num_turns": True,
             "usage": {"input_tokens": None, "output_tokens": [1]}},
            {"type": "system", "subtype": "init", "model": 5},
        ),
    )
    assert shown(items) == [
        ("text", "Error: not logged in. Run `claude login`."),
        ("text", '{"type": "assistant", "message": {"content": ['),
        ("text", "[1, 2, 3]"),
        ("text", "42"),
        ("tool", "tool"),
        ("text", "a bare string"),
        ("tool_result", "tool error: (no message)"),
        ("result", "finished: unknown"),
        ("system", "session started"),
    ]
    assert items[-2].data == {}


def test_control_characters_are_left_for_the_display_layer() -> None:
    items = parse(
        "claude-stream-json",
        lines_of({"type": "assistant", "message": {"content": [{"type": "text", "text": "\x1b[31mred\x1b[0m\x07"}]}}),
    )
    assert items[0].text == "\x1b[31mred\x1b[0m\x07"
    assert parse("text", ["\x1b]0;title\x07 done"])[0].text == "\x1b]0;title\x07 done"


def test_huge_lines_are_cut_to_one_screen_line() -> None:
    words = "word " * 100_000
    items = parse(
        "claude-stream-json",
        lines_of(
            {"type": "assistant", "message": {"content": [{"type": "text", "text": words}]}},
            {"type": "assistant", "message": {"content": [
                {"type": "tool_use", "name": "Bash", "input": {"command": "echo " + "x" * 10_000}}]}},
            "not json " * 10_000,
        ),
    )
    assert [item.kind for item in items] == ["text", "tool", "text"]
    for item in items:
        assert len(item.text) == MAX_TEXT
        assert item.text.endswith("…")
    assert parse("text", ["y" * 5_000])[0].text == "y" * (MAX_TEXT - 1) + "…"


# --- Codex exec --json ------------------------------------------------------------------

CODEX_SESSION = lines_of(
    {"type": "thread.started", "thread_id": "0199a213-81c0"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Scanning the repo**"}},
    {"type": "item.started", "item": {"id": "item_1", "type": "command_execution",
                                      "command": "bash -lc 'pytest -q'", "aggregated_output": "",
                                      "exit_code": None, "status": "in_progress"}},
    {"type": "item.updated", "item": {"id": "item_1", "type": "command_execution",
                                      "command": "bash -lc 'pytest -q'", "aggregated_output": "..",
                                      "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution",
                                        "command": "bash -lc 'pytest -q'",
                                        "aggregated_output": "..F\n1 failed, 2 passed in 0.1s\n",
                                        "exit_code": 1, "status": "failed"}},
    {"type": "item.started", "item": {"id": "item_2", "type": "command_execution",
                                      "command": "bash -lc 'ls src'", "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "command_execution",
                                        "command": "bash -lc 'ls src'", "aggregated_output": "app.py\n",
                                        "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "file_change", "status": "completed",
                                        "changes": [{"path": "src/app.py", "kind": "update"},
                                                    {"path": "tests/test_login.py", "kind": "add"}]}},
    {"type": "item.completed", "item": {"id": "item_4", "type": "mcp_tool_call", "server": "docs",
                                        "tool": "search", "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_5", "type": "web_search", "query": "argon2 python"}},
    {"type": "item.completed", "item": {"id": "item_6", "type": "todo_list", "items": [
        {"text": "write the route", "completed": True}, {"text": "add tests", "completed": False}]}},
    {"type": "item.completed", "item": {"id": "item_7", "type": "agent_message",
                                        "text": "Login works now.\nTests pass."}},
    {"type": "turn.completed", "usage": {"input_tokens": 24_763, "cached_input_tokens": 24_448,
                                         "output_tokens": 122}},
)


def test_a_codex_session_reads_as_progress() -> None:
    items = parse("codex-json", CODEX_SESSION)
    assert shown(items) == [
        ("system", "session started"),
        ("tool", "shell: pytest -q"),
        ("tool_result", "command failed (exit 1): pytest -q · 1 failed, 2 passed in 0.1s"),
        ("tool", "shell: ls src"),
        ("tool", "patch: update src/app.py, add tests/test_login.py"),
        ("tool", "mcp docs/search"),
        ("tool", "web search: argon2 python"),
        ("tool", "todo: 1/2 done · next: add tests"),
        ("text", "Login works now. Tests pass."),
        ("result", "turn completed · 1 turn · 24.8k (24.4k cached) in / 122 out tokens"),
    ]
    assert items[0].data == {"session_id": "0199a213-81c0"}
    assert items[2].data == {"tool": "shell", "command_exit_code": 1}
    assert items[-1].data == {
        "input_tokens": 24_763,
        "cached_input_tokens": 24_448,
        "output_tokens": 122,
        "turns": 1,
    }


def test_codex_totals_add_up_over_turns_and_failures_are_errors() -> None:
    items = parse(
        "codex-json",
        lines_of(
            {"type": "turn.completed", "usage": {"input_tokens": 1_000, "output_tokens": 10}},
            {"type": "item.completed", "item": {"type": "command_execution", "command": ["git", "status"],
                                                "exit_code": 0, "status": "completed"}},
            {"type": "turn.completed", "usage": {"input_tokens": 500, "output_tokens": 5}},
            {"type": "error", "message": "stream disconnected; retrying 1/5"},
            {"type": "turn.failed", "error": {"message": "rate limited"}},
            {"type": "item.completed", "item": {"type": "file_change", "status": "failed",
                                                "changes": [{"path": "a.py", "kind": "update"}]}},
            {"type": "item.completed", "item": {"type": "mcp_tool_call", "server": "s", "tool": "t",
                                                "status": "failed", "error": {"message": "boom"}}},
        ),
    )
    assert shown(items) == [
        ("result", "turn completed · 1 turn · 1.0k in / 10 out tokens"),
        # Completed without a start seen: shown now.
        ("tool", "shell: git status"),
        ("result", "turn completed · 2 turns · 1.5k in / 15 out tokens"),
        ("error", "error: stream disconnected; retrying 1/5"),
        ("error", "turn failed: rate limited"),
        ("tool_result", "patch failed: update a.py"),
        ("tool_result", "tool error: s/t: boom"),
    ]
    assert items[2].data == {"input_tokens": 1_500, "output_tokens": 15, "turns": 2}


def test_the_older_codex_shape_is_read_too() -> None:
    items = parse(
        "codex-json",
        lines_of(
            {"model": "o4-mini", "sandbox": "workspace-write"},  # the config summary line
            {"id": "0", "msg": {"type": "session_configured", "model": "o4-mini"}},
            {"id": "1", "msg": {"type": "agent_reasoning", "text": "thinking"}},
            {"id": "1", "msg": {"type": "exec_command_begin", "command": ["bash", "-lc", "cargo test"]}},
            {"id": "1", "msg": {"type": "exec_command_end", "exit_code": 101, "stderr": "error: 2 tests failed\n"}},
            {"id": "1", "msg": {"type": "exec_command_end", "exit_code": 0}},
            {"id": "1", "msg": {"type": "patch_apply_begin", "changes": {"src/lib.rs": {"update": {}}}}},
            {"id": "1", "msg": {"type": "agent_message", "message": "Fixed the tests."}},
            {"id": "1", "msg": {"type": "token_count", "input_tokens": 3_000, "cached_input_tokens": 0,
                                "output_tokens": 300}},
            {"id": "1", "msg": {"type": "task_complete", "last_agent_message": "Fixed the tests."}},
            {"id": "2", "msg": {"type": "token_count",
                                "info": {"total_token_usage": {"input_tokens": 5_000, "output_tokens": 400}}}},
        ),
    )
    assert shown(items) == [
        ("system", "session started (model o4-mini)"),
        ("tool", "shell: cargo test"),
        ("tool_result", "command failed (exit 101) · error: 2 tests failed"),
        ("tool", "patch: src/lib.rs"),
        ("text", "Fixed the tests."),
        ("result", "turn completed · 1 turn · 3.0k in / 300 out tokens"),
        # A count with no task_complete after it is reported by finish().
        ("result", "turn completed · 2 turns · 5.0k in / 400 out tokens"),
    ]


def test_codex_malformed_lines_become_text_and_wrong_types_are_survived() -> None:
    items = parse(
        "codex-json",
        lines_of(
            "2025-10-01T12:00:00 WARN codex_core: retrying",
            "{broken",
            '"a string"',
            {"type": "item.completed", "item": "not an object"},
            {"type": "item.completed"},
            {"type": "item.started", "item": {"type": "command_execution", "command": 5}},
            {"type": "item.completed", "item": {"type": "agent_message", "text": ["no"]}},
            {"type": "item.completed", "item": {"type": "todo_list", "items": "no"}},
            {"type": "turn.completed", "usage": {"input_tokens": "many", "output_tokens": float("nan")}},
            {"type": "turn.failed", "error": "not an object"},
            {"msg": {"type": "exec_command_end", "exit_code": "1"}},
            {"msg": {"type": "token_count", "info": None}},
        ),
    )
    assert shown(items) == [
        ("text", "2025-10-01T12:00:00 WARN codex_core: retrying"),
        ("text", "{broken"),
        ("text", '"a string"'),
        ("tool", "shell"),
        ("result", "turn completed · 1 turn · 0 in / 0 out tokens"),
        ("error", "turn failed: (no message)"),
        # The token_count without counts still ends a turn at finish().
        ("result", "turn completed · 2 turns · 0 in / 0 out tokens"),
    ]


# --- plain text, and choosing a parser -----------------------------------------------------


def test_text_keeps_every_line_as_it_is() -> None:
    items = parse("text", ["Applied edit to app.py", "", '{"type": "result"}', "  indented\tand tabbed  "])
    assert shown(items) == [
        ("text", "Applied edit to app.py"),
        ("text", ""),
        ("text", '{"type": "result"}'),
        ("text", "  indented\tand tabbed  "),
    ]


def test_line_endings_are_dropped_but_nothing_else() -> None:
    parser = parser_for("text")
    assert parser.feed("a line\r\n")[0].text == "a line"
    assert parser.feed("no ending")[0].text == "no ending"
    assert parser.feed(b"bytes \xff\n")[0].text == "bytes \ufffd"  # type: ignore[arg-type]


def test_each_parser_is_fresh() -> None:
    first, second = parser_for("codex-json"), parser_for("codex-json")
    first.feed(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 5}}))
    items = second.feed(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 7}}))
    assert items[0].data["input_tokens"] == 7
    assert items[0].data["turns"] == 1


def test_an_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(FactoryError) as raised:
        parser_for("yaml")
    message = str(raised.value)
    assert "'yaml'" in message
    for known in ("claude-stream-json", "codex-json", "text"):
        assert known in message


def test_token_counts_read_short() -> None:
    assert [format_tokens(n) for n in (0, 999, 1_000, 12_345, 2_500_000)] == [
        "0", "999", "1.0k", "12.3k", "2.5M"
    ]


# --- nothing breaks them -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Objects shaped like the real events, with anything at all in their fields.
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["assistant", "user", "result", "system", "item.started", "item.completed",
             "turn.completed", "turn.failed", "error", "thread.started"]
        ),
    },
    optional={
        "message": json_values | st.fixed_dictionaries({"content": st.lists(json_values, max_size=3)}),
        "item": json_values | st.fixed_dictionaries(
            {"type": st.sampled_from(["command_execution", "file_change", "mcp_tool_call", "todo_list",
                                      "agent_message", "web_search", "error"])},
            optional={"command": json_values, "changes": json_values, "items": json_values,
                      "exit_code": json_values, "status": json_values, "text": json_values,
                      "error": json_values},
        ),
        "msg": json_values,
        "usage": json_values,
        "subtype": json_values,
        "is_error": json_values,
        "total_cost_usd": json_values,
        "num_turns": json_values,
    },
)
any_line = st.one_of(
    st.text(),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    event_like.map(lambda value: json.dumps(value, allow_nan=True)),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["claude-stream-json", "codex-json", "text"]), st.lists(any_line, max_size=8))
def test_no_line_makes_a_parser_raise(output_format: str, lines: list[str]) -> None:
    parser = parser_for(output_format)
    items = [item for line in lines for item in parser.feed(line)] + parser.finish()
    for item in items:
        assert isinstance(item, Progress)
        assert item.kind in KINDS
        assert isinstance(item.text, str) and len(item.text) <= MAX_TEXT
        assert isinstance(item.data, dict)
    if not any("\n" in line[:-1] for line in lines):
        # The engine splits output into lines; each item is then one line.
        assert not any("\n" in item.text for item in items)


def test_deeply_nested_json_is_only_a_line() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert parse("codex-json", ["{\"a\": " + deep + "}"])[0].kind == "text"
