"""Finding and reading a plan kept by another tool, for ``factory plan
import PATH``: which tool's it is, from the path given or ``--from``, and
its files read whole, then handed to that tool's reader (plan_formats/).

What the path may be:

* a file: ``*.jsonl`` is beads', ``*.json`` Task Master's, a ``.md`` in a
  Backlog.md ``tasks``/``completed`` folder one Backlog.md task, any
  other file a markdown checklist (ours);
* a folder: ``.beads/``, ``backlog/`` or ``.taskmaster/`` itself, or a
  repository root holding exactly one of them (several: name one with
  ``--from``).

Only regular files are read (a FIFO or a device is refused before it is
opened, so that nothing waits on it), each within a size limit; files
found inside a Backlog.md folder may not be links that lead out of it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from factory_tui.errors import FactoryError
from factory_tui.front_matter import read_limited
from factory_tui.plan_formats import backlog, beads, taskmaster
from factory_tui.plan_formats.records import Kind, SourceBatch, SourceError, SourceRecord, check_batch, decode_lines

MARKDOWN = "markdown"
KINDS = (Kind.BEADS.value, Kind.BACKLOG.value, Kind.TASKMASTER.value, MARKDOWN)

# Big enough for any real plan, small enough that a wrong file (a disk
# image named issues.jsonl) is refused instead of read into memory.
BEADS_LIMIT = 256 * 1024 * 1024
LINE_LIMIT = 1024 * 1024
TASKMASTER_LIMIT = 64 * 1024 * 1024
BACKLOG_FILE_LIMIT = 1024 * 1024
CONFIG_LIMIT = 64 * 1024

BEADS_FILES = ("issues.jsonl", "beads.jsonl")
TASKMASTER_FILES = (Path(".taskmaster/tasks/tasks.json"), Path("tasks/tasks.json"))
_BACKLOG_TASK_FILE = re.compile(r"^[A-Za-z]+-\d+(?:\.\d+)*\b.*\.md$")


@dataclass(frozen=True, slots=True)
class Found:
    """What to read: a tool's (or our markdown) file, or Backlog.md's folder."""

    kind: str
    path: Path


def shown(path: Path) -> str:
    """A path as the user may recognise it, fit to be stored (undecodable
    bytes of a file name become �)."""
    return os.fsdecode(os.path.normpath(path)).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def detect(path: Path, named: str | None) -> Found:
    """Which tool's plan ``path`` is (or ``named`` says), and its file or
    folder. FactoryError naming the path when there is none to read."""
    if not path.exists():
        raise FactoryError(f"no such file: {shown(path)}")
    if not path.is_dir():
        return Found(named or _kind_of_file(path), path)
    if named == MARKDOWN:
        raise FactoryError(f"{shown(path)} is a directory: a markdown checklist is a file")
    if named is not None:
        found = _in_folder(path, Kind(named))
        if found is None:
            raise FactoryError(f"no {named} plan in {shown(path)} ({_where_looked(Kind(named))})")
        return found
    for kind in Kind:
        if path.name == _own_folder(kind):
            found = _in_folder(path, kind)
            if found is not None:
                return found
    candidates = [found for kind in Kind if (found := _in_folder(path, kind, at_root=True)) is not None]
    if not candidates:
        raise FactoryError(
            f"{shown(path)} is a directory without a plan in it (no .beads/issues.jsonl, backlog/ "
            "or .taskmaster/tasks/tasks.json): name a file, or the tool with --from"
        )
    if len(candidates) > 1:
        names = " and ".join(found.kind for found in candidates)
        raise FactoryError(f"{shown(path)} holds plans of {names}: name one with --from")
    return candidates[0]


def _own_folder(kind: Kind) -> str:
    return {Kind.BEADS: ".beads", Kind.BACKLOG: "backlog", Kind.TASKMASTER: ".taskmaster"}[kind]


def _where_looked(kind: Kind) -> str:
    return {
        Kind.BEADS: "looked for .beads/issues.jsonl",
        Kind.BACKLOG: "looked for backlog/tasks/",
        Kind.TASKMASTER: "looked for .taskmaster/tasks/tasks.json",
    }[kind]


def _kind_of_file(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return Kind.BEADS.value
    if name.endswith(".json"):
        return Kind.TASKMASTER.value
    if name.endswith(".md") and path.parent.name in ("tasks", "completed") and path.parent.parent.name == "backlog":
        return Kind.BACKLOG.value
    return MARKDOWN


def _in_folder(folder: Path, kind: Kind, *, at_root: bool = False) -> Found | None:
    """The tool's file (or folder) in ``folder``, which is the tool's own
    folder or (``at_root``, or not found inside) the repository root."""
    if kind is Kind.BEADS:
        for base in ([folder / ".beads"] if at_root else [folder, folder / ".beads"]):
            for name in BEADS_FILES:
                if (base / name).is_file():
                    return Found(kind.value, base / name)
        return None
    if kind is Kind.TASKMASTER:
        choices = [folder / relative for relative in TASKMASTER_FILES]
        if not at_root:
            choices[:0] = [folder / "tasks" / "tasks.json", folder / "tasks.json"]
        else:
            choices = choices[:1]
        return next((Found(kind.value, choice) for choice in choices if choice.is_file()), None)
    for base in ([folder / "backlog"] if at_root else [folder, folder / "backlog"]):
        if (base / "tasks").is_dir() or (base / "completed").is_dir():
            return Found(kind.value, base)
    return None


def read_file(path: Path, limit: int | None = None) -> bytes:
    """A file the user named: its bytes, or FactoryError saying why not. A
    FIFO or device is refused before it is opened."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FactoryError(f"no such file: {shown(path)}") from None
    except OSError as error:
        raise FactoryError(f"cannot read {shown(path)}: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise FactoryError(f"{shown(path)} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise FactoryError(f"cannot read {shown(path)}: not a regular file")
    if limit is not None and info.st_size > limit:
        raise FactoryError(f"{shown(path)} has {info.st_size:,} bytes; a plan may have {limit:,} at most")
    try:
        with path.open("rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as error:
        raise FactoryError(f"cannot read {shown(path)}: {error.strerror}") from None
    if limit is not None and len(data) > limit:
        raise FactoryError(f"{shown(path)} has over {limit:,} bytes; a plan may have {limit:,} at most")
    return data


def read_batch(found: Found, *, data: bytes | None = None, tag: str | None = None) -> SourceBatch:
    """The records of another tool's plan, checked as far as can be
    without the log (plan_formats.records.check_batch). ``data``: the
    bytes already read (standard input)."""
    kind = Kind(found.kind)
    name = "standard input" if data is not None else shown(found.path)
    if kind is Kind.BEADS:
        raw = data if data is not None else read_file(found.path, BEADS_LIMIT)
        records = beads.parse_beads(decode_lines(raw, name, max_line=LINE_LIMIT), name)
        batch = SourceBatch(kind, records)
    elif kind is Kind.TASKMASTER:
        raw = data if data is not None else read_file(found.path, TASKMASTER_LIMIT)
        records = taskmaster.parse_taskmaster(decode_lines(raw, name, max_line=TASKMASTER_LIMIT), name, tag)
        batch = SourceBatch(kind, records)
    elif data is not None or found.path.is_file():
        raw = data if data is not None else read_file(found.path, BACKLOG_FILE_LIMIT)
        config = _backlog_config(found.path.parent.parent if data is None else None)
        text = decode_lines(raw, name, max_line=BACKLOG_FILE_LIMIT)
        batch = SourceBatch(kind, [backlog.parse_task(text, name, config)])
    else:
        batch = _read_backlog(found.path)
    if not batch.records:
        raise SourceError(name, f"no {_tool_name(kind)} tasks in it")
    check_batch(batch)
    return batch


def _tool_name(kind: Kind) -> str:
    return {Kind.BEADS: "beads", Kind.BACKLOG: "Backlog.md", Kind.TASKMASTER: "Task Master"}[kind]


def _backlog_config(root: Path | None) -> backlog.BacklogConfig:
    if root is None:
        return backlog.BacklogConfig()
    path = root / "config.yml"
    if not path.is_file():
        return backlog.BacklogConfig()
    data, why = read_limited(path, inside=root, limit=CONFIG_LIMIT, what="a Backlog.md config", inside_name="backlog/")
    if data is None:
        raise SourceError(shown(path), why)
    return backlog.parse_config(decode_lines(data, shown(path), max_line=CONFIG_LIMIT), shown(path))


def _read_backlog(root: Path) -> SourceBatch:
    """Every task of ``backlog/tasks/`` and ``backlog/completed/``, in id
    order; the ids of ``backlog/archive/tasks/`` as gone."""
    config = _backlog_config(root)
    records: list[SourceRecord] = []
    for folder in (root / "tasks", root / "completed"):
        for path in _task_files(folder):
            data, why = read_limited(path, inside=root, limit=BACKLOG_FILE_LIMIT, what="a task file", inside_name="backlog/")
            if data is None:
                raise SourceError(shown(path), why)
            text = decode_lines(data, shown(path), max_line=BACKLOG_FILE_LIMIT)
            records.append(backlog.parse_task(text, shown(path), config))
    records.sort(key=lambda record: _id_order(record.source_id))
    backlog.follow_renamed_prefix(records, config.prefix)
    gone = {
        found for path in _task_files(root / "archive" / "tasks")
        if (found := backlog.archived_id(path.name)) is not None
    }
    return SourceBatch(Kind.BACKLOG, records, frozenset(gone - {record.source_id for record in records}))


def _task_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as error:
        raise FactoryError(f"cannot read {shown(folder)}: {error.strerror}") from None
    return [path for path in entries if _BACKLOG_TASK_FILE.match(path.name)]


def _id_order(source_id: str) -> tuple[str, tuple[int, ...]]:
    prefix, _, number = source_id.partition("-")
    return prefix, tuple(int(part) for part in number.split("."))
