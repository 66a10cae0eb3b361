"""One file of one run, found by the name its run lists it under: where it
is on disk, and a reader of it (``run_reader.py``).

A name is looked up among what the run folder really holds (never joined
to a path as given: ``../../log.db`` or an absolute path names nothing), so
only a file of that run can be reached. ``output.raw`` is the compressed
file once retention compressed it; a raw output retention dropped, a link
and a FIFO are named as such in one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from factory_tui.artifacts_model import FileState
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.run_folders import RAW, attempt_of, list_files
from factory_tui.backends.run_reader import RunFileReader, open_reader
from factory_tui.errors import InvalidInput, LogError


def run_folder(base: FactoryBase, task_id: str, attempt: int, folder: str | None = None) -> Path:
    """A run's folder; InvalidInput when it is not there (or is a link)."""
    name = folder if folder is not None else str(attempt)
    if attempt_of(name) != attempt:
        raise InvalidInput(f"{name!r} is not a folder of {task_id}'s run {attempt}")
    path = base.task_runs_dir(task_id) / name
    try:
        real = stat.S_ISDIR(os.lstat(base.task_runs_dir(task_id)).st_mode) and stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        real = False
    if not real:
        raise InvalidInput(f"{task_id} has no run {name}")
    return path


def run_file(base: FactoryBase, log, task_id: str, attempt: int, name: str, *, folder: str | None = None) -> Path:
    path = run_folder(base, task_id, attempt, folder)
    shown = f"{task_id}/{path.name}"
    for item in list_files(path, base.root):
        if item.file.name != name:
            continue
        if item.file.state == FileState.LINK:
            raise InvalidInput(f"{name} of run {shown} is a symbolic link; it is not followed")
        if item.file.state == FileState.SPECIAL:
            raise InvalidInput(f"{name} of run {shown} is not a regular file; it is not read")
        return item.path
    if name == RAW and _dropped(log, task_id, path.name):
        raise InvalidInput(f"the raw output of run {shown} was dropped ([artifacts] old_raw = \"drop\"); "
                           "its transcript is kept")
    raise InvalidInput(f"run {shown} has no file {name!r}")


def _dropped(log, task_id: str, folder: str) -> bool:
    try:
        runs = log.indexed_runs([task_id])
    except LogError:
        return False
    return any(item.name == RAW and item.state == FileState.DROPPED
               for run in runs if run.folder == folder for item in run.files)


def open_run_file(base: FactoryBase, log, task_id: str, attempt: int, name: str, *,
                  folder: str | None = None) -> RunFileReader:
    path = run_file(base, log, task_id, attempt, name, folder=folder)
    shown = f"{name} of run {task_id}/{folder if folder is not None else attempt}"
    return open_reader(path, shown)
