"""The file watcher (backends/watcher.py): real files, real inotify."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from factory_tui.backends.watcher import nearest_existing, watch


def collect(path: Path, stop: threading.Event, seen: list[set[Path]]) -> threading.Thread:
    def run() -> None:
        for changes in watch(path, stop=stop, step=0.1):
            seen.append(changes)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for(condition, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_a_file_written_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "transcript.log"
    stop, seen = threading.Event(), []
    thread = collect(target, stop, seen)
    wait_for(lambda: seen, "the first (empty) round")  # the watch is up
    target.write_text("a line\n")
    wait_for(lambda: any(target in changes for changes in seen), "the change to the file")
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_folder_made_after_the_watch_began_is_followed(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "T-1" / "1"
    target = folder / "transcript.log"
    assert nearest_existing(target) == tmp_path
    stop, seen = threading.Event(), []
    thread = collect(target, stop, seen)
    wait_for(lambda: seen, "the first round")
    folder.mkdir(parents=True)
    wait_for(lambda: nearest_existing(target) == folder, "the folder")
    # Rounds go on until the watch has moved to the new folder; a write
    # there is then reported.
    count = len(seen)
    wait_for(lambda: len(seen) > count + 1, "more rounds")
    target.write_text("hello\n")
    wait_for(lambda: any(target in changes for changes in seen), "the change in the new folder")
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
