"""A pane that reads its contents again when a file under its folder
changes: ``.factory/qa/`` for the QA pane, ``.factory/artifacts/`` for the
Artifacts pane. The folder is watched in a thread worker
(backends/watcher.py, watchfiles); each change is posted back as a
``FilesChanged`` message and handled by the pane's ``folder_changed``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual.message import Message
from textual.worker import get_current_worker

from factory_tui.backends.watcher import watch


class FollowsFolder:
    """Mixed into a pane (a Widget); ``follow_folder`` on mount,
    ``stop_following`` on unmount."""

    class FilesChanged(Message):
        """Something under the followed folder changed."""

    _folder_stop: threading.Event | None = None

    def follow_folder(self, folder: Path) -> None:
        self._folder_stop = stop = threading.Event()
        self.run_worker(lambda: self._watch_folder(folder, stop), thread=True,  # type: ignore[attr-defined]
                        group="folder-files", exit_on_error=False)

    def stop_following(self) -> None:
        if self._folder_stop is not None:
            self._folder_stop.set()

    def _watch_folder(self, folder: Path, stop: threading.Event) -> None:
        worker = get_current_worker()
        for changed in watch(folder, stop=stop):
            if worker.is_cancelled:
                return
            # Watching an ancestor while the folder is missing sees the
            # whole base: only the followed folder counts.
            if any(path == folder or folder in path.parents for path in changed):
                self.post_message(self.FilesChanged())  # type: ignore[attr-defined]

    def on_follows_folder_files_changed(self, message: FollowsFolder.FilesChanged) -> None:
        self.folder_changed()

    def folder_changed(self) -> None:
        """Read the folder's contents again."""
        raise NotImplementedError
