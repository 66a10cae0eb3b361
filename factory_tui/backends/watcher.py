"""Watching files: the one way everything that follows files does it (a
run's transcript now; the mailboxes, QA scenarios and living documents
next), built on watchfiles (inotify on Linux, polling where the kernel
offers nothing better).

``watch`` yields the paths that changed under a file or folder as soon as
they change, and an empty set at least every ``step`` seconds, so that the
caller's loop can also look at its own conditions (a worker being cancelled)
and catch up on anything a watch could miss. The log itself is followed by
SQLite's ``data_version`` (backends/feed.py), not by this.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import watchfiles

# Changes arriving within this many milliseconds come as one set.
DEBOUNCE_MS = 30


def nearest_existing(path: Path) -> Path:
    """``path`` if it is a folder that exists, else the nearest folder above
    it that does (a transcript's run folder may not be made yet)."""
    folder = path if path.is_dir() else path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def watch(path: Path, *, stop: threading.Event, step: float = 0.5) -> Iterator[set[Path]]:
    """The paths changed under ``path`` (a file or a folder), a set at a
    time, until ``stop`` is set."""
    path = Path(path)
    wanted = path if path.is_dir() else path.parent
    while not stop.is_set():
        folder = nearest_existing(path)
        try:
            for changes in watchfiles.watch(
                folder, stop_event=stop, debounce=DEBOUNCE_MS, step=10,
                rust_timeout=int(step * 1000), yield_on_timeout=True, raise_interrupt=False,
                watch_filter=None,
            ):
                yield {Path(changed) for _, changed in changes}
                if folder != wanted and wanted.is_dir():
                    break  # watching an ancestor while the folder was missing: now watch it
        except OSError:
            # The folder went away under the watch: start again from what exists.
            yield set()
            stop.wait(step)
