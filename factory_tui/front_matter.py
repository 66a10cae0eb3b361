"""Front matter: the keys at the top of a markdown file, and its body, as
scenario files and messages are written (and, later, documents).

Two styles are read, both with python-frontmatter's handlers: YAML between
``---`` lines, and JSON after a ``---json`` line up to a ``---`` line (the
way mcp_agent_mail writes its messages). What is wrong is said with the
line of the file it is on, so that a list of invalid files can point at it.
Also here: reading such a file from disk with a size limit, refusing links
that leave the folder they must stay in.

Pure but for ``read_limited``; nothing here knows what the keys mean.
python-frontmatter and PyYAML are imported at the first file read, not
with the module: the console's first frame reads none.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

YAML = "yaml"
JSON = "json"


class FrontMatterError(Exception):
    """What is wrong with a file's front matter, and the 1-based line it is
    on (None when no one line is to blame)."""

    def __init__(self, reason: str, line: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True, slots=True)
class FrontMatter:
    data: dict
    body: str
    key_lines: dict[str, int]  # top-level key → its 1-based line in the file
    style: str = YAML  # YAML or JSON


@dataclass(frozen=True, slots=True)
class _Parsers:
    yaml_handler: Any
    json_handler: Any
    loader: Any
    yaml_error: type[Exception]


@cache
def _parsers() -> _Parsers:
    import frontmatter

    # PyYAML ships no type information; it is python-frontmatter's own
    # parser, imported for its errors' line marks.
    import yaml  # type: ignore[import-untyped]

    class _JsonHandler(frontmatter.JSONHandler):
        """``---json`` … ``---``: python-frontmatter's own JSON handler wants
        its front matter between braces alone, which is not how these files
        are written."""

        FM_BOUNDARY = re.compile(r"^---(?:json)?[ \t]*$", re.MULTILINE)
        START_DELIMITER = "---json"
        END_DELIMITER = "---"

        def split(self, text: str) -> tuple[str, str]:
            _, fm, content = self.FM_BOUNDARY.split(text, 2)
            return fm, content

    # libyaml's loader when PyYAML was built with it: several times faster,
    # and the same safe subset (a burst of mail is thousands of front matters).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return _Parsers(frontmatter.YAMLHandler(), _JsonHandler(), loader, yaml.YAMLError)


_JSON_OPENING = re.compile(r"^---json[ \t]*$", re.MULTILINE)


def split(text: str, *, example: str = "kind: …", least: str = "kind") -> FrontMatter:
    """The front matter (parsed) and the body of ``text``. ``example`` and
    ``least`` go into the reasons: what a key looks like, and what the front
    matter needs at least. Raises ``FrontMatterError``."""
    stripped = text.strip()
    leading = text[: len(text) - len(text.lstrip())].count("\n")
    json_style = _JSON_OPENING.match(stripped) is not None
    parsers = _parsers()
    handler = parsers.json_handler if json_style else parsers.yaml_handler
    opening = handler.FM_BOUNDARY.match(stripped)
    if opening is None:
        raise FrontMatterError(
            f"no front matter: start the file with a --- line, the keys ({example}), and another ---",
            leading + 1 if stripped else None,
        )
    try:
        raw, body = handler.split(stripped)
    except ValueError:
        raise FrontMatterError("the front matter has no closing --- line", leading + 1) from None
    # The line of the file where the front matter's text starts (0-based).
    offset = leading + stripped[: opening.end()].count("\n")
    data = _load_json(raw, offset) if json_style else _load_yaml(raw, offset)
    if data is None:
        raise FrontMatterError(f"the front matter is empty: it needs at least {least}", offset + 2)
    if not isinstance(data, dict):
        raise FrontMatterError(f"the front matter must be keys and values ({example}), not a {type_name(data)}",
                               offset + 2)
    lines = _json_key_lines(raw, offset) if json_style else _key_lines(raw, offset)
    return FrontMatter(data=data, body=body.strip("\n"), key_lines=lines, style=JSON if json_style else YAML)


def _load_yaml(raw: str, offset: int) -> object:
    parsers = _parsers()
    try:
        return parsers.yaml_handler.load(raw, Loader=parsers.loader)
    except parsers.yaml_error as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        reason = f"YAML: {context}, {problem}" if context else f"YAML: {problem}"
        raise FrontMatterError(reason, offset + mark.line + 1 if mark is not None else None) from None
    except (ValueError, OverflowError) as error:  # a date such as 2026-13-40
        raise FrontMatterError(f"YAML: {error}", None) from None
    except RecursionError:
        raise FrontMatterError("YAML: nested too deeply", None) from None


def _load_json(raw: str, offset: int) -> object:
    if not raw.strip():
        return None
    try:
        return _parsers().json_handler.load(raw)
    except json.JSONDecodeError as error:
        raise FrontMatterError(f"JSON: {error.msg}", offset + error.lineno) from None
    except RecursionError:
        raise FrontMatterError("JSON: nested too deeply", None) from None


def _key_lines(raw: str, offset: int) -> dict[str, int]:
    """Where each top-level key is written (block style, as people write
    front matter); a flow-style mapping's keys have no line here."""
    lines: dict[str, int] = {}
    for number, line in enumerate(raw.split("\n")):
        match = re.match(r"""(?:(["'])(.+?)\1|([^\s#:'"][^:]*?))\s*:(?:\s|$)""", line)
        if match:
            key = match.group(2) or match.group(3)
            lines.setdefault(key, offset + number + 1)
    return lines


def _json_key_lines(raw: str, offset: int) -> dict[str, int]:
    """Where each key of a pretty-printed JSON object is (indented once)."""
    lines: dict[str, int] = {}
    for number, line in enumerate(raw.split("\n")):
        match = re.match(r'^\s{1,4}"((?:[^"\\]|\\.)*)"\s*:', line)
        if match:
            lines.setdefault(match.group(1), offset + number + 1)
    return lines


def type_name(value: object) -> str:
    """A value's type as a person writing the file would call it."""
    return {list: "list", dict: "mapping", str: "string", int: "number", float: "number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def read_limited(path: Path, *, inside: Path, limit: int, what: str,
                 inside_name: str = "the repository") -> tuple[bytes | None, str]:
    """The file's bytes, or None and why not: a link that leads out of
    ``inside`` (called ``inside_name`` in the reason), something that is
    not a regular file, or more than ``limit`` bytes (``what`` names the
    file in that reason: "a scenario file")."""
    try:
        real = path.resolve(strict=True)
        contained = real.is_relative_to(inside.resolve())
    except (OSError, RuntimeError):  # a dangling link, a link loop
        return None, "cannot be read: a broken or looping link"
    if not contained:
        return None, f"a link to a file outside {inside_name}; refused"
    try:
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_size > limit:
            return None, f"{info.st_size:,} bytes: {what} may have {_size(limit)} at most"
        with real.open("rb") as handle:
            # One byte past the limit: the file may have grown since.
            data = handle.read(limit + 1)
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"
    if len(data) > limit:
        return None, f"over {_size(limit)}: {what} may have {_size(limit)} at most"
    return data, ""


def _size(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit:,} bytes"
