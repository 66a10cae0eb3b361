"""The run index: every run's figures and files in the log, kept in step
with the run folders on disk.

The engine indexes a run when it ends (``index_ended_run``: it knows how
the run ended, and computes its diff summary with git, in its own thread)
and again when a QA check of it has written its output. A run it never
indexed (one that ended before the index existed, a folder set aside, one
whose write met a busy log) is indexed from its folder on demand
(``sync_runs``, called by ``factory run-info``, gc and the engine's
retention): its record files say when and how it ran, the events of its
lease how it ended and what it cost, its ``diff.stat`` what it changed.

The index is derived data: nothing here changes a task or its history, and
a log that cannot be written (busy, read-only) still gets the records read
from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from factory_tui.artifacts_model import FileState, RunFile, RunOutcome, RunRecord
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.run_diff import DiffSummary, parse_summary, render_stat, summary_text
from factory_tui.backends.run_folders import (
    DIFF_STAT,
    PROMPT,
    RAW,
    RAW_GZ,
    RunFolder,
    agent_of,
    attempt_of,
    list_files,
    mtime,
    read_int,
    read_record,
    read_small,
    run_folders,
)
from factory_tui.backends.run_log import IndexedRun, LeaseEnd
from factory_tui.errors import InvalidInput, LogError

# Outcomes that may still change: such runs are read from disk again.
UNSETTLED = frozenset({RunOutcome.RUNNING.value, RunOutcome.UNKNOWN.value})


@dataclass(frozen=True, slots=True)
class RunEnd:
    """What the engine knows of a run it just concluded."""

    outcome: RunOutcome
    exit_code: int | None
    ended_at: float
    totals: dict = field(default_factory=dict)


# --- how a run ended, from what is known of it (pure) ---------------------------------


def outcome_from_event(kind: str | None, data: dict | None) -> RunOutcome | None:
    """The outcome the event that ended a lease says."""
    if kind in ("finished", "checking"):
        return RunOutcome.FINISHED
    if kind == "failed":
        return RunOutcome.TIMED_OUT if (data or {}).get("failure") == "timeout" else RunOutcome.FAILED
    if kind == "stopped":
        return RunOutcome.STOPPED
    if kind == "expired":
        return RunOutcome.EXPIRED
    return None


def outcome_from_exit(record: dict | None, code: int | None) -> RunOutcome | None:
    """The outcome ``exit.json`` (or, without it, ``exit.code``) says."""
    if record:
        if record.get("timed_out"):
            return RunOutcome.TIMED_OUT
        if record.get("stopped"):
            return RunOutcome.STOPPED
        if record.get("failure"):
            return RunOutcome.FAILED
        if record.get("exit_code") == 0:
            return RunOutcome.FINISHED
        return RunOutcome.FAILED
    if code is not None:
        return RunOutcome.FINISHED if code == 0 else RunOutcome.FAILED
    return None


def decide_outcome(*, live: bool, end: RunEnd | None, lease_end: LeaseEnd | None, exit_record: dict | None,
                   exit_code: int | None, folder: str) -> RunOutcome:
    """How a run ended: running while its lease is live; else the engine's
    word, the event that ended its lease, its exit record, in that order."""
    if live:
        return RunOutcome.RUNNING
    if end is not None:
        return end.outcome
    found = outcome_from_event(lease_end.kind, lease_end.data) if lease_end else None
    found = found or outcome_from_exit(exit_record, exit_code)
    if found is not None:
        return found
    if ".stopped" in folder:
        return RunOutcome.STOPPED
    return RunOutcome.UNKNOWN


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: object) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


# --- reading one run folder -------------------------------------------------------------


def read_run(
    base: FactoryBase, run: RunFolder, *, held: dict[str, tuple[str, str]], lease_ends: dict[str, LeaseEnd],
    end: RunEnd | None = None, diff: DiffSummary | None = None,
) -> IndexedRun:
    """A run's record from its folder, what the log says of its lease and
    (from the engine) how it ended and its diff."""
    path = run.path
    record = read_record(path / "run.json") or {}
    exit_record = read_record(path / "exit.json")
    code = read_int(path / "exit.code")
    token = record.get("token") if isinstance(record.get("token"), str) else None
    lease = held.get(run.task_id)
    live = bool(token and lease and lease == (token, "running") and run.folder == str(run.attempt))
    lease_end = lease_ends.get(token) if token else None
    outcome = decide_outcome(live=live, end=end, lease_end=lease_end, exit_record=exit_record,
                             exit_code=code, folder=run.folder)
    totals = end.totals if end is not None else (lease_end.data or {}) if lease_end else {}
    if end is not None:
        exit_code = end.exit_code
    elif exit_record is not None and isinstance(exit_record.get("exit_code"), int):
        exit_code = exit_record["exit_code"]
    else:
        exit_code = code
    started = _float(record.get("started"))
    if started is None and lease_end is not None:
        started = lease_end.claimed_at
    if started is None:
        started = mtime(path / PROMPT) or mtime(path)
    ended: float | None = None
    if not live:
        if end is not None:
            ended = end.ended_at
        elif exit_record is not None and _float(exit_record.get("ended")) is not None:
            ended = float(exit_record["ended"])
        elif lease_end is not None and lease_end.at is not None:
            ended = lease_end.at
        else:
            ended = mtime(path / "exit.code")
    if diff is None:
        stat = read_small(path / DIFF_STAT, 4096)
        diff = parse_summary(stat.decode("utf-8", errors="replace")) if stat else None
    files = tuple(item.file for item in list_files(path, base.root))
    profile = record.get("profile") if isinstance(record.get("profile"), str) else None
    indexed = RunRecord(
        task_id=run.task_id, attempt=run.attempt, folder=run.folder, started_at=started, ended_at=ended,
        outcome=outcome.value, profile=profile, agent=agent_of(record.get("argv")), exit_code=exit_code,
        cost_usd=_float(totals.get("cost_usd")), input_tokens=_int(totals.get("input_tokens")),
        output_tokens=_int(totals.get("output_tokens")),
        files_changed=diff.files if diff else None, lines_added=diff.added if diff else None,
        lines_removed=diff.removed if diff else None, files=files,
    )
    return IndexedRun(indexed, diff.base if diff else None, diff.head if diff else None)


def with_paths(base: FactoryBase, record: RunRecord) -> RunRecord:
    """The record with where its folder and files are (from the
    repository's top) and its diff in words."""
    folder = base.task_runs_dir(record.task_id) / record.folder
    where = str(folder.relative_to(base.root))
    files = []
    for item in record.files:
        if item.state == FileState.DROPPED:
            path = ""
        elif item.name == RAW and item.state == FileState.COMPRESSED:
            path = f"{where}/{RAW_GZ}"
        else:
            path = f"{where}/{item.name}"
        files.append(replace(item, path=path))
    summary = (summary_text(record.files_changed, record.lines_added or 0, record.lines_removed or 0)
               if record.files_changed is not None else None)
    return replace(record, path=where, files=tuple(files), diff_summary=summary)


# --- keeping the index in step with the disk ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Folders:
    """What ``index_folders`` found: the run folders on disk, the runs it
    read (because the index did not know them, or not their end), and
    whether the log took them."""

    folders: list[RunFolder]
    fresh: dict[tuple[str, str], IndexedRun]
    saved: bool


def index_folders(base: FactoryBase, log, *, task_id: str | None = None) -> Folders:
    """Index every run folder (of one task) the log does not know, or whose
    end it did not know yet, and forget folders that are gone. Cheap when
    the index is current: a listing of the folders and of the index's keys.
    A log that cannot be written leaves the index as it was (``saved``
    False): it is derived data, made again at the next look."""
    folders = run_folders(base.runs_dir, task_id)
    known = log.run_keys(task_id)
    todo = [run for run in folders
            if (run.task_id, run.folder) not in known or known[(run.task_id, run.folder)] in UNSETTLED]
    fresh: dict[tuple[str, str], IndexedRun] = {}
    if todo:
        held = log.held_leases()
        lease_ends = log.lease_ends({run.task_id for run in todo})
        for run in todo:
            fresh[(run.task_id, run.folder)] = read_run(base, run, held=held, lease_ends=lease_ends)
    on_disk = {(run.task_id, run.folder) for run in folders}
    gone = [key for key in known if key not in on_disk]
    try:
        for item in fresh.values():
            log.record_run(item)  # keeps what retention dropped listed
        log.forget_runs(gone)
    except LogError:
        return Folders(folders, fresh, False)
    return Folders(folders, fresh, True)


def sync_runs(base: FactoryBase, log, *, task_id: str | None = None, files: bool = False) -> list[RunRecord]:
    """The runs (of one task), newest first, the index brought in step with
    the folders first (``index_folders``); with ``files``, every run's files
    are listed again (sizes grow, QA adds outputs). A log that cannot be
    written gives the same records, read from disk, unsaved."""
    found = index_folders(base, log, task_id=task_id)
    indexed = {(run.task_id, run.folder): run for run in log.indexed_runs(None if task_id is None else [task_id])}
    records: list[RunRecord] = []
    writes: list[RunRecord] = []
    for run in found.folders:
        key = (run.task_id, run.folder)
        known = indexed.get(key)
        record = known if found.saved or key not in found.fresh else found.fresh[key].record
        if record is None:
            if key not in found.fresh:
                continue  # forgotten meanwhile by another process: its folder went
            record = found.fresh[key].record
        if known is not None and record is not known:
            record = replace(record, files=_merge_dropped(record.files, known.files))
        elif files and key not in found.fresh and known is not None:
            listed = _merge_dropped(tuple(item.file for item in list_files(run.path, base.root)), known.files)
            if listed != known.files:
                record = replace(known, files=listed)
                writes.append(record)
        records.append(record)
    try:
        for record in writes:
            log.set_run_files(record.task_id, record.folder, record.files)
    except LogError:
        pass  # as above: the records stand, the index catches up later
    records.sort(key=lambda record: (-(record.started_at or 0), record.task_id, record.folder))
    return [with_paths(base, record) for record in records]


def _merge_dropped(listed: Sequence[RunFile], known: Sequence[RunFile]) -> tuple[RunFile, ...]:
    """The files on disk, and those the index knows were dropped."""
    names = {item.name for item in listed}
    dropped = [item for item in known if item.state == FileState.DROPPED and item.name not in names]
    return tuple(sorted([*listed, *dropped], key=lambda item: item.name))


def runs_of(base: FactoryBase, log, task_id: str) -> list[RunRecord]:
    """A task's runs, newest first, with their files as they are now, and
    the living documents each attempt's prompt read (its own run's record
    only: a run set aside had the same attempt's prompt written again)."""
    log.get_task(task_id)  # UnknownTask for an id the log does not hold
    read: dict[int, list[tuple[str, str]]] = {}
    for item in log.prompt_documents(task_id):
        read.setdefault(item.attempt, []).append((item.name, item.blob))
    return [replace(run, documents=tuple(read.get(run.attempt, ()))) if run.folder == str(run.attempt) else run
            for run in sync_runs(base, log, task_id=task_id, files=True)]


def run_record(base: FactoryBase, log, task_id: str, attempt: int) -> list[RunRecord]:
    """The runs of one attempt (its run, and any set aside before it)."""
    found = [run for run in runs_of(base, log, task_id) if run.attempt == attempt]
    if not found:
        raise InvalidInput(f"{task_id} has no run {attempt}")
    return found


# --- what the engine does when a run ends ---------------------------------------------------


def index_ended_run(base: FactoryBase, log, *, task_id: str, run_dir: Path, end: RunEnd,
                    base_branch: str, branch: str, branch_start: str | None,
                    head: str | None = None, since: str | None = None,
                    diff: DiffSummary | None = None) -> RunRecord:
    """The engine's word on a run that ended: its diff summary computed
    (git) and kept as ``diff.stat``, its record written to the index.
    ``head``, ``since``: the branch's commit and its merge base with the
    base branch, if the caller knows them (run_diff.branch_summary);
    ``diff``: the summary itself, when the caller has it already."""
    from factory_tui.backends.run_diff import branch_summary
    from factory_tui.backends.runs import write_private

    if diff is None:
        diff = branch_summary(base.root, base_branch, branch, branch_start, head=head, since=since)
    if diff is not None:
        write_private(run_dir / DIFF_STAT, render_stat(diff))
    run = RunFolder(task_id, run_dir.name, attempt_of(run_dir.name) or 0, str(run_dir))
    item = read_run(base, run, held={}, lease_ends={}, end=end, diff=diff)
    log.record_run(item)
    return with_paths(base, item.record)


def index_run_files(base: FactoryBase, log, task_id: str, attempt: int) -> None:
    """A run's files listed again (a QA check wrote its output there)."""
    if (task_id, str(attempt)) not in log.run_keys(task_id):
        index_folders(base, log, task_id=task_id)
        return
    files = [item.file for item in list_files(base.run_dir(task_id, attempt), base.root)]
    log.set_run_files(task_id, str(attempt), files)
