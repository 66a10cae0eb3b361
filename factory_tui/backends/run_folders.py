"""Run folders as files: which folders under ``runs/`` are runs, what each
file of one is, and reading a run's own small records safely.

    runs/<task>/<folder>/        <folder>: the attempt (``2``), or a run the
                                 engine set aside (``2.stopped``, ``2.stopped-3``)
                                 or found from an earlier plan (``2.earlier-<ns>``)
        prompt.md, transcript.log, output.raw (or output.raw.gz), diff.stat,
        run.json, exit.json, exit.code, agent.pid, qa/<stamp>-<scenario>/…

(backends/runs.py writes the run's files, the engine ``diff.stat``, QA its
outputs; ``FactoryBase`` is the one home of the paths.)

An agent may write into its run folder (it knows ``FACTORY_RUN``), so
nothing here trusts what it finds: a symbolic link is listed and never
followed, a FIFO or device is listed and never opened, a record file is read
only when it is a small regular file, and a name that is not UTF-8 is shown
with replacement characters.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory_tui.artifacts_model import FileKind, FileState, RunFile

RAW = "output.raw"
RAW_GZ = "output.raw.gz"
# Where a compression writes before its file is renamed into place.
RAW_GZ_TEMPORARY = ".output.raw.gz.tmp"
DIFF_STAT = "diff.stat"
PROMPT = "prompt.md"
TRANSCRIPT = "transcript.log"
RECORD_FILES = frozenset({"run.json", "exit.json", "exit.code", "agent.pid"})
QA_FOLDER = "qa"
# Records are a few hundred bytes; anything far larger is not ours.
RECORD_LIMIT = 1 << 20
# A folder an agent filled with files is listed this far (QA folders hold a
# handful each).
FILE_LIMIT = 2000
DEPTH_LIMIT = 3

_TASK_FOLDER = re.compile(r"T-[1-9][0-9]{0,8}")
_RUN_FOLDER = re.compile(r"([1-9][0-9]{0,8})(?:\.(?:stopped(?:-[0-9]+)?|earlier-[0-9]+))?")


def attempt_of(folder: str) -> int | None:
    """The attempt a run folder's name says (``2``, ``2.stopped``), or None
    for a name that is no run folder."""
    match = _RUN_FOLDER.fullmatch(folder)
    return int(match.group(1)) if match else None


def is_task_folder(name: str) -> bool:
    return _TASK_FOLDER.fullmatch(name) is not None


def file_kind(name: str) -> FileKind:
    """What a file of a run folder is, by its path in the folder."""
    if name.startswith(QA_FOLDER + "/"):
        return FileKind.QA
    if name == PROMPT:
        return FileKind.PROMPT
    if name == TRANSCRIPT:
        return FileKind.TRANSCRIPT
    if name in (RAW, RAW_GZ):
        return FileKind.RAW
    if name == DIFF_STAT:
        return FileKind.DIFF
    if name in RECORD_FILES:
        return FileKind.RECORD
    return FileKind.OTHER


def agent_of(argv: object) -> str | None:
    """The program a profile's argv runs, in a word: its first word's name,
    or the module of ``python -m MODULE``."""
    if not isinstance(argv, list) or not argv or not all(isinstance(part, str) for part in argv):
        return None
    program = os.path.basename(argv[0]) or argv[0]
    if re.fullmatch(r"python[0-9.]*", program) and len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return program


def display_name(name: str) -> str:
    """A file name fit for the log and a screen: bytes that are not UTF-8
    become U+FFFD (the log cannot hold them, and a screen cannot show them)."""
    return os.fsencode(name).decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class FolderFile:
    """A file of a run folder: as listed, and where it really is."""

    file: RunFile
    path: Path


@dataclass(frozen=True, slots=True)
class RunFolder:
    """A run's folder on disk (``where``: its path, as a string: a look
    over 10,000 runs makes no Path it does not need)."""

    task_id: str
    folder: str
    attempt: int
    where: str

    @property
    def path(self) -> Path:
        return Path(self.where)


def run_folders(runs_dir: Path, task_id: str | None = None) -> list[RunFolder]:
    """The run folders under ``runs_dir`` (of one task): real folders
    only, never a link to one, in no order. One directory listing per task
    (the entries' types come with them: no stat)."""
    found: list[RunFolder] = []
    if task_id is not None:
        tasks = [task_id] if _is_real_dir(runs_dir / task_id) else []
    else:
        tasks = [entry.name for entry in _entries(str(runs_dir)) if entry.is_dir(follow_symlinks=False)]
    for task in tasks:
        if not is_task_folder(task):
            continue
        task_dir = os.path.join(runs_dir, task)
        for entry in _entries(task_dir):
            attempt = attempt_of(entry.name)
            if attempt is not None and entry.is_dir(follow_symlinks=False):
                found.append(RunFolder(task, entry.name, attempt, entry.path))
    return found


def _entries(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _walk(folder: Path, prefix: str, depth: int) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry under ``folder`` (name from the run folder, path, lstat),
    directories descended into only when they are real ones."""
    try:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in listed:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        name = prefix + entry.name
        if stat.S_ISDIR(info.st_mode):
            if depth < DEPTH_LIMIT:
                yield from _walk(Path(entry.path), name + "/", depth + 1)
            continue
        yield name, Path(entry.path), info


def _is_temporary(name: str) -> bool:
    # A writer's file on its way into place (``.run.json.tmp``, the
    # compression's ``.output.raw.gz.tmp``): not a file of the run yet.
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".tmp")


def list_files(run_dir: Path, root: Path) -> list[FolderFile]:
    """The files of a run folder, as the index lists them. The raw output
    is one entry, ``output.raw``, whether whole or compressed (both on disk:
    a compression was cut short after its file was in place, and the whole
    one is listed)."""
    files: list[FolderFile] = []
    seen = 0
    raw: FolderFile | None = None
    compressed: FolderFile | None = None
    taken: set[str] = set()
    for name, path, info in _walk(run_dir, "", 1):
        if _is_temporary(name):
            continue
        seen += 1
        if seen > FILE_LIMIT:
            break
        if stat.S_ISLNK(info.st_mode):
            state, size = FileState.LINK, 0
        elif not stat.S_ISREG(info.st_mode):
            state, size = FileState.SPECIAL, 0
        else:
            state, size = FileState.KEPT, info.st_size
        shown = display_name(name)
        if shown in taken:
            # Two names that differ only in bytes that are not UTF-8 show
            # alike: the second is told apart (and still found by it).
            shown = next(f"{shown} ({n})" for n in range(2, FILE_LIMIT + 2) if f"{shown} ({n})" not in taken)
        taken.add(shown)
        where = _relative(path, root)
        if name == RAW_GZ and state is FileState.KEPT:
            compressed = FolderFile(RunFile(RAW, FileKind.RAW, size, FileState.COMPRESSED, where), path)
            continue
        item = FolderFile(RunFile(shown, file_kind(name), size, state, where), path)
        if name == RAW:
            raw = item
            continue
        files.append(item)
    if raw is not None and (raw.file.state is not FileState.LINK or compressed is None):
        files.append(raw)
    elif compressed is not None:
        files.append(compressed)
    files.sort(key=lambda item: item.file.name)
    return files


def _relative(path: Path, root: Path) -> str:
    try:
        return display_name(str(path.relative_to(root)))
    except ValueError:
        return display_name(str(path))


def read_record(path: Path) -> dict | None:
    """A run's JSON record (run.json, exit.json), or None: missing, a link,
    not a regular file, too large, or not a JSON object."""
    data = read_small(path)
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_small(path: Path, limit: int = RECORD_LIMIT) -> bytes | None:
    """A small regular file's bytes, read without following a link or
    waiting on a FIFO; None for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return os.read(fd, limit + 1)[:limit]
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path: Path) -> int | None:
    data = read_small(path, 64)
    try:
        return int(data.decode("ascii").strip()) if data is not None else None
    except (UnicodeDecodeError, ValueError):
        return None


def mtime(path: Path) -> float | None:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return None
