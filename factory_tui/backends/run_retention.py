"""Retention of run artifacts: ``[artifacts] keep_runs`` and ``old_raw``.

The newest ``keep_runs`` runs of the base (by when they started) keep every
file whole; the raw output of older ones is compressed (``output.raw`` →
``output.raw.gz``) or dropped, as ``old_raw`` says. The transcript, the
prompt, the record files, the diff summary and QA outputs are always kept.
A run whose task holds a lease (running, or checking), or that any live
process still names (an agent, its children, a QA command), is never
touched, whatever its age.

A compression is whole or not at all: the ``.gz`` is written aside
(``.output.raw.gz.tmp``), synced, renamed into place, and only then is the
raw output removed. A process killed between the rename and the removal
leaves both (a reader takes the whole raw output, never both); the next
collection compares the two and finishes the job. A full disk leaves the
raw output whole and no temporary file behind. One collection runs at a
time in a base (``.factory/runs.lock``): the engine's, after each run ends,
gives way to an operator's ``factory artifacts gc``.

``plan_retention`` decides (pure); ``collect`` looks at the disk, plans,
and (unless asked for the plan alone) does it.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from factory_tui.artifacts_model import FileKind, FileState, RunOutcome
from factory_tui.backends import faults, processes
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import PathLock, wait_seconds
from factory_tui.backends.run_folders import RAW, RAW_GZ, RAW_GZ_TEMPORARY
from factory_tui.backends.run_index import index_folders
from factory_tui.backends.run_log import RetentionRow
from factory_tui.errors import FactoryError, LogError, os_error_text

LOCK_NAME = "runs.lock"
CHUNK = 1 << 20
# Fast enough for hundreds of megabytes a second of agent output, and most
# of what the best level would save.
COMPRESS_LEVEL = 6


class Step(StrEnum):
    COMPRESS = "compress"
    DROP = "drop"
    # A compression cut short after its .gz was in place: both are on disk.
    FINISH = "finish"
    # Both on disk in a run that keeps its files whole: the copy goes.
    UNDO = "undo"
    # A compression's temporary file, left by a collection that was killed.
    TIDY = "tidy"


@dataclass(frozen=True, slots=True)
class RawOnDisk:
    """A run's raw output as the disk has it: the bytes of each form
    (None: not there as a regular file)."""

    whole: int | None = None
    compressed: int | None = None
    temporary: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A run as retention sees it; ``held``: its task holds a lease, or a
    live process names it."""

    task_id: str
    folder: str
    raw: RawOnDisk
    held: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a collection does to one run, and the bytes it is about."""

    task_id: str
    folder: str
    step: Step
    bytes: int
    path: str = ""

    def to_json(self) -> dict:
        return {"task_id": self.task_id, "folder": self.folder, "step": self.step.value,
                "bytes": self.bytes, "path": self.path}


@dataclass(slots=True)
class GcReport:
    """What a collection would do (``done`` False) or did."""

    items: list[Item]
    keep_runs: int
    old_raw: str
    done: bool = False
    freed: int = 0
    errors: list[str] = field(default_factory=list)
    # Tasks whose runs were left alone because they are live.
    held: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len({(item.task_id, item.folder) for item in self.items})

    @property
    def files(self) -> int:
        return sum(item.step is not Step.TIDY for item in self.items)

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    def to_json(self) -> dict:
        return {"done": self.done, "keep_runs": self.keep_runs, "old_raw": self.old_raw, "runs": self.runs,
                "files": self.files, "bytes": self.bytes, "freed": self.freed if self.done else None,
                "held": self.held, "errors": self.errors, "items": [item.to_json() for item in self.items]}


# --- deciding (pure) ----------------------------------------------------------------------


def plan_retention(candidates: Sequence[Candidate], keep_runs: int, old_raw: str) -> list[Item]:
    """What to do to each run, ``candidates`` newest first: the first
    ``keep_runs`` stay whole, the others' raw output is compressed or
    dropped; held runs count among the newest and are never touched."""
    items: list[Item] = []
    for index, run in enumerate(candidates):
        if run.held:
            continue
        raw = run.raw
        if raw.temporary is not None:
            items.append(Item(run.task_id, run.folder, Step.TIDY, raw.temporary))
        if index < keep_runs:
            if raw.whole is not None and raw.compressed is not None:
                items.append(Item(run.task_id, run.folder, Step.UNDO, raw.compressed))
            continue
        if old_raw == "drop":
            if raw.whole is not None or raw.compressed is not None:
                items.append(Item(run.task_id, run.folder, Step.DROP, (raw.whole or 0) + (raw.compressed or 0)))
        elif raw.whole is not None and raw.compressed is not None:
            items.append(Item(run.task_id, run.folder, Step.FINISH, raw.whole))
        elif raw.whole is not None:
            items.append(Item(run.task_id, run.folder, Step.COMPRESS, raw.whole))
    return items


# --- looking at the disk ---------------------------------------------------------------------


def _regular_size(path: Path) -> int | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def raw_on_disk(run_dir: Path) -> RawOnDisk:
    return RawOnDisk(_regular_size(run_dir / RAW), _regular_size(run_dir / RAW_GZ),
                     _regular_size(run_dir / RAW_GZ_TEMPORARY))


def live_tasks(base: FactoryBase, log) -> set[str]:
    """Tasks none of whose runs may be touched: those holding a lease, and
    those a live process names (an agent's run, a QA command under it)."""
    held = set(log.held_leases())
    prefix = str(base.runs_dir) + os.sep
    for marker in (processes.MARKER, processes.QA_MARKER):
        for found in processes.find(lambda run: run.startswith(prefix), marker):
            task = found.run[len(prefix):].split(os.sep, 1)[0]
            held.add(task)
    return held


def candidates(base: FactoryBase, runs: Sequence[RetentionRow], held: set[str], keep_runs: int, old_raw: str,
               *, full: bool) -> list[Candidate]:
    """The runs, newest first, with their raw output as the disk has it.
    Without ``full`` only runs the index says something may be due for are
    looked at (cheap after every run's end); ``full`` looks at them all."""
    found = []
    for index, run in enumerate(runs):
        live = run.task_id in held or run.outcome == RunOutcome.RUNNING
        state = run.raw_state
        due = full or (index >= keep_runs and (state == FileState.KEPT
                                               or (old_raw == "drop" and state == FileState.COMPRESSED)))
        raw = raw_on_disk(base.task_runs_dir(run.task_id) / run.folder) if due and not live else RawOnDisk()
        found.append(Candidate(run.task_id, run.folder, raw, held=live))
    return found


# --- doing -------------------------------------------------------------------------------------


class RawChanged(FactoryError):
    """The raw output changed while it was being compressed: a writer still has it."""


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_regular(path: Path) -> int:
    """A read-only descriptor of a regular file, never through a link and
    never waiting on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def compress_raw(run_dir: Path, shown: str = RAW) -> None:
    """``output.raw`` → ``output.raw.gz``, whole or not at all (``shown``:
    the file's name in a message)."""
    raw, temporary = run_dir / RAW, run_dir / RAW_GZ_TEMPORARY
    source = _open_regular(raw)
    try:
        before = os.fstat(source)
        temporary.unlink(missing_ok=True)
        target = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with open(target, "wb") as out:
                with gzip.GzipFile(filename=RAW, mode="wb", fileobj=out, compresslevel=COMPRESS_LEVEL,
                                   mtime=int(before.st_mtime)) as packed:
                    while chunk := os.read(source, CHUNK):
                        packed.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            faults.point("retention.written")
            # A writer we did not see (the run's processes are looked for
            # first) would lose what it wrote after our last read.
            after = os.fstat(source)
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise RawChanged(f"{shown} changed while it was compressed (something still writes it); "
                                 "it is kept whole")
            os.replace(temporary, run_dir / RAW_GZ)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    finally:
        os.close(source)
    _fsync_dir(run_dir)
    # Killed here, both are on disk: readers take the whole one, and the
    # next collection finishes (Step.FINISH).
    faults.point("retention.swapped")
    raw.unlink()
    _fsync_dir(run_dir)


def same_content(raw: Path, packed: Path) -> bool:
    """Whether ``packed`` decompresses to exactly ``raw`` (a damaged or
    foreign .gz does not)."""
    first, second = _open_regular(raw), _open_regular(packed)
    try:
        with open(first, "rb") as whole, open(second, "rb") as compressed, gzip.GzipFile(fileobj=compressed) as unpacked:
            while True:
                left = whole.read(CHUNK)
                right = unpacked.read(len(left) or 1)
                if left != right:
                    return False
                if not left:
                    return True
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def finish_compression(run_dir: Path, shown: str = RAW) -> None:
    """Both forms on disk: if the .gz holds the raw output, the raw output
    goes; otherwise the .gz is no good, and the compression starts over."""
    if same_content(run_dir / RAW, run_dir / RAW_GZ):
        (run_dir / RAW).unlink()
        _fsync_dir(run_dir)
        return
    (run_dir / RAW_GZ).unlink()
    compress_raw(run_dir, shown)


def _unlink_regular(path: Path) -> None:
    if _regular_size(path) is not None:
        path.unlink()


def apply_item(run_dir: Path, item: Item) -> None:
    shown = f"{item.path}/{RAW}"
    if item.step is Step.COMPRESS:
        compress_raw(run_dir, shown)
    elif item.step is Step.FINISH:
        finish_compression(run_dir, shown)
    elif item.step is Step.DROP:
        _unlink_regular(run_dir / RAW)
        _unlink_regular(run_dir / RAW_GZ)
    elif item.step is Step.UNDO:
        _unlink_regular(run_dir / RAW_GZ)
    elif item.step is Step.TIDY:
        (run_dir / RAW_GZ_TEMPORARY).unlink(missing_ok=True)


def _raw_after(run_dir: Path) -> tuple[int, str]:
    """The raw output's size on disk and state now."""
    raw = raw_on_disk(run_dir)
    if raw.whole is not None:
        return raw.whole, FileState.KEPT.value
    if raw.compressed is not None:
        return raw.compressed, FileState.COMPRESSED.value
    return 0, FileState.DROPPED.value


def _bytes_now(run_dir: Path) -> int:
    raw = raw_on_disk(run_dir)
    return (raw.whole or 0) + (raw.compressed or 0) + (raw.temporary or 0)


class CollectionBusy(FactoryError):
    """Another collection holds the base's runs."""


def collect(base: FactoryBase, log, *, keep_runs: int, old_raw: str, apply: bool, full: bool = True,
            sync: bool = True, wait: float | None = None, cancel: threading.Event | None = None) -> GcReport:
    """Look at every run, plan, and with ``apply`` do it (under the runs
    lock: ``wait`` seconds for another collection, then CollectionBusy).
    ``sync``: index the folders the log does not know first (the engine
    does it once, then indexes each run itself as it ends). Errors of
    single runs (a full disk) are in the report, one line each; the others
    go on. ``cancel`` set: it stops after the file at hand."""
    lock = PathLock(base.dir / LOCK_NAME)
    if apply and not lock.acquire(wait_seconds() if wait is None else wait):
        holder = lock.holder_pid()
        raise CollectionBusy("another collection of old runs' output is at work"
                             + (f" (pid {holder})" if holder else "") + "; try again when it is done")
    try:
        if sync:
            index_folders(base, log)
        runs = log.retention_rows()
        found = candidates(base, runs, set(log.held_leases()), keep_runs, old_raw, full=full)
        planned = plan_retention(found, keep_runs, old_raw)
        if planned:
            # Something is due: only now are the processes looked for (a
            # scan of /proc), and the runs they name are left alone too.
            held = live_tasks(base, log)
            found = [replace(run, held=True) if run.task_id in held else run for run in found]
            planned = plan_retention(found, keep_runs, old_raw)
        items = [_with_path(base, item) for item in planned]
        report = GcReport(items, keep_runs, old_raw, held=sorted({run.task_id for run in found if run.held},
                                                                   key=lambda task: int(task[2:])))
        if apply:
            _apply(base, log, report, cancel)
        return report
    finally:
        lock.release()


def _with_path(base: FactoryBase, item: Item) -> Item:
    folder = base.task_runs_dir(item.task_id) / item.folder
    return Item(item.task_id, item.folder, item.step, item.bytes, str(folder.relative_to(base.root)))


def _apply(base: FactoryBase, log, report: GcReport, cancel: threading.Event | None = None) -> None:
    report.done = True
    for item in report.items:
        if cancel is not None and cancel.is_set():
            break
        run_dir = base.task_runs_dir(item.task_id) / item.folder
        before = _bytes_now(run_dir)
        try:
            apply_item(run_dir, item)
        except RawChanged as error:
            report.errors.append(str(error))
        except OSError as error:
            report.errors.append(f"cannot {item.step.value} {item.path}/{RAW}: {os_error_text(error)}; "
                                 "the raw output is kept as it was")
        report.freed += max(0, before - _bytes_now(run_dir))
        size, state = _raw_after(run_dir)
        try:
            log.set_run_file(item.task_id, item.folder, RAW, kind=FileKind.RAW.value, size=size, state=state)
        except LogError:
            pass  # the index is made again from the disk

