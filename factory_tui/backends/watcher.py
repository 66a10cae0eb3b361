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
from collections.abc import Iterator, Sequence
from pathlib import Path

import watchfiles

# Changes arriving within this many milliseconds come as one set.
DEBOUNCE_MS = 30
# How often the watch's native loop wakes (taking the GIL) to see whether
# anything came or it was told to stop: every 10 ms, five idle watches cost
# a console a per cent of a core; every 50 ms, a fifth of that, and a change
# is seen at most 50 ms later.
WAKE_MS = 50


def nearest_existing(path: Path) -> Path:
    """``path`` if it is a folder that exists, else the nearest folder above
    it that does (a transcript's run folder may not be made yet)."""
    folder = path if path.is_dir() else path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def watch(
    path: Path | Sequence[Path], *, stop: threading.Event, step: float = 0.5,
    wake_ms: int = WAKE_MS, debounce_ms: int = DEBOUNCE_MS, recursive: bool = True,
) -> Iterator[set[Path]]:
    """The paths changed under ``path`` (a file or a folder, or several),
    a set at a time, until ``stop`` is set. ``wake_ms`` and ``debounce_ms``:
    how soon a change is told (a watch that starts work at once, the
    engine's on the log, wakes more often than one that redraws).
    ``recursive=False``: a folder's own entries only, not what its
    sub-folders hold."""
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(one) for one in path]
    wanted = [one if one.is_dir() else one.parent for one in paths]
    while not stop.is_set():
        missing = [folder for folder in wanted if not folder.is_dir()]
        folders = _outermost({nearest_existing(one) for one in paths})
        try:
            for changes in watchfiles.watch(
                *folders, stop_event=stop, debounce=debounce_ms, step=wake_ms,
                rust_timeout=int(step * 1000), yield_on_timeout=True, raise_interrupt=False,
                watch_filter=None, recursive=recursive,
            ):
                yield {Path(changed) for _, changed in changes}
                if any(folder.is_dir() for folder in missing):
                    break  # watching an ancestor while a folder was missing: now watch it
        except OSError:
            # A folder went away under the watch: start again from what exists.
            yield set()
            stop.wait(step)


def _outermost(folders: set[Path]) -> list[Path]:
    """``folders`` without those inside another of them (watched already)."""
    return sorted(folder for folder in folders if not any(other in folder.parents for other in folders))
