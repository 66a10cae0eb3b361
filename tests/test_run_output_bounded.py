"""What the engine holds of a streaming agent's output stays bounded,
however long the run: ``RunOutput`` follows a real ``output.raw`` as it
grows (Claude Code stream-json, with tool calls whose results never come,
long tool results and a line without end) and keeps the newest progress,
a few last lines, the remembered tool calls and a partial line, never the
stream; the transcript keeps every readable line."""

from __future__ import annotations

import json

from factory_tui.backends.agent_output import MAX_REMEMBERED_CALLS
from factory_tui.backends.runs import FAILURE_LINES, RunOutput


def call(n: int) -> str:
    return json.dumps({"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": f"pytest -k case_{n}"}}]}})


def result(n: int, size: int) -> str:
    return json.dumps({"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": "x" * size, "is_error": True}]}})


def sizes(output: RunOutput) -> dict[str, int]:
    return {
        "calls": len(output.parser._calls._names),  # type: ignore[attr-defined]
        "last lines": len(output.last_lines),
        "partial": len(output.partial),
        "pending": 0 if output.pending is None else 1,
    }


def test_a_long_stream_leaves_the_run_output_bounded(tmp_path):
    raw = tmp_path / "output.raw"
    raw.write_bytes(b"")
    output = RunOutput(tmp_path, "claude-stream-json")
    seen: list[dict[str, int]] = []
    calls = 0
    with raw.open("a", encoding="utf-8") as stream:
        for _ in range(40):
            # A burst: many calls, of which only a few ever get a result,
            # and a long tool output (a test run's) on one line.
            for _ in range(50):
                calls += 1
                stream.write(call(calls) + "\n")
            stream.write(result(calls, 40_000) + "\n")
            stream.flush()
            output.read_all()
            seen.append(sizes(output))
        # A line without end, longer than the parser will hold.
        stream.write("y" * (3 << 20))
        stream.flush()
        output.read_all()
        seen.append(sizes(output))
    assert calls > 4 * MAX_REMEMBERED_CALLS
    assert max(s["calls"] for s in seen) <= MAX_REMEMBERED_CALLS
    assert max(s["last lines"] for s in seen) <= FAILURE_LINES
    assert max(s["partial"] for s in seen) <= 1 << 20
    assert max(s["pending"] for s in seen) <= 1
    # Every readable line reached the transcript: one a call, one a result.
    transcript = (tmp_path / "transcript.log").read_text(encoding="utf-8").splitlines()
    assert sum("pytest -k case_" in line for line in transcript) == calls
    # The oldest calls were forgotten by name only: their results still show.
    assert sum("tool error" in line for line in transcript) == 40
