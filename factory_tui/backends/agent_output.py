"""Turning what a coding agent prints into readable progress.

This module owns the parsers for the output formats an agent profile may name
(``claude-stream-json``, ``codex-json``, ``text``): each takes the agent's
stdout one line at a time and returns ``Progress`` items, one readable line
each, with numbers (cost, tokens, turns) in ``data`` where the agent reports
them. The engine writes these to the transcript and the log; the raw stream is
kept apart, so a parser may leave out what is only noise.

Parsers never raise, whatever they are fed: output from outside is data, and a
bad line must not stop a run. A line that is not JSON becomes a ``text`` item.
Control characters are kept as they came: showing them safely is the display
layer's job (``factory_tui.text.literal``), and the transcript should say
exactly what the agent said.

``data`` keys mean the same in every item (a command's exit status is
``command_exit_code``, never the agent's ``exit_code``), so a consumer may
merge them; a ``result`` item's data holds the run's totals so far. ``input_tokens``
counts every input token the model read, cached ones included;
``cached_input_tokens`` says how many of those came from the cache.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from factory_tui.errors import FactoryError

# Longest Progress.text: one line on a screen, even a wide one.
MAX_TEXT = 500
# Tool inputs shown as JSON are cut shorter: they are a hint, not the content.
MAX_JSON_HINT = 200
# Input fields that say most about a tool call, best first.
# A search's pattern says more than where it searches, so it comes before
# path (and the path is added: "def login in src").
TOOL_DETAIL_KEYS = (
    "command",
    "file_path",
    "notebook_path",
    "pattern",
    "path",
    "url",
    "query",
)
# Ids of tool calls remembered to name the tool when its result is an error;
# bounded so that a very long run cannot grow the parser without limit.
MAX_REMEMBERED_CALLS = 256

KINDS = ("text", "tool", "tool_result", "result", "error", "system")


@dataclass(slots=True)
class Progress:
    """One readable line of an agent's progress."""

    kind: str  # text | tool | tool_result | result | error | system
    text: str
    data: dict = field(default_factory=dict)
    # What the agent itself says of its run, where it says it: "failed" (a
    # result marked is_error, a failed turn, a fatal error event) or
    # "succeeded". The last one said counts, whatever the exit status.
    outcome: str | None = None


class OutputParser(Protocol):
    def feed(self, line: str) -> list[Progress]: ...

    def finish(self) -> list[Progress]: ...


# --- helpers shared by the parsers ---------------------------------------------


def cut(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def condense(text: str, limit: int = MAX_TEXT) -> str:
    """Several lines as one: the non-blank lines joined by a space.

    Only line breaks and the blanks around them go; other control characters
    stay for the display layer to show.
    """
    # Enough of the text for ``limit`` characters of output; the rest is
    # never looked at, so a huge message costs no more than a short one.
    head = text[: limit * 4 + 64]
    lines = (part.strip(" \t\r") for part in head.split("\n"))
    return cut(" ".join(part for part in lines if part), limit)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> int | float | None:
    # bool is an int to Python, never a count to an agent.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def format_tokens(count: float) -> str:
    """12345 → ``12.3k``; small counts stay whole."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 1_000:
        return f"{count / 1_000:.1f}k"
    return f"{int(count)}"


def _format_duration(ms: float) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m {seconds:02d}s"


def _summary_parts(data: dict) -> list[str]:
    """The `` · ``-separated figures of a result line, from its data."""
    parts = []
    turns = data.get("turns")
    if turns is not None:
        parts.append(f"{turns} turn" + ("" if turns == 1 else "s"))
    if data.get("duration_ms") is not None:
        parts.append(_format_duration(data["duration_ms"]))
    if data.get("cost_usd") is not None:
        parts.append(f"${data['cost_usd']:.4f}")
    tokens_in, tokens_out = data.get("input_tokens"), data.get("output_tokens")
    if tokens_in is not None or tokens_out is not None:
        shown_in = format_tokens(tokens_in or 0)
        if data.get("cached_input_tokens"):
            shown_in += f" ({format_tokens(data['cached_input_tokens'])} cached)"
        parts.append(f"{shown_in} in / {format_tokens(tokens_out or 0)} out tokens")
    return parts


# Input fields that hold a path: shown relative to the agent's working folder.
PATH_KEYS = frozenset({"file_path", "notebook_path", "path"})


def _tool_detail(tool_input: Any, cwd: str | None = None) -> str:
    """The most telling part of a tool call's input, on one line; a path
    under ``cwd`` (the worktree) is shown relative to it."""
    if isinstance(tool_input, dict):
        for key in TOOL_DETAIL_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value.strip():
                if key in PATH_KEYS:
                    value = _relative(value, cwd)
                elif key == "pattern" and isinstance(tool_input.get("path"), str):
                    value = f"{value} in {_relative(tool_input['path'], cwd)}"
                return condense(value)
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                return condense(shlex.join(value))
        if not tool_input:
            return ""
    elif tool_input is None:
        return ""
    try:
        hint = json.dumps(tool_input, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):  # pragma: no cover - parsed JSON always dumps
        hint = repr(tool_input)
    return cut(hint, MAX_JSON_HINT)


def _relative(path: str, cwd: str | None) -> str:
    root = (cwd or "").rstrip("/")
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :] or path
    return path


def _tool_line(name: str, detail: str) -> str:
    return cut(f"{name}: {detail}" if detail else name)


def _content_text(content: Any) -> str:
    """A tool result's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    texts = []
    for block in _list(content):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block, str):
            texts.append(block)
    return "\n".join(texts)


