"""A coding agent's output at a real Claude Code session's rate, for the
console's benchmarks: a real program the engine starts in the task's
worktree, as it starts ``claude -p … --output-format stream-json``.

    python benchmarks/stream_agent.py --prompt-file F

It prints Claude Code ``stream-json`` lines in bursts, the way a session
streams: a turn's text deltas and assistant messages (tens of short lines
at once), tool calls, and long tool results (a test run's output, a file
read: 10 to 60 KB on one line), then a pause while the "model" thinks.
Averaged over a run that is a few hundred lines a second, in bursts of up
to a thousand. It edits a file now and then, commits at the end, and ends
with a ``result`` line carrying cost and tokens, so the task goes to review.

Knobs (environment): ``STREAM_AGENT_SECONDS`` (default 30: how long it
streams), ``STREAM_AGENT_RATE`` (default 300: lines a second on average),
``STREAM_AGENT_SEED``, ``STREAM_AGENT_TALLY`` (a file each burst's lines
and bytes are appended to). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

WORDS = ("the", "test", "module", "function", "returns", "list", "empty", "case", "fix", "parser",
         "cache", "value", "error", "handle", "check", "sorted", "input", "output", "file", "line")
PYTEST_LINE = "tests/test_{part}.py::test_{name}_{n} PASSED                                    [{pct:3d}%]"


WRITTEN = [0]  # bytes printed so far


def emit(event: dict) -> None:
    line = json.dumps(event, ensure_ascii=False) + "\n"
    WRITTEN[0] += len(line.encode("utf-8"))
    sys.stdout.write(line)


def tally(lines: int, size: int) -> None:
    """With STREAM_AGENT_TALLY=FILE, what a burst printed is appended to
    FILE (one short line, atomic with O_APPEND): the benchmark's count of
    what every agent streamed, whatever retention does to run folders."""
    path = os.environ.get("STREAM_AGENT_TALLY")
    if path:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, f"{lines} {size}\n".encode("ascii"))
        finally:
            os.close(descriptor)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def assistant(session: str, content: list[dict]) -> dict:
    return {"type": "assistant", "session_id": session,
            "message": {"id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant",
                        "model": "stream-agent", "content": content, "stop_reason": None}}


def tool_result(session: str, call_id: str, text: str) -> dict:
    return {"type": "user", "session_id": session,
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                                     "content": text, "is_error": False}]}}


def partial(session: str, text: str) -> dict:
    # What --include-partial-messages streams: a delta per few tokens.
    return {"type": "stream_event", "session_id": session,
            "event": {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}}


def burst(rng: random.Random, session: str, cwd: Path, turn: int) -> int:
    """One turn of the session: deltas, a message, a tool call and its
    (often long) result. Returns how many lines it printed."""
    lines = 0
    for _ in range(rng.randint(20, 120)):
        emit(partial(session, " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) + " "))
        lines += 1
    emit(assistant(session, [{"type": "text", "text": sentence(rng, rng.randint(8, 40))}]))
    call_id = "toolu_" + uuid.uuid4().hex[:20]
    part = rng.choice(("parser", "cache", "api", "cli"))
    kind = rng.random()
    if kind < 0.4:
        emit(assistant(session, [{"type": "tool_use", "id": call_id, "name": "Bash",
                                  "input": {"command": f"python -m pytest -q tests/test_{part}.py"}}]))
        n = rng.randint(150, 800)
        output = "\n".join(PYTEST_LINE.format(part=part, name=rng.choice(WORDS), n=i, pct=100 * i // n)
                           for i in range(n))
    elif kind < 0.7:
        emit(assistant(session, [{"type": "tool_use", "id": call_id, "name": "Read",
                                  "input": {"file_path": str(cwd / "src" / f"{part}.py")}}]))
        output = "\n".join(f"{i:6d}\t    {sentence(rng, rng.randint(3, 12))}" for i in range(rng.randint(100, 600)))
    else:
        target = cwd / "work" / f"turn_{turn}.txt"
        target.parent.mkdir(exist_ok=True)
        target.write_text(sentence(rng, 20) + "\n", encoding="utf-8")
        emit(assistant(session, [{"type": "tool_use", "id": call_id, "name": "Edit",
                                  "input": {"file_path": str(target), "old_string": "", "new_string": "…"}}]))
        output = f"The file {target} has been updated."
    emit(tool_result(session, call_id, output))
    sys.stdout.flush()
    return lines + 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The prompt is the engine's; this agent streams whatever it asks.
    parser.add_argument("--prompt-file", type=Path)
    parser.parse_args()
    seconds = float(os.environ.get("STREAM_AGENT_SECONDS", "30"))
    rate = float(os.environ.get("STREAM_AGENT_RATE", "300"))
    rng = random.Random(os.environ.get("STREAM_AGENT_SEED") or None)
    cwd = Path.cwd()
    session = str(uuid.uuid4())
    task = os.environ.get("FACTORY_TASK", "task")
    emit({"type": "system", "subtype": "init", "cwd": str(cwd), "session_id": session,
          "model": "stream-agent", "tools": ["Bash", "Read", "Edit"]})
    started = time.monotonic()
    printed = 0
    turn = 0
    while time.monotonic() - started < seconds:
        turn += 1
        before = WRITTEN[0]
        lines = burst(rng, session, cwd, turn)
        printed += lines
        tally(lines, WRITTEN[0] - before)
        # Think until the average rate is back down to ``rate``.
        behind = printed / rate - (time.monotonic() - started)
        time.sleep(max(0.05, min(behind, seconds - (time.monotonic() - started))))
    (cwd / "work").mkdir(exist_ok=True)
    (cwd / "work" / f"{task}.txt").write_text(f"{turn} turns\n", encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=cwd, check=True)
    subprocess.run(["git", "-c", "user.name=stream agent", "-c", "user.email=stream@agent.invalid",
                    "commit", "-q", "-m", f"{task}: {turn} turns of work"], cwd=cwd, check=True)
    emit({"type": "result", "subtype": "success", "is_error": False, "num_turns": turn, "session_id": session,
          "duration_ms": int((time.monotonic() - started) * 1000), "result": f"{printed} lines in {turn} turns",
          "total_cost_usd": round(0.003 * turn, 4),
          "usage": {"input_tokens": 1200 * turn, "output_tokens": 300 * turn}})
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