def _json_object(line: str) -> dict | None:
    """The line as a JSON object, or None when it is anything else."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _as_line(line: Any) -> str:
    if isinstance(line, str):
        text = line
    elif isinstance(line, (bytes, bytearray)):
        text = bytes(line).decode("utf-8", errors="replace")
    else:
        text = str(line)
    # Only the line ending goes; everything else is the agent's.
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    return text


class _JsonLinesParser:
    """What the JSON formats share: a line that is not a JSON object is shown
    as text, and nothing a line holds can make ``feed`` raise."""

    def feed(self, line: str) -> list[Progress]:
        try:
            text = _as_line(line)
            if not text.strip():
                return []
            event = _json_object(text)
            if event is None:
                return [Progress("text", cut(text))]
            return [item for item in self._event(event) if item is not None]
        except Exception:  # noqa: BLE001
            # A shape this parser did not foresee is still only a line of
            # output: show it rather than lose the run over it.
            return [Progress("text", cut(_safe_str(line)))]

    def finish(self) -> list[Progress]:
        try:
            return self._finish()
        except Exception:  # noqa: BLE001 - same reason as in feed
            return []

    def _event(self, event: dict) -> list[Progress | None]:  # pragma: no cover
        raise NotImplementedError

    def _finish(self) -> list[Progress]:
        return []


def _safe_str(line: Any) -> str:
    try:
        return _as_line(line)
    except Exception:  # noqa: BLE001 - a str() that raises is still no reason to
        return "<unreadable line>"


class _RememberedCalls:
    """Tool call id → tool name, for the few calls still awaiting a result."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def add(self, call_id: Any, name: str) -> None:
        if not isinstance(call_id, str):
            return
        if len(self._names) >= MAX_REMEMBERED_CALLS:
            self._names.pop(next(iter(self._names)))
        self._names[call_id] = name

    def pop(self, call_id: Any) -> str | None:
        return self._names.pop(call_id, None) if isinstance(call_id, str) else None


# --- Claude Code: claude -p --output-format stream-json --verbose -------------


class ClaudeStreamParser(_JsonLinesParser):
    """``claude -p --output-format stream-json --verbose``."""

    def __init__(self) -> None:
        self._calls = _RememberedCalls()
        # The agent's working folder, from its init line: paths under it are
        # shown short ("src/app.py", not the worktree's whole path).
        self._cwd: str | None = None

    def _event(self, event: dict) -> list[Progress | None]:
        kind = event.get("type")
        if kind == "assistant":
            return self._assistant(_dict(event.get("message")))
        if kind == "user":
            return self._tool_results(_dict(event.get("message")))
        if kind == "result":
            return [self._result(event)]
        if kind == "system":
            if event.get("subtype") == "init" and _str(event.get("cwd")):
                self._cwd = event["cwd"]
            return [self._system(event)]
        # stream_event (partial messages) and anything newer: not progress.
        return []

    def _assistant(self, message: dict) -> list[Progress | None]:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        items: list[Progress | None] = []
        for block in _list(content):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                text = condense(_str(block.get("text")) or "")
                if text:
                    items.append(Progress("text", text))
            elif block.get("type") in ("tool_use", "server_tool_use"):
                name = _str(block.get("name")) or "tool"
                self._calls.add(block.get("id"), name)
                items.append(
                    Progress(
                        "tool",
                        _tool_line(name, _tool_detail(block.get("input"), self._cwd)),
                        {"tool": cut(name)},
                    )
                )
            # thinking blocks are the model's scratch work, not progress.
        return items

    def _tool_results(self, message: dict) -> list[Progress | None]:
        items: list[Progress | None] = []
        for block in _list(message.get("content")):
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            name = self._calls.pop(block.get("tool_use_id"))
            # A successful result is the tool's whole output: far too noisy
            # for a progress line, and kept in the raw stream anyway.
            if block.get("is_error") is not True:
                continue
            detail = condense(_content_text(block.get("content"))) or "(no message)"
            data = {"tool": cut(name)} if name else {}
            items.append(Progress("tool_result", cut(f"tool error: {detail}"), data))
        return items

    def _result(self, event: dict) -> Progress:
        data: dict = {}
        subtype = _str(event.get("subtype"))
        if subtype:
            data["subtype"] = cut(subtype)
        cost = _number(event.get("total_cost_usd"))
        if cost is None:
            cost = _number(event.get("cost_usd"))
        if cost is not None:
            data["cost_usd"] = cost
        usage = _dict(event.get("usage"))
        counts = [
            _number(usage.get(key))
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if any(count is not None for count in counts):
            data["input_tokens"] = sum(count or 0 for count in counts)
        if counts[2]:
            data["cached_input_tokens"] = counts[2]
        output_tokens = _number(usage.get("output_tokens"))
        if output_tokens is not None:
            data["output_tokens"] = output_tokens
        for source, key in (("num_turns", "turns"), ("duration_ms", "duration_ms")):
            value = _number(event.get(source))
            if value is not None:
                data[key] = value
        failed = event.get("is_error") is True or (subtype or "").startswith("error")
        parts = [("failed: " if failed else "finished: ") + (subtype or "unknown")]
        parts += _summary_parts(data)
        if failed:
            reason = self._failure_reason(event)
            if reason:
                parts.append(reason)
        return Progress(
            "error" if failed else "result", cut(" · ".join(parts)), data,
            outcome="failed" if failed else "succeeded",
        )

    @staticmethod
    def _failure_reason(event: dict) -> str:
        reason = _str(event.get("result"))
        if not reason:
            errors = [e for e in _list(event.get("errors")) if isinstance(e, str)]
            reason = "; ".join(errors)
        return condense(reason or "", 300)

    @staticmethod
    def _system(event: dict) -> Progress | None:
        subtype = event.get("subtype")
        if subtype == "init":
            data = {}
            for key in ("model", "session_id"):
                value = _str(event.get(key))
                if value:
                    data[key] = cut(value)
            model = data.get("model")
            return Progress(
                "system", cut(f"session started (model {model})" if model else "session started"), data
            )
        if subtype == "compact_boundary":
            return Progress("system", "context compacted")
        # Hook and status chatter: not the operator's concern.
        return None


# --- Codex: codex exec --json ---------------------------------------------------


def _shell_command(command: Any) -> str:
    """A command as the operator would type it: ``bash -lc 'pytest -q'`` shows
    as ``pytest -q``, an argv list as a shell line."""
    if isinstance(command, list):
        words = [w for w in command if isinstance(w, str)]
    elif isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError:
            return condense(command)
    else:
        return ""
    if (
        len(words) == 3
        and words[0].rsplit("/", 1)[-1] in ("bash", "sh", "zsh")
        and words[1] in ("-c", "-lc")
    ):
        return condense(words[2])
    if isinstance(command, str):
        return condense(command)
    return condense(shlex.join(words))


def _last_line(text: str) -> str:
    """The last non-blank line of a command's output: usually the verdict."""
    tail = text[-(MAX_TEXT * 4) :]
    for line in reversed(tail.split("\n")):
        if line.strip(" \t\r"):
            return cut(line.strip(" \t\r"), 300)
    return ""


class CodexJsonParser(_JsonLinesParser):
    """``codex exec --json``: thread/turn/item events, and defensively the
    older ``{"id": …, "msg": {…}}`` shape."""

    def __init__(self) -> None:
        # Ordered, so that the oldest is forgotten first when it is full.
        self._started_commands: dict[str, None] = {}
        # Counts as the agent reports them: _number lets a float through.
        self._totals: dict[str, int | float] = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
        self._turns = 0
        # The older shape reports tokens as it goes and the end separately;
        # the last count waits for the end (or for finish).
        self._pending_count: dict | None = None

    def _event(self, event: dict) -> list[Progress | None]:
        if isinstance(event.get("msg"), dict):
            return self._legacy(event["msg"])
        kind = event.get("type")
        item = _dict(event.get("item"))
        if kind == "item.started":
            return [self._item_started(item)]
        if kind == "item.completed":
            return [self._item_completed(item)]
        if kind == "turn.completed":
            return [self._turn_completed(_dict(event.get("usage")))]
        if kind == "turn.failed":
            message = _str(_dict(event.get("error")).get("message")) or "(no message)"
            return [Progress("error", cut(f"turn failed: {condense(message)}"), outcome="failed")]
        if kind == "error":
            # A top-level error event ends the thread (an error *item* is a
            # passing complaint and is not an outcome).
            message = _str(event.get("message")) or "(no message)"
            return [Progress("error", cut(f"error: {condense(message)}"), outcome="failed")]
        if kind == "thread.started":
            thread = _str(event.get("thread_id"))
            data = {"session_id": cut(thread)} if thread else {}
            return [Progress("system", "session started", data)]
        # turn.started, item.updated (a stream of partial states) and newer
        # event types are not progress.
        return []

    def _item_started(self, item: dict) -> Progress | None:
        if item.get("type") != "command_execution":
            return None
        item_id = item.get("id")
        if isinstance(item_id, str):
            if len(self._started_commands) >= MAX_REMEMBERED_CALLS:
                self._started_commands.pop(next(iter(self._started_commands)))
            self._started_commands[item_id] = None
        return self._command_line(item)

    @staticmethod
    def _command_line(item: dict) -> Progress:
        return Progress("tool", _tool_line("shell", _shell_command(item.get("command"))), {"tool": "shell"})

    def _item_completed(self, item: dict) -> Progress | None:
        kind = item.get("type")
        if kind == "agent_message":
            text = condense(_str(item.get("text")) or "")
            return Progress("text", text) if text else None
        if kind == "command_execution":
            return self._command_completed(item)
        if kind == "file_change":
            return self._file_change(item)
        if kind == "mcp_tool_call":
            return self._mcp_call(item)
        if kind == "web_search":
            query = condense(_str(item.get("query")) or "")
            return Progress("tool", _tool_line("web search", query), {"tool": "web_search"})
        if kind == "todo_list":
            return self._todo_list(_list(item.get("items")))
        if kind == "error":
            message = condense(_str(item.get("message")) or "") or "(no message)"
            return Progress("error", cut(f"error: {message}"))
        # reasoning: the model's scratch work, as with Claude's thinking.
        return None

    def _command_completed(self, item: dict) -> Progress | None:
        item_id = item.get("id")
        seen = False
        if isinstance(item_id, str) and item_id in self._started_commands:
            del self._started_commands[item_id]
            seen = True
        exit_code = _number(item.get("exit_code"))
        failed = item.get("status") in ("failed", "declined") or (
            exit_code is not None and exit_code != 0
        )
        if not failed:
            # Shown when it started; a command seen only now is shown now.
            return None if seen else self._command_line(item)
        output = _last_line(_str(item.get("aggregated_output")) or "")
        code = f"exit {exit_code}" if exit_code is not None else _str(item.get("status")) or "failed"
        command = _shell_command(item.get("command"))
        text = f"command failed ({code}): {command}" + (f" · {output}" if output else "")
        data: dict = {"tool": "shell"}
        if exit_code is not None:
            data["command_exit_code"] = exit_code
        return Progress("tool_result", cut(text), data)

    @staticmethod
    def _file_change(item: dict) -> Progress:
        changes = []
        for change in _list(item.get("changes")):
            change = _dict(change)
            path = _str(change.get("path"))
            if path:
                verb = _str(change.get("kind"))
                changes.append(f"{verb} {path}" if verb else path)
        detail = condense(", ".join(changes))
        if item.get("status") == "failed":
            return Progress("tool_result", cut(f"patch failed: {detail or '(no files)'}"), {"tool": "patch"})
        return Progress("tool", _tool_line("patch", detail), {"tool": "patch"})

    @staticmethod
    def _mcp_call(item: dict) -> Progress:
        server, tool = _str(item.get("server")) or "?", _str(item.get("tool")) or "?"
        name = cut(f"{server}/{tool}", 200)
        error = item.get("error")
        if item.get("status") == "failed" or error:
            message = _str(_dict(error).get("message")) or _str(error) or "failed"
            return Progress("tool_result", cut(f"tool error: {name}: {condense(message)}"), {"tool": name})
        detail = _tool_detail(item.get("arguments")) if item.get("arguments") else ""
        return Progress("tool", _tool_line(f"mcp {name}", detail), {"tool": name})

    @staticmethod
    def _todo_list(items: list) -> Progress | None:
        entries = [_dict(entry) for entry in items]
        if not entries:
            return None
        done = sum(1 for entry in entries if entry.get("completed") is True)
        text = f"todo: {done}/{len(entries)} done"
        upcoming = next(
            (_str(e.get("text")) for e in entries if e.get("completed") is not True and _str(e.get("text"))),
            None,
        )
        if upcoming:
            text += f" · next: {condense(upcoming)}"
        return Progress("tool", cut(text), {"tool": "todo_list"})

    def _turn_completed(self, usage: dict) -> Progress:
        self._turns += 1
        for key in self._totals:
            value = _number(usage.get(key))
            if value is not None:
                self._totals[key] += value
        return self._result_item("turn completed", outcome="succeeded")

    def _result_item(self, label: str, *, outcome: str | None = None) -> Progress:
        data = {key: value for key, value in self._totals.items() if value or key != "cached_input_tokens"}
        data["turns"] = self._turns
        return Progress("result", cut(" · ".join([label, *_summary_parts(data)])), data, outcome=outcome)

    # The older event shape (codex exec --json before the thread/item events).
    def _legacy(self, msg: dict) -> list[Progress | None]:
        kind = msg.get("type")
        if kind == "agent_message":
            text = condense(_str(msg.get("message")) or "")
            return [Progress("text", text)] if text else []
        if kind == "exec_command_begin":
            return [self._command_line(msg)]
        if kind == "exec_command_end":
            exit_code = _number(msg.get("exit_code"))
            if exit_code in (None, 0):
                return []
            output = _str(msg.get("aggregated_output")) or _str(msg.get("stderr")) or _str(msg.get("stdout")) or ""
            last = _last_line(output)
            text = f"command failed (exit {exit_code})" + (f" · {last}" if last else "")
            return [Progress("tool_result", cut(text), {"tool": "shell", "command_exit_code": exit_code})]
        if kind == "patch_apply_begin":
            paths = [p for p in _dict(msg.get("changes")) if isinstance(p, str)]
            return [Progress("tool", _tool_line("patch", condense(", ".join(paths))), {"tool": "patch"})]
        if kind == "token_count":
            # Newer builds nest the totals under info.total_token_usage.
            usage = _dict(_dict(msg.get("info")).get("total_token_usage")) or msg
            self._pending_count = {
                key: _number(usage.get(key)) for key in self._totals
            }
            return []
        if kind == "task_complete":
            return [self._legacy_result(outcome="succeeded")]
        if kind in ("error", "stream_error"):
            message = _str(msg.get("message")) or "(no message)"
            # stream_error is a retry in progress; error ends the task.
            outcome = "failed" if kind == "error" else None
            return [Progress("error", cut(f"error: {condense(message)}"), outcome=outcome)]
        if kind == "session_configured":
            model = _str(msg.get("model"))
            return [
                Progress(
                    "system",
                    cut(f"session started (model {model})" if model else "session started"),
                    {"model": cut(model)} if model else {},
                )
            ]
        return []

    def _legacy_result(self, *, outcome: str | None = None) -> Progress:
        self._turns += 1
        if self._pending_count is not None:
            # token_count reports running totals, not increments.
            for key, value in self._pending_count.items():
                if value is not None:
                    self._totals[key] = value
            self._pending_count = None
        return self._result_item("turn completed", outcome=outcome)

    def _finish(self) -> list[Progress]:
        if self._pending_count is None:
            return []
        return [self._legacy_result()]


# --- plain text -------------------------------------------------------------------


class TextParser:
    """Plain output: every line is a ``text`` item as it is (cut to length)."""

    def feed(self, line: str) -> list[Progress]:
        return [Progress("text", cut(_safe_str(line)))]

    def finish(self) -> list[Progress]:
        return []


PARSERS: dict[str, Callable[[], OutputParser]] = {
    "claude-stream-json": ClaudeStreamParser,
    "codex-json": CodexJsonParser,
    "text": TextParser,
}


def parser_for(output_format: str) -> OutputParser:
    """A fresh parser for one run's output in ``output_format``."""
    factory = PARSERS.get(output_format) if isinstance(output_format, str) else None
    if factory is None:
        known = ", ".join(PARSERS)
        raise FactoryError(f"unknown agent output format {output_format!r} (known: {known})")
    return factory()
